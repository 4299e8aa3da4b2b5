"""The two stores a gallery can live in, for the suites that run on both (see the ``backend`` fixture).

A :class:`GalleryStore` names one empty gallery location (an SQLite file, or a fresh database of the session's
throwaway PostgreSQL cluster) and the key file that goes with it; :class:`RawDb` is SQL straight to that store,
as an attacker or an auditor with the files would use it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("sqlite", "postgresql")


class RawDb:
    """SQL straight to the store (``?`` placeholders on both databases), committed statement by statement."""

    def __init__(self, db: str | Path) -> None:
        self.pg = str(db).startswith("postgresql://")
        if self.pg:
            import psycopg

            self.conn = psycopg.connect(str(db), autocommit=True)
        else:
            self.conn = sqlite3.connect(db, isolation_level=None, timeout=30)

    def execute(self, sql: str, params: tuple = ()):
        if self.pg:
            return self.conn.execute(sql.replace("?", "%s"), params or None)
        return self.conn.execute(sql, params)

    def scalar(self, sql: str, params: tuple = ()):
        """The first column of the first row."""
        return self.execute(sql, params).fetchone()[0]

    def commit(self) -> None:
        """Nothing to do (autocommit); kept so that tests read like the sqlite3 module."""

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RawDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GalleryStore:
    """Where one test's gallery lives: ``kind`` is ``sqlite`` or ``postgresql``; ``db`` is what ``--db`` takes."""

    kind: str
    db: str
    key_file: Path
    folder: Path
    """A private folder for the test's other files (logs, images, audits)."""

    @property
    def pg(self) -> bool:
        return self.kind == "postgresql"

    def args(self) -> list[str]:
        """``--db DB --key-file KEY`` for the gallery, identify and serve commands."""
        return ["--db", self.db, "--key-file", str(self.key_file)]

    def raw(self) -> RawDb:
        """A raw SQL connection to the store (close it, or use it in a ``with`` block)."""
        return RawDb(self.db)

    def count(self, table: str) -> int:
        """The number of rows in ``table``."""
        with self.raw() as conn:
            return int(conn.scalar(f"SELECT COUNT(*) FROM {table}"))

    def gallery(self, **kwargs):
        """``Gallery(db, key_file=…)`` on this store (``create=True`` to initialise it)."""
        from faceaudit.gallery import Gallery

        return Gallery(self.db, key_file=self.key_file, **kwargs)


def sqlite_store(folder: Path) -> GalleryStore:
    """An SQLite gallery file in ``folder``, its key file beside it (where ``gallery init`` puts it)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "g.db"
    return GalleryStore("sqlite", str(db), Path(f"{db}.key"), folder)


def postgres_store(url: str, folder: Path) -> GalleryStore:
    """A PostgreSQL gallery at ``url``, its key file in ``folder`` (a database keeps no file beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    return GalleryStore("postgresql", url, folder / "gallery.key", folder)


def stored_bytes(store: GalleryStore) -> bytes:
    """Every byte the store keeps on disk, as someone with the files would read them: the SQLite file and its WAL
    (not the key file), or, after a ``CHECKPOINT``, every file of the PostgreSQL database's folder (tables,
    indexes, TOAST; read through ``pg_read_binary_file`` as the test cluster's superuser)."""
    if not store.pg:
        db = Path(store.db)
        return b"".join(
            p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file() and p.suffix != ".key"
        )
    with store.raw() as conn:
        conn.execute("CHECKPOINT")  # write the pages out so the files show what the tables hold
        folder = "base/" + str(conn.scalar("SELECT oid FROM pg_database WHERE datname = current_database()"))
        parts = conn.execute(  # a file unlinked meanwhile (VACUUM FULL) reads as NULL
            "SELECT pg_read_binary_file(f, 0, (pg_stat_file(f, true)).size, true) "
            "FROM (SELECT ? || '/' || name AS f FROM pg_ls_dir(?) AS name) AS files",
            (folder, folder),
        ).fetchall()
    return b"".join(bytes(p[0]) for p in parts if p[0] is not None)
