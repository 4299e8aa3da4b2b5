"""The in-memory search index of an open gallery, kept in step with the stored templates.

The store is the source of truth. The index is built from the opened templates when first needed and follows this
process's own enrolments and erasures in place. When the gallery version shows that another process changed the
gallery, it catches up by version: it compares the stored template ids with its own, opens only the new
templates and drops the erased ones (a Milvus index, shared between processes, is checked and rebuilt instead).
FAISS is imported only when an index is built.

With ``use_file`` (the CLI), the index of an SQLite gallery is loaded from its index file when that is valid,
caught up to the gallery version, and written back after a rebuild or catch-up (:mod:`.index_file`). Whether or
not it uses the file, every erasure through a live index removes the file before it returns.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from faceaudit.gallery.crypto import GalleryKeyError, TemplateSealer
from faceaudit.gallery.index_file import IndexFile, IndexFileRefused, SavedIndex, index_file_of
from faceaudit.gallery.repository import GalleryRepository
from faceaudit.gallery.sqlite_file import GalleryIntegrityError

if TYPE_CHECKING:
    from faceaudit.gallery.index import TemplateIndex


class LiveIndex:
    """One model's templates of one gallery in a :class:`~faceaudit.gallery.index.TemplateIndex`."""

    def __init__(
        self,
        repo: GalleryRepository,
        sealer: TemplateSealer,
        gallery_id: str,
        kind: str,
        *,
        use_file: bool = False,
    ) -> None:
        self._repo = repo
        path = index_file_of(repo)
        self.file = None if path is None else IndexFile(path, sealer, gallery_id)
        self.use_file = use_file and self.file is not None and kind in ("exact", "hnsw")
        self.origin = ""
        """How the index was made: ``"rebuilt"``, ``"file"`` (loaded as saved) or ``"file+caught up"``."""
        self._pending: Future | None = None  # the index file, being read ahead (prefetch)
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
        at ``before`` (another process wrote meanwhile) it is left stale, and caught up on next use. After an
        erasure (``remove`` given) the index file is removed, whether or not this index uses it.
        """
        if remove is not None and version != before and self.file is not None:
            self.file.discard()
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
            if not self._load_file(model_id):
                self.rebuild(model_id, dim)
                self._save_file()
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
        self.origin = "rebuilt"
        return len(ids)

    def prefetch(self) -> None:
        """Start reading the index file (of whichever model it holds) in a thread, so that it loads while the
        caller loads its models; :meth:`ensure` takes it when it is of the model asked for."""
        if not self.use_file or self._pending is not None:
            return
        assert self.file is not None
        version, salt = self.file.expected(self._repo)
        pool = ThreadPoolExecutor(1, thread_name_prefix="faceaudit-index-file")
        self._pending = pool.submit(self._read_file, version, salt, None)
        pool.shutdown(wait=False)

    def _read_file(
        self, version: int, salt: str | None, model_id: str | None
    ) -> tuple[SavedIndex, TemplateIndex] | None:
        """The saved index and the index made from it, or None (no repository use: it may run in a thread)."""
        from faceaudit.gallery.index import TemplateIndex

        assert self.file is not None
        saved = self.file.read(version, salt, self.kind, model_id)
        if saved is None:
            return None
        return saved, TemplateIndex.from_state(saved.dim, self.kind, saved.arrays)

    def _load_file(self, model_id: str) -> bool:
        """Take the index of ``model_id`` from the index file (read ahead by :meth:`prefetch`, or now) when it is
        valid under the gallery's current salt, and catch it up, rewriting the file when that changed anything;
        False when there is no valid file to take."""
        if not self.use_file:
            return False
        assert self.file is not None
        pending, self._pending = self._pending, None
        version, salt = self.file.expected(self._repo)
        try:
            loaded = pending.result() if pending is not None else self._read_file(version, salt, model_id)
        except IndexFileRefused as exc:
            self.file.report(exc)
            return False
        if loaded is None or loaded[0].model_id != model_id or loaded[0].salt != salt:
            return False  # none, another model's, or an erasure since it was read: rebuilt
        saved, index = loaded
        self.close()
        self.index, self.version, self.model_id = index, saved.version, model_id
        self._ids = np.sort(saved.arrays["ids"])
        self.origin = "file"
        if self.catch_up(saved.dim) != (0, 0) or self.version != saved.version:
            self.origin = "file+caught up"
            self._save_file()
        return True

    def _save_file(self) -> None:
        if self.use_file and self.index is not None:
            assert self.file is not None
            self.file.save(self._repo, self.model_id, self.kind, self.version, self.index.state())

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
