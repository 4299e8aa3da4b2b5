"""Statements on a PostgreSQL gallery's pool outside a transaction, each on a connection held for it alone.

A thread that is in none of the repository's transactions borrows a pool connection for one statement (or for the
ledger's own append transaction) and gives it back at once: a web server's many, short-lived threads never pin one
connection each and drain the pool (see :class:`~faceaudit.gallery.pg_repository.PostgresGalleryRepository`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faceaudit.ledger.pg_store import PostgresLedgerStore

if TYPE_CHECKING:
    import psycopg


class Rows:
    """A statement's rows, fetched before its connection went back to the pool (``fetchone``, ``fetchall``)."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description is not None else []
        self._next = 0

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class RepositoryLedgerStore(PostgresLedgerStore):
    """The ledger store of a repository: inside the calling thread's transaction it runs on that connection;
    outside one, each statement (or its own append transaction) on a pool connection held for it alone."""

    def __init__(self, repo: Any) -> None:
        self._repo = repo

    @property
    def conn(self) -> psycopg.Connection:  # type: ignore[override]
        conn = getattr(self._repo._local, "conn", None)
        return conn if conn is not None else PoolStatements(self._repo)  # type: ignore[return-value]


class PoolStatements:
    """What :class:`PostgresLedgerStore` needs of an autocommit connection, outside any transaction, without
    pinning one to the thread: a statement runs on a pool connection held for it alone; ``transaction()`` binds
    one to the thread until it ends, as the repository's own transactions do."""

    autocommit = True

    def __init__(self, repo: Any) -> None:
        self._repo = repo

    @property
    def info(self) -> Any:
        from types import SimpleNamespace

        from psycopg.pq import TransactionStatus

        return SimpleNamespace(transaction_status=TransactionStatus.IDLE)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        return self._repo._execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self._repo._transaction("SET TRANSACTION ISOLATION LEVEL READ COMMITTED") as conn:
            yield conn
