"""The :class:`Gallery`: consented enrolment, purpose-bound 1:N identification, 1:1 checks and real erasure.

A thin layer of policy and ledger writes over three parts: the repository (every stored row, in transactions;
:mod:`.sqlite_repository`), the sealer (the template format; :mod:`.crypto`) and the live index
(:mod:`.live_index`). Requests are checked when they are built (:mod:`.values`).

Every change and every search appends one ledger entry inside the same transaction. Subjects appear in the
ledger only as keyed pseudonyms (HMAC-SHA256 of the subject ref under a key derived from the gallery key), from
their first entry on; names never enter the ledger.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceaudit.accountable import AccountableText, SubjectRef
from faceaudit.errors import UsageError
from faceaudit.gallery import locations, sqlite_file
from faceaudit.gallery.base import GalleryBase
from faceaudit.gallery.crypto import TemplateSealer, load_key
from faceaudit.gallery.enrolment import Enrolling
from faceaudit.gallery.index_file import rotate_salt
from faceaudit.gallery.live_index import LiveIndex
from faceaudit.gallery.records import (
    Candidate,
    ExpiredSubjects,
    ScrubPendingWarning,
    SubjectNotFoundError,
    SubjectSummary,
)
from faceaudit.gallery.repository import (
    SCRUB_PENDING,
    SCRUB_WAIT_S,
    GalleryRepository,
    SubjectRow,
    complete_scrub,
    scrub_pending_message,
)
from faceaudit.gallery.search import Searching
from faceaudit.gallery.values import (
    Actor,
    Consent,
    os_user,
    utc_today,
)
from faceaudit.ledger import Ledger, LedgerEntry, ledger_key_from_env, utc_now

if TYPE_CHECKING:
    from faceaudit.face.quality import QualityGate
    from faceaudit.pipeline.engine import Engine


def default_key_file(db: str | os.PathLike) -> Path | None:
    """Where ``gallery init`` keeps the key when ``FACEAUDIT_KEY`` is unset: next to the database file (None for
    a ``postgresql://`` database: give a key file or ``FACEAUDIT_KEY``)."""
    if locations.is_pg_url(db):
        return None
    return Path(f"{os.fspath(db)}.key")


class Gallery(Enrolling, Searching, GalleryBase):
    """An encrypted gallery of consented subjects in one SQLite file, with its accountability ledger.

    ``key`` is the 32-byte gallery key (bytes, hex or base64); without it, ``$FACEAUDIT_KEY`` and then
    ``key_file`` (default ``PATH.key``) are tried. A wrong or missing key raises
    :class:`~faceaudit.gallery.crypto.GalleryKeyError` before anything is written. ``create`` makes a new gallery
    when ``path`` does not exist. ``engine`` is the recognition engine (a default SFace engine is made on first
    use). The ledger is HMAC-signed when ``ledger_key`` (default ``$FACEAUDIT_LEDGER_KEY``) is set.
    ``repository`` is another store (any :class:`~faceaudit.gallery.repository.GalleryRepository`, e.g.
    PostgreSQL) to use instead of the SQLite file at ``path``; ``path`` then only names the gallery in messages.
    ``index_file`` keeps the search index of an SQLite gallery in ``PATH.index`` (sealed, valid only at its gallery
    version; see :mod:`.index_file`), so that a new process loads it instead of opening every template again.

    Every method that writes a ledger entry takes ``operator`` as a name (local use: the OS user is recorded
    beside it) or as an :class:`~faceaudit.gallery.values.Actor` (e.g. ``Actor.service(principal, key_id)``).
    """

    def __init__(
        self,
        path: str | os.PathLike = "faceaudit.db",
        key: str | bytes | None = None,
        *,
        key_file: str | os.PathLike | None = None,
        engine: Engine | None = None,
        create: bool = True,
        index: str = "exact",
        quality_gate: QualityGate | None = None,
        ledger_key: bytes | None = None,
        operator: str | Actor | None = None,
        repository: GalleryRepository | None = None,
        index_file: bool = False,
    ) -> None:
        self.path = locations.location(path)
        if repository is None and locations.is_file_missing(path) and not create:
            raise sqlite_file.GalleryNotFoundError(
                f"{self.path}: no gallery here; create one with 'faceaudit gallery init --db {self.path}'"
            )
        index = locations.normalise_index(index)
        self._sealer = TemplateSealer(
            load_key(key, key_file if key_file is not None else default_key_file(path))
        )
        self._engine = engine
        self._quality_gate = quality_gate
        ledger_key = ledger_key if ledger_key is not None else ledger_key_from_env()
        repo = repository or locations.open_repository(path, create=True)
        try:
            meta = self._open_or_initialise(repo, index, operator, ledger_key, create)
        except BaseException:
            repo.close()
            raise
        self._repo: GalleryRepository = repo
        self.gallery_id = meta["gallery_id"]
        self.index_kind = meta.get("index_kind", "exact")
        self._ledger = Ledger(
            repo.ledger_store(), key=ledger_key, expect_signed=sqlite_file.ledger_signed(meta)
        )
        self._live = LiveIndex(repo, self._sealer, self.gallery_id, self.index_kind, use_file=index_file)
        if "names_bound" not in meta:
            self._bind_names()
        if (
            SCRUB_PENDING in meta
        ):  # an erasure whose process died (or was blocked) before its scrub: finish it
            if self._live.file is not None:
                self._live.file.discard_if_invalidated(repo)
            complete_scrub(repo, wait_s=0.0)
        self._live.prefetch()  # with index_file: the index loads while the engine does

    def _bind_names(self) -> None:
        """Once, for a gallery made before display names were bound: bind every stored name to its subject."""
        with self._repo.write():
            if "names_bound" in self._repo.read_meta():
                return
            rows = [s for s in self._repo.list_subjects() if s.name_binding is None]
            self._repo.set_name_bindings(
                [(s.id, self._sealer.name_binding(self.gallery_id, s.subject_ref, s.name)) for s in rows]
            )
            self._repo.set_meta("names_bound", "1")

    # --- lifecycle --------------------------------------------------------------------------------------

    def _open_or_initialise(
        self,
        repo: GalleryRepository,
        index: str,
        operator: str | Actor | None,
        ledger_key: bytes | None,
        create: bool,
    ) -> dict[str, str]:
        meta = repo.read_meta()
        if meta:
            sqlite_file.check_meta(meta, self.path)
            self._sealer.check_key(bytes.fromhex(meta["key_check"]), meta["gallery_id"], str(self.path))
            repo.migrate()
            return meta
        if not create:
            raise sqlite_file.GalleryNotFoundError(
                f"{self.path}: not an initialised gallery; create one with 'faceaudit gallery init --db {self.path}'"
            )
        repo.migrate()
        actor = Actor.of(operator or os.environ.get("FACEAUDIT_OPERATOR") or os_user(), "the operator's name")
        ledger = Ledger(repo.ledger_store(), key=ledger_key)
        with repo.write():
            if not repo.read_meta():  # else another process initialised it meanwhile
                gallery_id = str(uuid.uuid4())
                repo.write_meta(
                    {
                        "format": sqlite_file.GALLERY_FORMAT,
                        "gallery_id": gallery_id,
                        "created_at": utc_now(),
                        "version": "0",
                        "index_kind": index,
                        "key_check": self._sealer.key_check(gallery_id).hex(),
                        "ledger_signed": "1" if ledger_key is not None else "0",
                        "names_bound": "1",
                    }
                )
                ledger.append(
                    "configure",
                    actor.operator,
                    auth=actor.ledger_auth(),
                    gallery_id=gallery_id,
                    gallery_version=0,
                    params={
                        "event": "init",
                        "index": index,
                        "schema_version": sqlite_file.SCHEMA_VERSION,
                        "ledger_signed": ledger.key is not None,
                    },
                )
        meta = sqlite_file.check_meta(repo.read_meta(), self.path)
        self._sealer.check_key(bytes.fromhex(meta["key_check"]), meta["gallery_id"], str(self.path))
        return meta

    def close(self) -> None:
        """Close the database (checkpointing the WAL) and drop the in-memory index."""
        self._live.close()
        self._repo.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- queries ----------------------------------------------------------------------------------------

    def has_subject(self, subject_ref: str) -> bool:
        """Whether ``subject_ref`` is enrolled."""
        return self._repo.find_subject(subject_ref) is not None

    def subjects(self) -> list[dict[str, Any]]:
        """Every enrolled subject with its consent record and number of templates."""
        return [
            SubjectSummary(
                s.subject_ref,
                self._checked_name(s.subject_ref, s.name, s.name_binding),
                s.consent_basis,
                s.consent_by,
                s.consent_at,
                s.consent_expires,
                s.created_at,
                s.n_templates,
            ).as_dict()
            for s in self._repo.list_subjects()
        ]

    def declared_groups(self, attribute: str) -> dict[str, str]:
        """For the post-market monitor only: subject ref → the value that subject declared for ``attribute``
        (subjects who declared nothing for it are absent). It is counted into groups and never shown per person;
        no route, page or command returns it as it is."""
        from faceaudit.gallery.declared import values_of

        out: dict[str, str] = {}
        for ref, blob in self._repo.declared_rows():
            plain = self._sealer.open_declared(blob, gallery_id=self.gallery_id, subject_ref=ref)
            value = values_of(plain).get(attribute)
            if value is not None:
                out[ref] = value
        return out

    def withdraw_declared(
        self, subject_ref: SubjectRef | str, *, reason: AccountableText | str, operator: str | Actor
    ) -> int:
        """Delete a subject's declared attributes (the person withdrew that consent; the subject stays enrolled)
        and scrub their bytes; returns the ledger seq of the ``withdraw_declared`` entry. SubjectNotFoundError
        when the subject is not enrolled; UsageError when it declared nothing."""
        started = utc_now()
        subject_ref = SubjectRef(subject_ref, "withdrawal needs a subject ref")
        reason = AccountableText(reason, "withdrawal needs a reason (--reason)")
        actor = Actor.of(operator, "withdrawal needs the operator's name (--operator)")
        with self._repo.write():
            row = self._repo.find_subject(subject_ref)
            if row is None:
                raise SubjectNotFoundError(f"subject {subject_ref!r} is not enrolled")
            if not self._repo.delete_declared(row.id):
                raise UsageError(f"subject {subject_ref!r} has no declared attributes")
            if SCRUB_PENDING not in self._repo.read_meta():
                self._repo.set_meta(SCRUB_PENDING, started)
            entry = self._record(
                "withdraw_declared",
                actor,
                started,
                purpose=reason,
                result={"subject": self.pseudonym(subject_ref)},
            )
        self.scrub_or_warn()
        return entry.seq

    def reference_images(
        self, subject_ref: str, *, operator: str | Actor, purpose: str | None = None, case: str | None = None
    ) -> list[bytes]:
        """The stored reference images of a subject (encoded bytes; empty when none were stored).

        Viewing them is logged (``view_images``) when there is anything to see.
        """
        started = utc_now()
        actor = Actor.of(operator, "viewing images needs the operator's name (--operator)")
        row = self._repo.find_subject(SubjectRef(subject_ref, "viewing images needs a subject ref"))
        if row is None:
            raise SubjectNotFoundError(f"subject {subject_ref!r} is not enrolled")
        bound = {"gallery_id": self.gallery_id, "subject_ref": row.subject_ref}
        images = [
            self._sealer.open_image(b, model_id=m, **bound) for m, b in self._repo.sealed_images_of(row.id)
        ]
        if images:
            with self._repo.write():
                self._record(
                    "view_images",
                    actor,
                    started,
                    purpose=purpose,
                    case_ref=case,
                    result={"subject": self.pseudonym(row.subject_ref), "n_images": len(images)},
                )
        return images

    # --- erasure ------------------------------------------------------------------------------------------

    def erase(
        self,
        subject_ref: SubjectRef | str,
        *,
        reason: AccountableText | str,
        operator: str | Actor,
        vacuum: bool = False,
        scrub: bool = True,
    ) -> int:
        """Erase a subject for real: its row, its templates (and images), its index entries; returns the ledger seq.

        ``secure_delete`` zeroes the deleted bytes and a TRUNCATE checkpoint moves them into the file and empties
        the WAL (``vacuum`` also rewrites the whole file). While another process reads the gallery the checkpoint
        cannot finish: :meth:`scrub` then gives up after ``SCRUB_WAIT_S`` seconds, the gallery records the
        checkpoint as pending (:attr:`scrub_pending`) and a :class:`ScrubPendingWarning` is issued; a later
        :meth:`scrub` (``faceaudit gallery scrub``) completes it. ``scrub=False`` leaves the scrub to the caller.
        """
        started = utc_now()
        subject_ref = SubjectRef(subject_ref, "erasure needs a subject ref")
        reason = AccountableText(reason, "erasure needs a reason (--reason)")
        actor = Actor.of(operator, "erasure needs the operator's name (--operator)")

        def select() -> list[SubjectRow]:
            row = self._repo.find_subject(subject_ref)
            if row is None:
                raise SubjectNotFoundError(f"subject {subject_ref!r} is not enrolled (already erased?)")
            return [row]

        entry, _ = self._delete_subjects(
            select,
            "erase",
            actor,
            started,
            lambda rows, n: {
                "purpose": reason,
                "result": {"subject": self.pseudonym(subject_ref), "n_templates": n},
            },
        )
        if scrub:
            self.scrub_or_warn(vacuum)
        return entry.seq

    def expire(
        self,
        as_of: date | None = None,
        *,
        operator: str | Actor,
        vacuum: bool = False,
        scrub: bool = True,
    ) -> ExpiredSubjects:
        """Erase every subject whose consent has expired by ``as_of`` (default today); returns their refs (with
        ``.ledger_seq``, the seq of the expiry's ledger entry).

        The deleted bytes are scrubbed as in :meth:`erase` (``vacuum`` as there: on PostgreSQL only ``VACUUM FULL``
        takes them out of the table files).
        """
        started = utc_now()
        as_of = as_of or utc_today()
        actor = Actor.of(operator, "expiry needs the operator's name (--operator)")
        entry, rows = self._delete_subjects(
            lambda: self._repo.expired_subjects(as_of.isoformat()),
            "expire",
            actor,
            started,
            lambda rows, n: {
                "params": {"as_of": as_of.isoformat()},
                "result": {
                    "n_subjects": len(rows),
                    "subjects": [self.pseudonym(r.subject_ref) for r in rows],
                    "n_templates": n,
                },
            },
        )
        if rows and scrub:
            self.scrub_or_warn(vacuum)
        return ExpiredSubjects([r.subject_ref for r in rows], entry.seq)

    def _delete_subjects(
        self,
        select: Callable[[], list[SubjectRow]],
        action: str,
        actor: Actor,
        started: str,
        describe: Callable[[list[SubjectRow], int], dict[str, Any]],
    ) -> tuple[LedgerEntry, list[SubjectRow]]:
        """The one delete path: select subjects, delete them and their templates, pseudonymise them in every
        stored search and review, bump the version and mark a scrub pending (when any were deleted), and log
        ``action`` with ``describe(rows, n_templates)``, all in one transaction; then update the live index."""
        with self._repo.write():
            before = self._repo.version()
            rows = select()
            tids = self._repo.delete_subjects([r.id for r in rows])
            if rows:
                self._repo.forget_subjects({r.subject_ref: self.pseudonym(r.subject_ref) for r in rows})
            version = before
            if rows:
                version = self._repo.bump_version()
                rotate_salt(self._repo)  # no index file written before this opens again
                if SCRUB_PENDING not in self._repo.read_meta():
                    self._repo.set_meta(SCRUB_PENDING, started)
            entry = self._record(action, actor, started, version, **describe(rows, len(tids)))
        self._live.after_change(before, version, remove=tids)
        return entry, rows

    @property
    def scrub_pending(self) -> str | None:
        """When the oldest erasure whose bytes may still sit in the WAL was made (UTC), or None."""
        return self._repo.read_meta().get(SCRUB_PENDING)

    def scrub(self, *, vacuum: bool = False, wait_s: float = SCRUB_WAIT_S) -> bool:
        """Checkpoint the WAL into the file and truncate it (and VACUUM if asked), so erased bytes are gone.

        Waits at most ``wait_s`` seconds for other processes' readers. Returns True when done (the pending mark
        is cleared), False when a reader still holds the old bytes (the mark stays).
        """
        return complete_scrub(self._repo, vacuum=vacuum, wait_s=wait_s)

    def scrub_or_warn(self, vacuum: bool = False) -> bool:
        """:meth:`scrub`, issuing a :class:`ScrubPendingWarning` when another process's reader holds the old bytes
        (for callers that erased with ``scrub=False`` and changed more records of the subject since)."""
        if self.scrub(vacuum=vacuum):
            return True
        warnings.warn(ScrubPendingWarning(scrub_pending_message(self.path)), stacklevel=3)
        return False


def _os_user() -> str:
    """Kept for callers of the old private helper; see :func:`faceaudit.gallery.values.os_user`."""
    return os_user()


__all__ = ["Actor", "Candidate", "Consent", "Gallery", "default_key_file"]
