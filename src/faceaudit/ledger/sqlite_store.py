"""A :class:`~faceaudit.ledger.LedgerStore` in an SQLite table, sharing the caller's connection and transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from faceaudit.ledger.chain import OPTIONAL_BODY_FIELDS, LedgerEntry
from faceaudit.ledger.sql_rows import BASE_COLUMNS, TABLE, LedgerRows
from faceaudit.sqldialect import SQLITE

SCHEMA = SQLITE.sql(TABLE)
"""The ledger table in SQLite's words (see :data:`faceaudit.ledger.sql_rows.TABLE`)."""


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the ledger table (idempotent; run it inside a migration)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    add_optional_columns(conn)


def add_optional_columns(conn: sqlite3.Connection) -> None:
    """Add the columns of :data:`OPTIONAL_BODY_FIELDS` to a ledger table made before them (idempotent)."""
    present = {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
    for name in OPTIONAL_BODY_FIELDS:
        if name not in present:
            conn.execute(f"ALTER TABLE ledger ADD COLUMN {name} TEXT")


class SQLiteLedgerStore(LedgerRows):
    """Entries in the ``ledger`` table of ``conn``. It never commits: the caller owns the transaction."""

    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        present = {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
        self.columns = (*BASE_COLUMNS, *(c for c in OPTIONAL_BODY_FIELDS if c in present))

    def head(self) -> LedgerEntry | None:
        """The entry with the highest ``seq`` (None when empty)."""
        return self._head()

    def write(self, entry: LedgerEntry) -> None:
        """Insert one entry (the caller's transaction commits it)."""
        d = entry.as_dict()
        missing = [c for c in OPTIONAL_BODY_FIELDS if d.get(c) is not None and c not in self.columns]
        if missing:
            raise RuntimeError(f"the ledger table has no {', '.join(missing)} column: migrate the file first")
        self._insert(entry)

    def write_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert several entries, in order, in one statement (the caller's transaction commits them)."""
        for entry in entries:
            d = entry.as_dict()
            missing = [c for c in OPTIONAL_BODY_FIELDS if d.get(c) is not None and c not in self.columns]
            if missing:
                raise RuntimeError(
                    f"the ledger table has no {', '.join(missing)} column: migrate the file first"
                )
        self._insert_many(entries)
