"""The in-memory search index of an open gallery, kept in step with the stored templates.

The store is the source of truth. The index is built from the opened templates when first needed and follows this
process's own enrolments and erasures in place. When the gallery version shows that another process changed the
gallery, it catches up by version: it compares the stored template ids with its own, opens only the new
templates and drops the erased ones (a Milvus index, shared between processes, is checked and rebuilt instead).
FAISS is imported only when an index is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from faceaudit.gallery.crypto import GalleryKeyError, TemplateSealer
from faceaudit.gallery.repository import GalleryRepository
from faceaudit.gallery.sqlite_file import GalleryIntegrityError

if TYPE_CHECKING:
    from faceaudit.gallery.index import TemplateIndex


class LiveIndex:
    """One model's templates of one gallery in a :class:`~faceaudit.gallery.index.TemplateIndex`."""

    def __init__(self, repo: GalleryRepository, sealer: TemplateSealer, gallery_id: str, kind: str) -> None:
        self._repo = repo
        self._sealer = sealer
        self._gallery_id = gallery_id
        self.kind = kind
        self.index: TemplateIndex | None = None
        self.version = -1
        self.model_id = ""
        self._ids = np.zeros(0, np.int64)  # the template ids in the index, ascending

    def close(self) -> None:
        """Drop the index (and its threads)."""
        if self.index is not None:
            self.index.close()
            self.index = None

    def after_change(
        self,
        before: int,
        version: int,
        *,
        add: tuple[str, np.ndarray, np.ndarray] | None = None,
        remove: list[int] | None = None,
    ) -> None:
        """Apply this process's change (gallery version ``before`` → ``version``) to the live index.

        ``add`` is ``(model_id, template ids, vectors)``; ``remove`` lists template ids. When the index was not
        at ``before`` (another process wrote meanwhile) it is left stale, and caught up on next use.
        """
        if self.index is None:
            return
        if self.version != before:
            return  # another process wrote meanwhile: the next use catches up by version
        if add is not None and add[0] == self.model_id:
            self.index.add(add[1], add[2])
            self._ids = np.union1d(self._ids, np.asarray(add[1], np.int64))
        if remove:
            self.index.remove(np.array(remove, np.int64))
            self._ids = np.setdiff1d(self._ids, np.asarray(remove, np.int64), assume_unique=True)
        self.version = version

    def ensure(self, model_id: str, dim: int) -> TemplateIndex:
        """The index of ``model_id`` at the current gallery version (caught up, or rebuilt, when stale)."""
        if self.index is None or self.model_id != model_id:
            self.rebuild(model_id, dim)
        else:
            self.catch_up(dim)
        assert self.index is not None
        return self.index

    def catch_up(self, dim: int) -> tuple[int, int]:
        """Bring a built index to the current gallery version by the difference of template ids, in one read
        snapshot; returns ``(added, removed)``. Nothing to do without an index or at the current version; a Milvus
        index (shared between processes) is checked against the store and rebuilt instead."""
        from faceaudit.gallery.milvus_index import is_milvus

        if self.index is None or self.version == self._repo.version():
            return 0, 0
        if is_milvus(self.kind):
            return self.rebuild(self.model_id, dim), 0
        with self._repo.snapshot():
            version = self._repo.version()
            stored = np.asarray(self._repo.template_ids(self.model_id), np.int64)
            new = np.setdiff1d(stored, self._ids, assume_unique=True)
            gone = np.setdiff1d(self._ids, stored, assume_unique=True)
            ids, vectors = self._sealer.open_many(
                self._repo.sealed_templates_by_id(new.tolist()),
                gallery_id=self._gallery_id,
                model_id=self.model_id,
                n=len(new),
                dim=dim,
            )
        if len(gone):
            self.index.remove(gone)
        if len(ids):
            self.index.add(ids, vectors)
        self._ids, self.version = stored, version
        return len(ids), len(gone)

    def rebuild(self, model_id: str, dim: int) -> int:
        """Rebuild from the sealed templates of ``model_id`` in one read snapshot; returns the template count.

        ``dim`` is the width used when there is no template yet.
        """
        from faceaudit.gallery.locations import make_index

        with self._repo.snapshot():
            version = self._repo.version()
            n = self._repo.count_templates(model_id)
            ids, vectors = self._sealer.open_many(
                self._repo.iter_sealed_templates(model_id),
                gallery_id=self._gallery_id,
                model_id=model_id,
                n=n,
                dim=dim,
            )
            self._check_other_models(model_id)
        self.close()
        index = make_index(vectors.shape[1] if len(vectors) else dim, self.kind, self._gallery_id, model_id)
        index.build(ids, vectors)
        self.index, self.version, self.model_id = index, version, model_id
        self._ids = np.sort(np.asarray(ids, np.int64))
        return len(ids)

    def _check_other_models(self, model_id: str) -> None:
        """Open every template of the other models: one whose ``model_id`` was altered in the store would otherwise
        drop out of every search without a word."""
        for tid, subject_ref, stored_model, blob in self._repo.iter_other_models(model_id):
            try:
                self._sealer.open(
                    blob, gallery_id=self._gallery_id, subject_ref=subject_ref, model_id=stored_model
                )
            except GalleryKeyError:
                raise GalleryIntegrityError(
                    f"template {tid} of subject {subject_ref!r} does not open as a template of model "
                    f"{stored_model!r}: its model id (or subject) was altered; restore the file from a backup"
                ) from None
