"""The PostgreSQL :class:`~faceaudit.gallery.repository.GalleryRepository`: one gallery in one database.

Several processes on several machines (CLI runs, service replicas) share the database. Connections come from a
psycopg pool; a transaction binds one connection to the calling thread until it ends, and the ledger store
returned by :meth:`PostgresGalleryRepository.ledger_store` runs on that same connection, so a change and its
ledger entry commit together.

* ``write()`` is a READ COMMITTED transaction that first takes the gallery's advisory lock, so writers queue up
  one at a time as they do behind SQLite's ``BEGIN IMMEDIATE``; ledger appends inside it also take the ledger's
  append lock (always in that order, so no two writers can deadlock).
* ``snapshot()`` is a REPEATABLE READ, READ ONLY transaction: one consistent view of the version and templates.
* Templates arrive sealed and are stored sealed (``BYTEA``): the server never sees a plaintext template.
* Erasure deletes the rows and then VACUUMs the affected tables (``VACUUM FULL`` when asked, which rewrites the
  table files without the deleted tuples). What remains beyond that (WAL, archives, backups, the file system)
  is the operator's duty; see docs/scaling.md.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faceaudit import pgsql
from faceaudit.errors import UsageError
from faceaudit.gallery import declared, schema, search_records
from faceaudit.gallery.pg_statements import RepositoryLedgerStore, Rows
from faceaudit.gallery.sql_rows import SQLRows
from faceaudit.gallery.sqlite_file import require_tables
from faceaudit.ledger.pg_store import SCHEMA as LEDGER_SCHEMA
from faceaudit.ledger.pg_store import PostgresLedgerStore
from faceaudit.sqldialect import POSTGRESQL

if TYPE_CHECKING:
    import psycopg

    from faceaudit.gallery.pg_changes import NotifyListener

WRITE_LOCK = int.from_bytes(hashlib.sha256(b"faceaudit.gallery.write").digest()[:8], "big", signed=True)
MIGRATE_LOCK = int.from_bytes(hashlib.sha256(b"faceaudit.gallery.migrate").digest()[:8], "big", signed=True)
CHANGES_CHANNEL = "faceaudit_gallery"
"""NOTIFY channel: every committed write that bumps the version sends the new version on it."""

MIGRATIONS: list[str] = [
    ";\n".join(schema.statements(POSTGRESQL)) + ";\n" + LEDGER_SCHEMA,
    ";\n".join(search_records.POSTGRESQL.sql(t) for t in search_records.TABLES)
    + ";\nALTER TABLE service_searches ADD COLUMN IF NOT EXISTS probe BYTEA;\n",
    declared.TABLE.replace("{bigint}", "BIGINT").replace("{blob}", "BYTEA")
    + ";\nALTER TABLE service_searches ADD COLUMN IF NOT EXISTS model TEXT;\n",
]
"""Migration ``i`` takes the schema from version ``i`` to ``i + 1`` (the ``faceaudit_schema`` table)."""
SCHEMA_VERSION = len(MIGRATIONS)


def _first_value(rows: psycopg.Cursor | Rows) -> Any:
    """The first column of a statement's first row, for statements that always return a row (``to_regclass``,
    the version that the migration that created ``faceaudit_schema`` inserted with it)."""
    row = rows.fetchone()
    assert row is not None
    return row[0]


class PostgresGalleryRepository(SQLRows):
    """A gallery in a PostgreSQL database reached through a connection pool (see the module docstring)."""

    dialect = search_records.POSTGRESQL

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._execute(sql, params)

    def __init__(self, pool: Any, url: str) -> None:
        self._pool = pool
        self.url = url
        self.path = pgsql.redact(url)  # what messages show where SQLite shows the file
        self._local = threading.local()
        self._readers: list[psycopg.Connection] = []
        self._readers_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, create: bool = False, max_size: int = 8) -> PostgresGalleryRepository:
        """Connect to the database at ``url`` (it must exist; ``create`` is accepted for symmetry with SQLite:
        the tables are made by :meth:`migrate`). Raises GalleryDamagedError for a gallery that lost a table."""
        repo = cls(pgsql.open_pool(url, max_size=max_size), url)
        try:
            with repo._pool.connection() as conn:  # (given back at once: the thread's reader is left alone)
                tables = pgsql.table_names(conn)
            if "faceaudit_schema" in tables:  # a migrated gallery: a missing table is damage, named
                require_tables(tables, repo.path, "database")
        except BaseException:
            repo.close()
            raise
        return repo

    # --- connections ------------------------------------------------------------------------------------

    @property
    def connection(self) -> psycopg.Connection:
        """The calling thread's connection: its open transaction's, or its own autocommit reader."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        reader = getattr(self._local, "reader", None)
        if reader is None or reader.closed:
            reader = self._pool.getconn()
            self._local.reader = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor | Rows:
        """``sql`` in the calling thread's open transaction; outside one, on a pool connection held for this
        statement only (so a thread pool's many threads, a web server's, never pin one connection each and drain
        the pool: the connections of threads that ended were never returned)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn.execute(sql, params)
        with self._pool.connection() as conn:
            return Rows(conn.execute(sql, params))

    @contextmanager
    def _transaction(self, first: str, *lock: int) -> Iterator[psycopg.Connection]:
        if getattr(self._local, "conn", None) is not None:
            raise RuntimeError("a gallery transaction is already open in this thread")
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(first)
            for key in lock:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    # --- lifecycle and transactions ---------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the database (0 before the first migration)."""
        if _first_value(self._execute("SELECT to_regclass('faceaudit_schema')")) is None:
            return 0
        return int(_first_value(self._execute("SELECT version FROM faceaudit_schema")))

    def migrate(self) -> int:
        """Apply pending migrations in one transaction under a lock (DDL is transactional in PostgreSQL)."""
        with self._transaction("SET LOCAL lock_timeout = '60s'", MIGRATE_LOCK) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS faceaudit_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM faceaudit_schema").fetchone()
            version = 0 if row is None else int(row[0])
            if row is None:
                conn.execute("INSERT INTO faceaudit_schema VALUES (0)")
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"{self.path}: the gallery's schema is version {version}, newer than this faceaudit knows "
                    f"({SCHEMA_VERSION}); upgrade faceaudit"
                )
            for step in MIGRATIONS[version:]:
                conn.execute(step)
            conn.execute("UPDATE faceaudit_schema SET version = %s", (SCHEMA_VERSION,))
        return SCHEMA_VERSION

    def migrate_needed(self) -> bool:
        """Whether the database's schema is older than this faceaudit's."""
        return self.schema_version() < SCHEMA_VERSION

    @contextmanager
    def write(self) -> Iterator[None]:
        """A READ COMMITTED transaction holding the gallery's write lock; commits at the end of the block."""
        with self._transaction("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", WRITE_LOCK) as conn:
            before = self._version_or_none(conn)
            yield
            after = self._version_or_none(conn)
            if after is not None and after != before:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, str(after)))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A REPEATABLE READ, READ ONLY transaction: one consistent view until the block ends."""
        with self._transaction("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"):
            yield

    def ledger_store(self) -> PostgresLedgerStore:
        """The ``ledger`` table on the calling thread's connection (so appends join its open transaction)."""
        return RepositoryLedgerStore(self)

    def close(self) -> None:
        """Return the readers and close the pool."""
        with self._readers_lock:
            for reader in self._readers:
                if not reader.closed:
                    self._pool.putconn(reader)
            self._readers.clear()
        self._local = threading.local()
        self._pool.close()

    # --- meta -------------------------------------------------------------------------------------------

    def read_meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (empty before initialisation)."""
        if _first_value(self._execute("SELECT to_regclass('meta')")) is None:
            return {}
        return dict(self._execute("SELECT key, value FROM meta").fetchall())

    @staticmethod
    def _version_or_none(conn: psycopg.Connection) -> int | None:
        if _first_value(conn.execute("SELECT to_regclass('meta')")) is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return None if row is None else int(row[0])

    # --- subjects and templates -------------------------------------------------------------------------

    def change_listener(self) -> NotifyListener:
        """LISTEN on :data:`CHANGES_CHANNEL` on a connection of its own (outside the pool)."""
        from faceaudit.gallery.pg_changes import NotifyListener

        return NotifyListener(self.url, CHANGES_CHANNEL)

    # --- storage hygiene --------------------------------------------------------------------------------

    def reclaim(self, *, vacuum: bool = False, wait_s: float = 0.0) -> bool:
        """See :func:`faceaudit.gallery.pg_reclaim.reclaim`."""
        from faceaudit.gallery.pg_reclaim import reclaim

        return reclaim(self._pool, vacuum=vacuum, wait_s=wait_s)
