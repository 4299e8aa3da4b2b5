"""The ledger's rows in SQL written once: the table and the statements both ledger stores run alike.

:class:`LedgerRows` reads and inserts entries through ``self.conn.execute`` with statements in portable SQL
(:mod:`faceaudit.sqldialect`); :mod:`.sqlite_store` and :mod:`.pg_store` add what differs: the optional columns
of an older SQLite file, and PostgreSQL's append lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from faceaudit.ledger.chain import BODY_FIELDS, OPTIONAL_BODY_FIELDS, LedgerEntry
from faceaudit.sqldialect import Dialect

TABLE = """
CREATE TABLE IF NOT EXISTS ledger (
    pos {identity},
    seq BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    case_ref TEXT,
    gallery_id TEXT,
    gallery_version BIGINT,
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
"""The ledger table, portable. ``pos`` is the storage order; ``seq`` is the hashed sequence number. They differ
only after tampering."""

BASE_COLUMNS = (*BODY_FIELDS, "prev_hash", "entry_hash")
JSON_COLUMNS = ("params", "result", *OPTIONAL_BODY_FIELDS)
PAGE = 1000


class LedgerRows:
    """Entries in the ``ledger`` table through ``conn`` (the caller owns the transaction)."""

    conn: Any
    dialect: Dialect
    columns: tuple[str, ...] = (*BASE_COLUMNS, *OPTIONAL_BODY_FIELDS)

    def _q(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(self.dialect.sql(sql), params)

    def _row_to_entry(self, row: tuple) -> LedgerEntry:
        values = dict(zip(self.columns, row, strict=True))
        for name in JSON_COLUMNS:
            if values.get(name) is not None:
                values[name] = json.loads(values[name])
        return LedgerEntry(**values)

    def _head(self) -> LedgerEntry | None:
        row = self._q(
            f"SELECT {', '.join(self.columns)} FROM ledger ORDER BY seq DESC, pos DESC LIMIT 1"
        ).fetchone()
        return None if row is None else self._row_to_entry(row)

    def _insert(self, entry: LedgerEntry) -> None:
        """Insert one entry, its JSON fields as the same sorted text that was hashed."""
        d = entry.as_dict()
        for name in JSON_COLUMNS:
            if d.get(name) is not None:
                d[name] = json.dumps(d[name], sort_keys=True, ensure_ascii=False)
        columns = [c for c in self.columns if c in d]
        marks = ", ".join("?" for _ in columns)
        self._q(f"INSERT INTO ledger ({', '.join(columns)}) VALUES ({marks})", [d[c] for c in columns])

    def _insert_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert entries in one ``executemany``, each as :meth:`_insert` would."""
        if not entries:
            return
        rows = []
        for entry in entries:
            d = entry.as_dict()
            for name in JSON_COLUMNS:
                if d.get(name) is not None:
                    d[name] = json.dumps(d[name], sort_keys=True, ensure_ascii=False)
            rows.append(d)
        columns = [c for c in self.columns if c in rows[0]]
        if any([c for c in self.columns if c in d] != columns for d in rows):
            for entry in entries:  # entries with different optional fields: one statement each
                self._insert(entry)
            return
        marks = ", ".join("?" for _ in columns)
        sql = self.dialect.sql(f"INSERT INTO ledger ({', '.join(columns)}) VALUES ({marks})")
        self.conn.cursor().executemany(sql, [[d[c] for c in columns] for d in rows])

    def entries(self, since_seq: int = 0) -> Iterator[LedgerEntry]:
        """Entries in storage order (``pos``), those with ``seq > since_seq``; read in pages by key."""
        last_pos = -(2**62)
        floor = since_seq if since_seq > 0 else -(2**62)
        while True:
            rows = self._q(
                f"SELECT pos, {', '.join(self.columns)} FROM ledger WHERE seq > ? AND pos > ? "
                f"ORDER BY pos LIMIT {PAGE}",
                (floor, last_pos),
            ).fetchall()
            yield from (self._row_to_entry(tuple(r[1:])) for r in rows)
            if len(rows) < PAGE:
                return
            last_pos = rows[-1][0]

    def count(self) -> int:
        """The number of stored entries."""
        return int(self._q("SELECT COUNT(*) FROM ledger").fetchone()[0])
