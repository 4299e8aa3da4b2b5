"""Which store and which index a gallery uses: ``--db PATH`` (SQLite) or ``--db postgresql://…``, and
``--index exact|hnsw|milvus:URI``."""

from __future__ import annotations

import os
from pathlib import Path

from faceaudit.errors import UsageError
from faceaudit.gallery.repository import GalleryRepository
from faceaudit.pgsql import is_pg_url, redact


def open_repository(db: str | os.PathLike, *, create: bool = False) -> GalleryRepository:
    """The repository of ``db``: a PostgreSQL database for a ``postgresql://`` URL, else an SQLite file."""
    if is_pg_url(db):
        from faceaudit.gallery.pg_repository import PostgresGalleryRepository

        return PostgresGalleryRepository.open(str(db))
    from faceaudit.gallery.sqlite_repository import SQLiteGalleryRepository

    return SQLiteGalleryRepository.open(db, create=create)


def holds_gallery(db: str | os.PathLike) -> bool:
    """Whether ``db`` already holds an initialised gallery (its ``meta`` table has values); no key needed."""
    repo = open_repository(db)
    try:
        return bool(repo.read_meta())
    finally:
        repo.close()


def location(db: str | os.PathLike) -> Path | str:
    """How messages name ``db``: the file's path, or the URL with its password masked."""
    return redact(str(db)) if is_pg_url(db) else Path(db)


def is_file_missing(db: str | os.PathLike) -> bool:
    """True for an SQLite path with no (or an empty) file; a database URL is never "missing" before connecting."""
    if is_pg_url(db):
        return False
    path = Path(db)
    return not (path.exists() and path.stat().st_size > 0)


def normalise_index(index: str) -> str:
    """``exact``, ``hnsw`` or ``milvus:URI`` (a milvus-lite file made absolute, so that it means the same file from
    any working directory); UsageError otherwise."""
    from faceaudit.gallery.index import INDEX_KINDS
    from faceaudit.gallery.milvus_index import PREFIX, is_milvus, parse_target

    if is_milvus(index):
        target = parse_target(index)
        query = index.partition("?")[2]
        return f"{PREFIX}{target.uri}" + (f"?{query}" if query else "")
    if index not in INDEX_KINDS:
        raise UsageError(f"--index must be one of {', '.join(INDEX_KINDS)} or milvus:URI")
    return index


def make_index(dim: int, kind: str, gallery_id: str, model_id: str):
    """A fresh, empty search index of ``kind`` for one gallery and model (see :func:`normalise_index`)."""
    from faceaudit.gallery.milvus_index import MilvusIndex, collection_name, is_milvus

    if is_milvus(kind):
        return MilvusIndex(dim, kind, collection_name(gallery_id, model_id))
    from faceaudit.gallery.index import TemplateIndex

    return TemplateIndex(dim, kind)
