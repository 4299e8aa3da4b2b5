"""The gallery's storage contract: :class:`GalleryRepository`, which every store (SQLite, PostgreSQL) satisfies.

A repository holds rows and nothing else: it never seals or opens templates, never judges policy and never
hashes the ledger. :class:`~faceaudit.gallery.Gallery` does those, and calls the repository inside the
transactions described here.

Transactions
------------
* ``write()`` opens a write transaction that serialises writers (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
  ``SERIALIZABLE`` or a table lock). It commits when the block ends and rolls back when it raises. Every method
  marked *write* must be called inside it, and so must every ledger append: the change and its ledger entry
  commit together or not at all.
* ``snapshot()`` opens a read transaction: the reads inside it see one consistent state (used to read the
  version together with the templates it describes).
* Methods marked *read* may be called inside either kind of transaction or outside any (autocommit read).

Rows
----
Values cross this boundary as plain data: text, integers, ``bytes`` (sealed blobs) and the small frozen
records below. Templates arrive sealed and leave sealed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from faceaudit.ledger import LedgerStore


@dataclass(frozen=True, slots=True)
class SubjectRow:
    """One enrolled subject as stored (``id`` is the store's key; the ref is the caller's key)."""

    id: int
    subject_ref: str
    name: str
    consent_basis: str
    consent_by: str
    consent_at: str
    consent_expires: str | None
    created_at: str
    n_templates: int = 0


@dataclass(frozen=True, slots=True)
class NewSubject:
    """A subject to insert; the text fields are already checked and trimmed."""

    subject_ref: str
    name: str
    consent_basis: str
    consent_by: str
    consent_expires: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class NewTemplate:
    """A sealed template (and optionally a sealed image) to insert for a subject."""

    model_id: str
    quality_json: str
    source_sha256: str
    sealed: bytes
    image: bytes | None
    created_at: str


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """What a search shows beside a template id: whose it is, the display name, the consent expiry."""

    template_id: int
    subject_ref: str
    name: str
    consent_expires: str | None


class GalleryRepository(Protocol):
    """Rows of one gallery: meta, subjects, sealed templates, and the ledger table, in one transactional store."""

    # --- lifecycle and transactions ---------------------------------------------------------------------

    def write(self) -> AbstractContextManager[None]:
        """A write transaction (see the module docstring); nested use is an error."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: every read inside sees one consistent state."""
        ...

    def ledger_store(self) -> LedgerStore:
        """The ledger table as a :class:`~faceaudit.ledger.LedgerStore` on this repository's connection, so
        appends join the repository's current write transaction. It never commits on its own."""
        ...

    def close(self) -> None:
        """Release the connection (SQLite also checkpoints its WAL)."""
        ...

    # --- meta -------------------------------------------------------------------------------------------

    def read_meta(self) -> dict[str, str]:
        """*read.* The gallery's meta values (``gallery_id``, ``version``, ``index_kind``, ``key_check``...);
        empty when the gallery is not initialised yet."""
        ...

    def write_meta(self, values: dict[str, str]) -> None:
        """*write.* Insert the initial meta values (once, at initialisation)."""
        ...

    def version(self) -> int:
        """*read.* The gallery version: it grows by one with each enrolment and each erasure."""
        ...

    def bump_version(self) -> int:
        """*write.* Add one to the gallery version and return the new value."""
        ...

    # --- subjects and templates -------------------------------------------------------------------------

    def find_subject(self, subject_ref: str) -> SubjectRow | None:
        """*read.* The subject with this ref (``n_templates`` is not filled in), or None."""
        ...

    def list_subjects(self) -> list[SubjectRow]:
        """*read.* Every subject in enrolment order, with its template count."""
        ...

    def expired_subjects(self, as_of: str) -> list[SubjectRow]:
        """*read.* Subjects whose consent expires on or before the ISO date ``as_of``, in enrolment order."""
        ...

    def insert_subject(self, subject: NewSubject) -> int:
        """*write.* Insert a subject and return its id; the caller has checked that the ref is free."""
        ...

    def insert_template(self, subject_id: int, template: NewTemplate) -> int:
        """*write.* Insert one sealed template of ``subject_id`` and return its template id."""
        ...

    def delete_subjects(self, subject_ids: Sequence[int]) -> list[int]:
        """*write.* Delete these subjects and all their templates (and images); return the deleted template ids."""
        ...

    def sealed_templates_of(self, subject_id: int, model_id: str) -> list[bytes]:
        """*read.* The sealed templates of one subject for one model."""
        ...

    def sealed_images_of(self, subject_id: int) -> list[tuple[str, bytes]]:
        """*read.* ``(model_id, sealed image)`` of each stored reference image of one subject, by template id."""
        ...

    def count_templates(self, model_id: str) -> int:
        """*read.* How many templates of ``model_id`` are stored."""
        ...

    def iter_sealed_templates(self, model_id: str) -> Iterator[tuple[int, str, bytes]]:
        """*read.* ``(template id, subject_ref, sealed blob)`` of every template of ``model_id``, by id. Call it
        inside ``snapshot()`` together with ``version()`` and ``count_templates()``."""
        ...

    def candidate_rows(self, template_ids: Sequence[int]) -> dict[int, CandidateRow]:
        """*read.* For each of these template ids that still exists: whose it is and the consent expiry."""
        ...

    # --- storage hygiene --------------------------------------------------------------------------------

    def reclaim(self, *, vacuum: bool = False) -> bool:
        """Make deleted bytes unrecoverable from the store's files where the store can (SQLite: a TRUNCATE
        checkpoint of the WAL, and VACUUM when asked). Outside any transaction. Returns False when another
        connection's open read still pins the old bytes, so the caller can retry or report it."""
        ...
