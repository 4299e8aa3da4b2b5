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
from faceaudit.pgsql import is_pg_url


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
    name_binding: str | None = None
    """The sealer's keyed hash binding ``name`` to this subject (None in rows made before names were bound)."""


@dataclass(frozen=True, slots=True)
class NewSubject:
    """A subject to insert; the text fields are already checked and trimmed."""

    subject_ref: str
    name: str
    consent_basis: str
    consent_by: str
    consent_expires: str | None
    created_at: str
    name_binding: str | None = None
    """The sealer's keyed hash binding ``name`` to this subject (``Gallery`` always sets it)."""

    def row(self) -> tuple[str | None, ...]:
        """The values for :data:`SUBJECT_INSERT_COLUMNS`, in that order (consent is recorded at creation)."""
        return (
            self.subject_ref,
            self.name,
            self.consent_basis,
            self.consent_by,
            self.created_at,
            self.consent_expires,
            self.created_at,
            self.name_binding,
        )


SUBJECT_INSERT_COLUMNS = "subject_ref, display_name, consent_basis, consent_by, consent_at, consent_expires, created_at, name_binding"
"""The ``subjects`` columns every repository fills on insert, matching :meth:`NewSubject.row`."""


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
    name_binding: str | None = None


class ChangeListener(Protocol):
    """Wakes a follower when another process may have changed the gallery.

    PostgreSQL LISTENs on the channel every committed change NOTIFYs; SQLite, which has no notices, wakes every
    ``poll_s`` seconds. Either way the follower then compares the gallery version with its own (a catch-up by
    version), so a notice lost while reconnecting costs only time.
    """

    poll_s: float
    """The longest wait between two version checks when no notice arrives."""

    def wait(self, timeout: float) -> bool:
        """Block until a change notice arrives (True) or ``timeout`` seconds pass (False); reconnects after a
        lost connection (returning True, since notices may have been missed)."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


class GalleryRepository(Protocol):
    """Rows of one gallery: meta, subjects, sealed templates, and the ledger table, in one transactional store."""

    # --- lifecycle and transactions ---------------------------------------------------------------------

    def migrate(self) -> int:
        """Create the schema, or bring an older one up to date, each step in its own transaction; returns the
        schema version. Called by ``Gallery`` after the key check (so a wrong key never writes)."""
        ...

    def migrate_needed(self) -> bool:
        """*read.* Whether the stored schema is older than this faceaudit's (so :meth:`migrate` would change it)."""
        ...

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

    def set_meta(self, key: str, value: str | None) -> None:
        """*write.* Set one meta value (None deletes it), e.g. ``scrub_pending``."""
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

    def taken_refs(self, subject_refs: Sequence[str]) -> set[str]:
        """*read.* Those of these subject refs that are enrolled."""
        ...

    def insert_subjects(self, subjects: Sequence[NewSubject]) -> list[int]:
        """*write.* Insert subjects (refs checked free and distinct) in few statements; their ids, in order."""
        ...

    def insert_templates(self, templates: Sequence[tuple[int, NewTemplate]]) -> list[int]:
        """*write.* Insert ``(subject_id, template)`` rows in few statements; their template ids, in order (a
        subject's templates get ascending ids in the order given, as with :meth:`insert_template`)."""
        ...

    def set_version(self, version: int) -> None:
        """*write.* Set the gallery version (a bulk write that made several changes sets it once)."""
        ...

    def delete_subjects(self, subject_ids: Sequence[int]) -> list[int]:
        """*write.* Delete these subjects, all their templates (and images) and their declared attributes; return the
        deleted template ids."""
        ...

    def insert_declared(self, subject_id: int, sealed: bytes, created_at: str) -> None:
        """*write.* Store (or replace) one subject's sealed declared attributes, apart from its identity row;
        ``delete_subjects`` deletes them with the subject."""
        ...

    def delete_declared(self, subject_id: int) -> bool:
        """*write.* Delete one subject's declared attributes (the subject stays); whether there were any."""
        ...

    def declared_rows(self) -> list[tuple[str, bytes]]:
        """*read.* ``(subject_ref, sealed blob)`` of every subject with declared attributes (for the monitor)."""
        ...

    def forget_subjects(self, erased: dict[str, str]) -> None:
        """*write.* In the erasure's own transaction: every stored search and review keeps only the pseudonym of
        each erased subject (``erased``: ref → pseudonym), never its ref or name."""
        ...

    def sealed_templates_of(self, subject_id: int) -> list[tuple[str, bytes]]:
        """*read.* ``(model_id, sealed blob)`` of every template of one subject, by id (all models, so one whose
        model id was altered is opened and caught)."""
        ...

    def iter_other_models(self, model_id: str) -> Iterator[tuple[int, str, str, bytes]]:
        """*read.* ``(template id, subject_ref, model_id, sealed blob)`` of every template *not* of ``model_id``
        (opened at index builds, so a template whose model id was altered is caught, not silently skipped)."""
        ...

    def set_name_bindings(self, bindings: Sequence[tuple[int, str]]) -> None:
        """*write.* Store ``(subject id, name binding)`` pairs (once, for rows made before names were bound)."""
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

    def template_ids(self, model_id: str) -> list[int]:
        """*read.* The id of every template of ``model_id``, ascending (inside ``snapshot()`` with ``version()``)."""
        ...

    def sealed_templates_by_id(self, template_ids: Sequence[int]) -> Iterator[tuple[int, str, bytes]]:
        """*read.* ``(template id, subject_ref, sealed blob)`` of those of these template ids that exist, by id."""
        ...

    def candidate_rows(self, template_ids: Sequence[int]) -> dict[int, CandidateRow]:
        """*read.* For each of these template ids that still exists: whose it is and the consent expiry."""
        ...

    def change_listener(self) -> ChangeListener:
        """A way for a long-running process to wait for other processes' writes (see :class:`ChangeListener`)."""
        ...

    # --- storage hygiene --------------------------------------------------------------------------------

    def reclaim(self, *, vacuum: bool = False, wait_s: float = 0.0) -> bool:
        """Make deleted bytes unrecoverable from the store's files where the store can (SQLite: a TRUNCATE
        checkpoint of the WAL, and VACUUM when asked). Outside any transaction. Waits at most ``wait_s`` seconds
        for other connections; returns False when another connection's open read still pins the old bytes."""
        ...


SCRUB_PENDING = "scrub_pending"
"""Meta key: set (to the UTC time of the erasure) inside every deleting transaction, cleared by a completed scrub."""
SCRUB_WAIT_S = 5.0
"""How long an erasure waits for other processes' readers before it leaves the scrub pending."""


def complete_scrub(repo: GalleryRepository, *, vacuum: bool = False, wait_s: float = SCRUB_WAIT_S) -> bool:
    """Reclaim deleted bytes (waiting at most ``wait_s``) and clear the pending mark; False while readers block."""
    if not repo.reclaim(vacuum=vacuum, wait_s=wait_s):
        return False
    if SCRUB_PENDING in repo.read_meta():
        with repo.write():
            repo.set_meta(SCRUB_PENDING, None)
        repo.reclaim(wait_s=0.0)  # the cleared mark's own WAL frame holds nothing erased
    return True


def scrub_pending_message(where: object) -> str:
    """What to tell a person whose erasure could not be scrubbed yet (``where``: the file, or the redacted URL)."""
    if is_pg_url(str(where)):
        return (
            f"the erasure is committed, but another session on {where} has a transaction open that still sees the "
            f"erased rows, so their bytes stay in the table files until it ends (gave up waiting after "
            f"{SCRUB_WAIT_S:g} s); the scrub is recorded as pending: run 'faceaudit gallery scrub --db {where}' "
            "once that transaction has ended"
        )
    return (
        f"the erasure is committed, but another process has {where} open, so the erased bytes stay in its "
        f"write-ahead log until it is checkpointed (gave up waiting after {SCRUB_WAIT_S:g} s); the checkpoint is "
        f"recorded as pending: run 'faceaudit gallery scrub --db {where}' once that process has closed"
    )
