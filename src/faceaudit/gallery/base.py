"""What every part of an open gallery shares: its repository, sealer, live index, engine and ledger.

:class:`GalleryBase` holds that state and the few helpers on it. :class:`~faceaudit.gallery.Gallery` is built from
it with :class:`~faceaudit.gallery.enrolment.Enrolling` and :class:`~faceaudit.gallery.search.Searching`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faceaudit.accountable import SubjectRef
from faceaudit.gallery.crypto import TemplateSealer
from faceaudit.gallery.live_index import LiveIndex
from faceaudit.gallery.repository import ChangeListener, GalleryRepository
from faceaudit.gallery.sqlite_file import GalleryIntegrityError
from faceaudit.gallery.values import Actor
from faceaudit.ledger import Ledger, LedgerEntry

if TYPE_CHECKING:
    from faceaudit.face.quality import QualityGate
    from faceaudit.gallery.index import TemplateIndex
    from faceaudit.pipeline.engine import Engine

DEFAULT_DIM = 128
"""Template width assumed for an empty gallery whose engine is not loaded yet."""


class GalleryBase:
    """The state of an open gallery and the helpers its parts share (set up by ``Gallery.__init__``)."""

    gallery_id: str
    index_kind: str
    _repo: GalleryRepository
    _sealer: TemplateSealer
    _live: LiveIndex
    _ledger: Ledger
    _engine: Engine | None
    _quality_gate: QualityGate | None

    @property
    def engine(self) -> Engine:
        """The recognition engine (made on first use)."""
        if self._engine is None:
            from faceaudit.pipeline.engine import Engine

            self._engine = Engine()
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def quality_gate(self) -> QualityGate:
        """The minimum quality of references and probes (the default gate unless one was given)."""
        if self._quality_gate is None:
            from faceaudit.face.quality import QualityGate

            self._quality_gate = QualityGate()
        return self._quality_gate

    @quality_gate.setter
    def quality_gate(self, gate: QualityGate) -> None:
        self._quality_gate = gate

    @property
    def ledger(self) -> Ledger:
        """The accountability ledger of this gallery."""
        return self._ledger

    @property
    def version(self) -> int:
        """The gallery version: it grows by one with every enrolment and erasure."""
        return self._repo.version()

    def pseudonym(self, subject_ref: SubjectRef | str) -> str:
        """The keyed hash that stands for ``subject_ref`` in the ledger (of the ref as a
        :class:`~faceaudit.accountable.SubjectRef`: every accepted spelling of one ref has one pseudonym)."""
        return self._sealer.pseudonym(SubjectRef(subject_ref))

    def photo_digest(self, sha256: str | None) -> str | None:
        """What the ledger holds for a photo with this SHA-256: a keyed hash (HMAC-SHA256 under a key derived from
        the gallery key), so the photo alone proves nothing after erasure. A key holder checks a photo with it."""
        return self._sealer.ledger_digest("photo", sha256) or None if sha256 else None

    def _checked_name(self, subject_ref: str, name: str, binding: str | None) -> str:
        """``name`` after checking that it is the name enrolled with ``subject_ref`` (GalleryIntegrityError)."""
        if not self._sealer.name_is_bound(binding, self.gallery_id, subject_ref, name):
            raise GalleryIntegrityError(
                f"subject {subject_ref!r}: its display name was altered or moved from another subject "
                "(it is not the name enrolled with this ref); restore the file from a backup"
            )
        return name

    def _record(
        self, action: str, actor: Actor, started_at: str, version: int | None = None, **fields: Any
    ) -> LedgerEntry:
        """Append one ledger entry (inside the caller's write transaction)."""
        return self._ledger.append(
            action,
            actor.operator,
            auth=actor.ledger_auth(),
            started_at=started_at,
            gallery_id=self.gallery_id,
            gallery_version=self._repo.version() if version is None else version,
            **fields,
        )

    # --- the in-memory index ------------------------------------------------------------------------------

    def _ensure_index(self) -> TemplateIndex:
        return self._live.ensure(self.engine.model_id, self._dim())

    def _dim(self) -> int:
        return int(getattr(self._engine, "dim", DEFAULT_DIM)) if self._engine is not None else DEFAULT_DIM

    def sync_index(self) -> tuple[int, int]:
        """Catch a built search index up with changes other processes made to the store; ``(added, removed)``
        templates. Does nothing before the index is first built."""
        return self._live.catch_up(self._dim())

    @property
    def index_version(self) -> int:
        """The gallery version the search index reflects (-1 before it is built)."""
        return self._live.version if self._live.index is not None else -1

    def change_listener(self) -> ChangeListener:
        """A listener for other processes' changes to this gallery's store (see ``IndexFollower``)."""
        return self._repo.change_listener()

    def rebuild_index(self, model_id: str | None = None) -> int:
        """Rebuild the search index from the sealed templates in the database; returns the template count."""
        return self._live.rebuild(model_id or self.engine.model_id, self._dim())
