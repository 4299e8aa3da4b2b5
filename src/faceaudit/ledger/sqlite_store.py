"""A :class:`~faceaudit.ledger.LedgerStore` in an SQLite table, sharing the caller's connection and transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from faceaudit.ledger.chain import BODY_FIELDS, OPTIONAL_BODY_FIELDS, LedgerEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    pos INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    case_ref TEXT,
    gallery_id TEXT,
    gallery_version INTEGER,
    probe_sha256 TEXT,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    alg TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL,
    auth TEXT
);
CREATE INDEX IF NOT EXISTS ledger_seq ON ledger(seq);
"""
"""``pos`` is the storage order; ``seq`` is the hashed sequence number. They differ only after tampering."""

_BASE_COLUMNS = (*BODY_FIELDS, "prev_hash", "entry_hash")
_JSON_COLUMNS = ("params", "result", *OPTIONAL_BODY_FIELDS)


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


class SQLiteLedgerStore:
    """Entries in the ``ledger`` table of ``conn``. It never commits: the caller owns the transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        present = {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
        self._columns = (*_BASE_COLUMNS, *(c for c in OPTIONAL_BODY_FIELDS if c in present))
        self._select = f"SELECT {', '.join(self._columns)} FROM ledger"

    def _row_to_entry(self, row: tuple) -> LedgerEntry:
        values = dict(zip(self._columns, row, strict=True))
        for name in _JSON_COLUMNS:
            if name in values and values[name] is not None:
                values[name] = json.loads(values[name])
        return LedgerEntry(**values)

    def head(self) -> LedgerEntry | None:
        """The entry with the highest ``seq`` (None when empty)."""
        row = self.conn.execute(f"{self._select} ORDER BY seq DESC, pos DESC LIMIT 1").fetchone()
        return None if row is None else self._row_to_entry(row)

    def write(self, entry: LedgerEntry) -> None:
        """Insert one entry (the caller's transaction commits it)."""
        d = entry.as_dict()
        for name in _JSON_COLUMNS:
            if d.get(name) is not None:
                d[name] = json.dumps(d[name], sort_keys=True, ensure_ascii=False)
        missing = [c for c in OPTIONAL_BODY_FIELDS if d.get(c) is not None and c not in self._columns]
        if missing:
            raise RuntimeError(f"the ledger table has no {', '.join(missing)} column: migrate the file first")
        columns = [c for c in self._columns if c in d]
        self.conn.execute(
            f"INSERT INTO ledger ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [d[c] for c in columns],
        )

    def entries(self, since_seq: int = 0) -> Iterator[LedgerEntry]:
        """Entries in storage order (``pos``), those with ``seq > since_seq`` when it is positive."""
        if since_seq > 0:
            cursor = self.conn.execute(f"{self._select} WHERE seq > ? ORDER BY pos", (since_seq,))
        else:
            cursor = self.conn.execute(f"{self._select} ORDER BY pos")
        while rows := cursor.fetchmany(1000):
            yield from (self._row_to_entry(r) for r in rows)

    def count(self) -> int:
        """The number of stored entries."""
        return int(self.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
