"""The SQLite :class:`~faceaudit.gallery.repository.GalleryRepository`: the file, its connection and transactions,
and reclaiming erased bytes; the rows are :class:`~faceaudit.gallery.sql_rows.SQLRows`, shared with PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceaudit.gallery import search_records, sqlite_file
from faceaudit.gallery.sql_rows import SQLRows
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore

RECLAIM_TRY_MS = 100
"""How long each checkpoint try waits for readers before it reports busy."""


class SQLiteGalleryRepository(SQLRows):
    """A gallery in one SQLite file (WAL, ``secure_delete``, ``BEGIN IMMEDIATE`` writers), see :mod:`.sqlite_file`."""

    dialect = search_records.SQLITE

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params)

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = False) -> SQLiteGalleryRepository:
        """Connect to the gallery file at ``path``; ``create`` allows a new (empty) file. The schema is not touched.

        Raises NotAGalleryError for any other application's file, GalleryNotFoundError for a missing or empty
        file without ``create``, and GalleryDamagedError for a gallery that lost a table.
        """
        conn = sqlite_file.connect(path, create=create)
        try:
            sqlite_file.check_tables(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, Path(path))

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (for tools and tests that inspect the file)."""
        return self._conn

    # --- lifecycle and transactions ---------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending schema migrations, each in its own transaction; returns the schema version."""
        return sqlite_file.migrate(self._conn)

    def migrate_needed(self) -> bool:
        """Whether the file's schema is older than this faceaudit's."""
        return sqlite_file.schema_version(self._conn) < sqlite_file.SCHEMA_VERSION

    @contextmanager
    def write(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` when the block raises)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A deferred read transaction: one consistent view of the file until the block ends."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def ledger_store(self) -> SQLiteLedgerStore:
        """The ``ledger`` table on this connection."""
        return SQLiteLedgerStore(self._conn)

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL when the last connection closes)."""
        self._conn.close()

    # --- meta -------------------------------------------------------------------------------------------

    def read_meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (empty when the file has none yet)."""
        return sqlite_file.read_meta(self._conn)

    # --- subjects and templates -------------------------------------------------------------------------

    def change_listener(self) -> PollingListener:
        """SQLite sends no notices: a listener that wakes every half second for a version check."""
        return PollingListener(0.5)

    # --- storage hygiene --------------------------------------------------------------------------------

    def reclaim(self, *, vacuum: bool = False, wait_s: float = 0.0) -> bool:
        """VACUUM (when asked) and TRUNCATE checkpoints for at most ``wait_s`` seconds (each try waits 0.1 s for
        readers); False when a reader kept the WAL from being emptied."""
        deadline = time.monotonic() + wait_s
        self._conn.execute(f"PRAGMA busy_timeout={RECLAIM_TRY_MS}")
        try:
            if vacuum:
                self._conn.execute("VACUUM")
            while True:
                busy, _, _ = sqlite_file.checkpoint(self._conn)
                if not busy:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(RECLAIM_TRY_MS / 1000)
        except sqlite3.OperationalError as exc:  # VACUUM while another connection reads: locked
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={sqlite_file.BUSY_TIMEOUT_MS}")


class PollingListener:
    """A :class:`~faceaudit.gallery.repository.ChangeListener` without notices: every wait times out."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._closed = threading.Event()

    def wait(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds (less when closed meanwhile); never a notice, so always False."""
        self._closed.wait(timeout)
        return False

    def close(self) -> None:
        self._closed.set()
