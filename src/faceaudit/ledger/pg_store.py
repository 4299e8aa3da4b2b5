"""A :class:`~faceaudit.ledger.LedgerStore` in a PostgreSQL table, for several processes on several machines.

Appends are serialised by a transaction-level advisory lock: :meth:`PostgresLedgerStore.head` takes it when it
runs inside a transaction, so the head that :class:`~faceaudit.ledger.Ledger` reads cannot change until the
caller commits (the PostgreSQL counterpart of SQLite's ``BEGIN IMMEDIATE``). :meth:`~PostgresLedgerStore.write`
checks, under the same lock, that the new entry links to the stored head; a writer that skipped the lock gets
:class:`LedgerConflictError` instead of forking the chain. Transactions must run at READ COMMITTED (the server's
default), where each statement sees what committed before it started, so the head read after the lock is fresh.

Columns match the SQLite store; ``params``, ``result`` and ``auth`` are stored as the same sorted JSON text, so
entries come back exactly as they were hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from faceaudit.errors import FaceAuditError, UsageError
from faceaudit.ledger.chain import LedgerEntry
from faceaudit.ledger.sql_rows import TABLE, LedgerRows
from faceaudit.sqldialect import POSTGRESQL

if TYPE_CHECKING:
    import psycopg

SCHEMA = POSTGRESQL.sql(TABLE)
"""The ledger table in PostgreSQL's words (see :data:`faceaudit.ledger.sql_rows.TABLE`)."""

APPEND_LOCK = int.from_bytes(hashlib.sha256(b"faceaudit.ledger.append").digest()[:8], "big", signed=True)
"""The advisory lock key (per database) that serialises appends."""


class LedgerConflictError(FaceAuditError):
    """Another writer appended first: the entry no longer links to the head. Retry the whole transaction."""

    exit_code = 1


def create_schema(conn: psycopg.Connection) -> None:
    """Create the ledger table (idempotent)."""
    with conn.transaction():
        conn.execute(SCHEMA)


class PostgresLedgerStore(LedgerRows):
    """Entries in the ``ledger`` table reached through ``conn``. The caller owns the transaction."""

    dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status == TransactionStatus.INTRANS or not self.conn.autocommit

    def lock(self) -> None:
        """Take the append lock until the end of the current transaction (reentrant)."""
        row = self.conn.execute(
            "SELECT pg_advisory_xact_lock(%s), current_setting('transaction_isolation')", (APPEND_LOCK,)
        ).fetchone()
        if row[1] != "read committed":
            raise UsageError(
                f"ledger appends need READ COMMITTED transactions (this one is {row[1]}): "
                "under a snapshot taken before the lock, the head could be stale"
            )

    @contextmanager
    def transaction(self) -> Iterator[PostgresLedgerStore]:
        """A transaction holding the append lock: ``with store.transaction(): ledger.append(...)``."""
        with self.conn.transaction():
            self.lock()
            yield self

    def head(self) -> LedgerEntry | None:
        """The entry with the highest ``seq``; inside a transaction, the append lock is taken first."""
        if self._in_transaction():
            self.lock()
        return self._head()

    def write(self, entry: LedgerEntry) -> None:
        """Insert one entry under the append lock, after checking it links to the head.

        Outside a transaction it runs in one of its own. Raises :class:`LedgerConflictError` when the entry does
        not follow the stored head (another writer got there first).
        """
        if not self._in_transaction():
            with self.transaction():
                self._write(entry)
        else:
            self.lock()
            self._write(entry)

    def write_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert a chain of entries under the append lock, in few statements, after checking that the first
        links to the head and each to the one before (:class:`LedgerConflictError` otherwise)."""
        if not entries:
            return
        for before, entry in zip(entries, entries[1:], strict=False):
            if entry.seq != before.seq + 1 or entry.prev_hash != before.entry_hash:
                raise LedgerConflictError(f"ledger entry {entry.seq} does not follow entry {before.seq}")
        if not self._in_transaction():
            with self.transaction():
                self._write(entries[0], entries[1:])
        else:
            self.lock()
            self._write(entries[0], entries[1:])

    def _write(self, entry: LedgerEntry, more: Sequence[LedgerEntry] = ()) -> None:
        head = self._head()
        expected = (1, None) if head is None else (head.seq + 1, head.entry_hash)
        if entry.seq != expected[0] or (head is not None and entry.prev_hash != expected[1]):
            raise LedgerConflictError(
                f"ledger entry {entry.seq} does not follow the head (entry {expected[0] - 1}): another writer "
                "appended first; retry the transaction"
            )
        if more:
            self._insert_many([entry, *more])
        else:
            self._insert(entry)
