"""A :class:`~faceaudit.ledger.LedgerStore` in an SQLite table, sharing the caller's connection and transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from faceaudit.ledger.chain import BODY_FIELDS, LedgerEntry

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
    entry_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_seq ON ledger(seq);
"""
"""``pos`` is the storage order; ``seq`` is the hashed sequence number. They differ only after tampering."""

_COLUMNS = (*BODY_FIELDS, "prev_hash", "entry_hash")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM ledger"


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the ledger table (idempotent; run it inside a migration)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _row_to_entry(row: tuple) -> LedgerEntry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["params"] = json.loads(values["params"])
    values["result"] = json.loads(values["result"])
    return LedgerEntry(**values)


class SQLiteLedgerStore:
    """Entries in the ``ledger`` table of ``conn``. It never commits: the caller owns the transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def head(self) -> LedgerEntry | None:
        """The entry with the highest ``seq`` (None when empty)."""
        row = self.conn.execute(f"{_SELECT} ORDER BY seq DESC, pos DESC LIMIT 1").fetchone()
        return None if row is None else _row_to_entry(row)

    def write(self, entry: LedgerEntry) -> None:
        """Insert one entry (the caller's transaction commits it)."""
        d = entry.as_dict()
        d["params"] = json.dumps(d["params"], sort_keys=True, ensure_ascii=False)
        d["result"] = json.dumps(d["result"], sort_keys=True, ensure_ascii=False)
        self.conn.execute(
            f"INSERT INTO ledger ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [d[c] for c in _COLUMNS],
        )

    def entries(self, since_seq: int = 0) -> Iterator[LedgerEntry]:
        """Entries in storage order (``pos``), those with ``seq > since_seq`` when it is positive."""
        if since_seq > 0:
            cursor = self.conn.execute(f"{_SELECT} WHERE seq > ? ORDER BY pos", (since_seq,))
        else:
            cursor = self.conn.execute(f"{_SELECT} ORDER BY pos")
        while rows := cursor.fetchmany(1000):
            yield from (_row_to_entry(r) for r in rows)

    def count(self) -> int:
        """The number of stored entries."""
        return int(self.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
