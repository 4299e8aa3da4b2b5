"""The SQLite gallery file: connection settings and versioned schema migrations."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from faceaudit.errors import FaceAuditError, UsageError
from faceaudit.ledger.sqlite_store import add_optional_columns as add_ledger_columns
from faceaudit.ledger.sqlite_store import create_schema as create_ledger_schema

BUSY_TIMEOUT_MS = 60_000


def _v1(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("""CREATE TABLE subjects (
        id INTEGER PRIMARY KEY,
        subject_ref TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        consent_basis TEXT NOT NULL,
        consent_by TEXT NOT NULL,
        consent_at TEXT NOT NULL,
        consent_expires TEXT,
        created_at TEXT NOT NULL)""")
    conn.execute("""CREATE TABLE templates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        quality TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        sealed BLOB NOT NULL,
        image BLOB,
        created_at TEXT NOT NULL)""")
    create_ledger_schema(conn)


def _v2(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX templates_subject ON templates(subject_id)")
    conn.execute("CREATE INDEX templates_model ON templates(model_id, id)")
    conn.execute(
        "CREATE INDEX subjects_expiry ON subjects(consent_expires) WHERE consent_expires IS NOT NULL"
    )


def _v3(conn: sqlite3.Connection) -> None:
    add_ledger_columns(conn)  # ledger.auth: how each entry's actor was established


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
"""Migration ``i`` takes the schema from version ``i`` to ``i + 1`` (``PRAGMA user_version``)."""
SCHEMA_VERSION = len(MIGRATIONS)


class GalleryNotFoundError(FaceAuditError):
    """There is no gallery file at the path."""

    exit_code = 2


def connect(path: str | os.PathLike, *, create: bool = False) -> sqlite3.Connection:
    """Open the gallery file in WAL mode with secure_delete, foreign keys and a busy timeout.

    The connection is in autocommit mode: writers open transactions explicitly with ``BEGIN IMMEDIATE``.
    """
    path = os.fspath(path)
    if not create and not os.path.exists(path):
        raise GalleryNotFoundError(
            f"{path}: no gallery here; create one with 'faceaudit gallery init --db {path}'"
        )
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA foreign_keys=ON")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{path}: not a gallery database ({exc})") from None
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of the file (``PRAGMA user_version``)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction. Returns the new schema version."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"the gallery's schema is version {version}, newer than this faceaudit knows "
                    f"({SCHEMA_VERSION}); upgrade faceaudit"
                )
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return version
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The ``meta`` table as a dict (empty for a file without one)."""
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        return {}


def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """Copy the WAL into the main file and truncate it: (busy, wal frames, frames checkpointed)."""
    row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])
