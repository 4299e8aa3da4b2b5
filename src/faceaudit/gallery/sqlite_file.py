"""The SQLite gallery file: connection settings and versioned schema migrations."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable

from faceaudit.errors import FaceAuditError, UsageError
from faceaudit.gallery import schema
from faceaudit.ledger.sqlite_store import add_optional_columns as add_ledger_columns
from faceaudit.ledger.sqlite_store import create_schema as create_ledger_schema
from faceaudit.sqldialect import SQLITE

BUSY_TIMEOUT_MS = 60_000
APPLICATION_ID = 0x46416731
"""``PRAGMA application_id`` of a faceaudit gallery file ("FAg1"): how a gallery recognises its own file."""
GALLERY_FORMAT = "faceaudit.gallery/1"
"""``meta.format`` of a gallery; files made before the application id are recognised by it."""
_GALLERY_TABLES = frozenset({"meta", "subjects", "templates", "ledger"})


def _v1(conn: sqlite3.Connection) -> None:
    for statement in schema.statements(SQLITE, schema.TABLES):
        conn.execute(statement)
    create_ledger_schema(conn)


def _v2(conn: sqlite3.Connection) -> None:
    for statement in schema.statements(SQLITE, schema.INDEXES):
        conn.execute(statement)


def _v3(conn: sqlite3.Connection) -> None:
    add_ledger_columns(conn)  # ledger.auth: how each entry's actor was established


def _v4(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")  # galleries made before the id was set


def _v5(conn: sqlite3.Connection) -> None:
    columns = {r[1] for r in conn.execute("PRAGMA table_info(subjects)")}
    if "name_binding" not in columns:  # filled by the gallery, which has the key
        conn.execute("ALTER TABLE subjects ADD COLUMN name_binding TEXT")


def _v6(conn: sqlite3.Connection) -> None:
    from faceaudit.gallery import search_records

    # the accountability tables join the gallery's schema, so erasure forgets in the gallery's own transaction
    search_records.create_tables(conn.execute, search_records.SQLITE)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(service_searches)")}
    if "probe" not in columns:  # a served gallery made before the console's review page
        conn.execute("ALTER TABLE service_searches ADD COLUMN probe BLOB")


def _v7(conn: sqlite3.Connection) -> None:
    from faceaudit.gallery import declared, search_records

    # declared attributes (sealed, apart from identity data) and the model of each stored search
    declared.create_table(conn.execute, search_records.SQLITE)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(service_searches)")}
    if "model" not in columns:
        conn.execute("ALTER TABLE service_searches ADD COLUMN model TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
"""Migration ``i`` takes the schema from version ``i`` to ``i + 1`` (``PRAGMA user_version``)."""
SCHEMA_VERSION = len(MIGRATIONS)


class GalleryNotFoundError(FaceAuditError):
    """There is no gallery file at the path."""

    exit_code = 2


class NotAGalleryError(UsageError):
    """The file exists but is not a faceaudit gallery (another application's SQLite file, or not SQLite)."""


class GalleryIntegrityError(FaceAuditError):
    """A gallery row was altered outside faceaudit: a name moved to another subject, a template's model id changed."""

    exit_code = 1


class GalleryDamagedError(GalleryIntegrityError):
    """The gallery file is a faceaudit gallery, but a table or a meta value it needs is missing or malformed."""


def _kind(conn: sqlite3.Connection) -> str:
    """ "gallery", "empty" (no tables: a new file) or "foreign"; reads only."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id == APPLICATION_ID:
        return "gallery"
    if app_id != 0:
        return "foreign"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return "empty"
    if tables >= _GALLERY_TABLES:  # a gallery made before the application id
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is not None and row[0] == GALLERY_FORMAT:
            return "gallery"
    return "foreign"


def connect(path: str | os.PathLike, *, create: bool = False) -> sqlite3.Connection:
    """Open the gallery file in WAL mode with secure_delete, foreign keys and a busy timeout.

    The connection is in autocommit mode: writers open transactions explicitly with ``BEGIN IMMEDIATE``.
    """
    path = os.fspath(path)
    if not create and not os.path.exists(path):
        raise GalleryNotFoundError(
            f"{path}: no gallery here; create one with 'faceaudit gallery init --db {path}'"
        )
    if os.path.isdir(path):
        raise NotAGalleryError(f"{path}: is a directory, not a faceaudit gallery")
    if create and not os.path.exists(path):
        # readable by its owner only; SQLite gives the -wal and -shm files the same mode (another process may have
        # made the file meanwhile)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        kind = _kind(conn)
        if kind == "foreign":
            raise NotAGalleryError(
                f"{path}: not a faceaudit gallery (another application's SQLite file); nothing was changed"
            )
        if kind == "empty" and not create:
            raise GalleryNotFoundError(
                f"{path}: no gallery here; create one with 'faceaudit gallery init --db {path}'"
            )
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA foreign_keys=ON")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise NotAGalleryError(f"{path}: not a faceaudit gallery ({exc}); nothing was changed") from None
    except BaseException:
        conn.close()
        raise
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
            if version == 0:
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def check_tables(conn: sqlite3.Connection, path: str | os.PathLike) -> None:
    """Raise GalleryDamagedError when a migrated gallery file lacks one of its tables."""
    if schema_version(conn) < 1:
        return
    require_tables({r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}, path)


def require_tables(tables: set[str], path: object, what: str = "file") -> None:
    """Raise GalleryDamagedError naming the gallery tables missing from ``tables`` (those of a migrated gallery)."""
    missing = sorted(_GALLERY_TABLES - tables)
    if missing:
        raise GalleryDamagedError(
            f"{path}: the gallery {what} is damaged: table {', '.join(map(repr, missing))} is missing "
            f"(dropped?); restore the {what} from a backup"
        )


def check_meta(meta: dict[str, str], path: str | os.PathLike) -> dict[str, str]:
    """``meta`` after checking the values a gallery needs; GalleryDamagedError naming the first bad one."""
    for name in ("gallery_id", "version", "key_check"):
        if name not in meta:
            raise GalleryDamagedError(f"{path}: the gallery file is damaged: meta.{name} is missing")
    try:
        int(meta["version"])
    except ValueError:
        raise GalleryDamagedError(
            f"{path}: the gallery file is damaged: meta.version is not a number"
        ) from None
    try:
        bytes.fromhex(meta["key_check"])
    except ValueError:
        raise GalleryDamagedError(f"{path}: the gallery file is damaged: meta.key_check is not hex") from None
    return meta


def ledger_signed(meta: dict[str, str]) -> bool | None:
    """What the gallery recorded at creation about its ledger (``meta.ledger_signed``); None for older galleries."""
    value = meta.get("ledger_signed")
    return None if value is None else value == "1"


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
