"""The hash chain on its own, on both stores (SQLite in memory, PostgreSQL): every kind of tampering, signing."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable

import pytest

from faceaudit.errors import LedgerIntegrityError, PolicyError, UsageError
from faceaudit.ledger import Ledger
from faceaudit.ledger.chain import GENESIS, canonical_json, compute_hash
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore, create_schema


class Db:
    """Raw SQL on the store's own connection (the tamperer's view), ``?`` placeholders on both databases."""

    def __init__(self, conn, placeholder: str = "?") -> None:
        self.conn, self.placeholder = conn, placeholder

    def execute(self, sql: str, params: tuple = ()):
        return self.conn.execute(sql.replace("?", self.placeholder), params)


def _fill(ledger: Ledger, n: int) -> None:
    for i in range(n):
        ledger.append(
            "identify",
            f"operator-{i}",
            purpose="test",
            case_ref=f"case-{i}",
            gallery_id="g",
            gallery_version=i,
            probe_sha256="ab" * 32,
            params={"top_k": 10, "threshold": 0.363},
            result={"n_candidates": 1, "candidates": [{"subject": f"subj:{i:032x}", "similarity": 0.5}]},
        )


@pytest.fixture()
def make_ledger(backend, request) -> Callable[..., tuple[Db, Ledger]]:
    """``make_ledger(n, key)`` → (raw SQL handle, ledger with ``n`` entries) on the parametrised store (the shared
    ``backend`` fixture): an SQLite database in memory, or a fresh schema of the module's PostgreSQL database."""
    opened = []

    if backend == "sqlite":

        def make(n: int = 8, key: bytes | None = None) -> tuple[Db, Ledger]:
            conn = sqlite3.connect(":memory:", isolation_level=None)
            create_schema(conn)
            ledger = Ledger(SQLiteLedgerStore(conn), key=key)
            _fill(ledger, n)
            return Db(conn), ledger

    else:
        import psycopg

        from faceaudit.ledger.pg_store import PostgresLedgerStore
        from faceaudit.ledger.pg_store import create_schema as create_pg_schema

        url = request.getfixturevalue("module_store").db
        counter = itertools.count()

        def make(n: int = 8, key: bytes | None = None) -> tuple[Db, Ledger]:
            schema = f"l_{request.node.name.split('[')[0][-40:]}_{next(counter)}".lower()
            conn = psycopg.connect(url, autocommit=True)
            opened.append(conn)
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(f"SET search_path TO {schema}")
            create_pg_schema(conn)
            ledger = Ledger(PostgresLedgerStore(conn), key=key)
            _fill(ledger, n)
            return Db(conn, "%s"), ledger

    yield make
    for conn in opened:
        conn.close()


def test_intact_chain_verifies_and_links(make_ledger):
    conn, ledger = make_ledger(6)
    report = ledger.verify()
    assert (report.n_entries, report.head_seq) == (6, 6)
    assert report.message() == "6 entries, chain intact"
    entries = list(ledger.store.entries())
    assert entries[0].prev_hash == GENESIS
    for a, b in zip(entries, entries[1:], strict=False):
        assert b.prev_hash == a.entry_hash and b.seq == a.seq + 1
    # entry_hash = SHA-256(prev_hash ‖ canonical JSON of the entry), seq included
    import hashlib

    e = entries[2]
    assert '"seq":3' in canonical_json(e.body()).decode()
    assert e.entry_hash == hashlib.sha256(e.prev_hash.encode() + canonical_json(e.body())).hexdigest()


def test_empty_ledger_verifies(make_ledger):
    conn, ledger = make_ledger(0)
    assert ledger.verify().message() == "0 entries, chain intact"
    assert ledger.head_hash() == (0, GENESIS)


@pytest.mark.parametrize(
    "column,value",
    [
        ("actor", "mallory"),
        ("purpose", "other"),
        ("params", '{"top_k":1}'),
        ("started_at", "2020-01-01T00:00:00.000000Z"),
        ("gallery_version", 99),
    ],
)
def test_modified_field_names_the_entry(make_ledger, column, value):
    conn, ledger = make_ledger()
    conn.execute(f"UPDATE ledger SET {column} = ? WHERE seq = 4", (value,))
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 4 and "modified" in err.value.what


def test_deleted_middle_entry_is_named(make_ledger):
    conn, ledger = make_ledger()
    conn.execute("DELETE FROM ledger WHERE seq = 5")
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 5 and "deleted" in err.value.what


def test_swapped_entries_are_named(make_ledger):
    conn, ledger = make_ledger()
    conn.execute("UPDATE ledger SET pos = -1 WHERE seq = 3")
    conn.execute("UPDATE ledger SET pos = 3 WHERE seq = 4")
    conn.execute("UPDATE ledger SET pos = 4 WHERE seq = 3")
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 3 and "reordered" in err.value.what


def test_inserted_entry_is_named(make_ledger):
    conn, ledger = make_ledger()
    row = conn.execute("SELECT * FROM ledger WHERE seq = 2").fetchone()
    conn.execute("UPDATE ledger SET pos = pos + 100 WHERE seq >= 4")
    conn.execute("INSERT INTO ledger VALUES (" + ",".join("?" * len(row)) + ")", (50, *row[1:]))
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 2 and "inserted" in err.value.what


def test_forged_entry_with_recomputed_hash_but_wrong_link_is_named(make_ledger):
    conn, ledger = make_ledger()
    entries = list(ledger.store.entries())
    forged = entries[3]
    body = {**forged.body(), "actor": "mallory"}
    fake_prev = "f" * 64
    conn.execute(
        "UPDATE ledger SET actor = 'mallory', prev_hash = ?, entry_hash = ? WHERE seq = 4",
        (fake_prev, compute_hash(fake_prev, body, None)),
    )
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 4 and "link" in err.value.what


def test_truncated_tail_needs_the_anchor(make_ledger):
    conn, ledger = make_ledger(8)
    seq, anchor = ledger.head_hash()
    assert seq == 8
    assert ledger.verify(anchor=anchor).anchor_checked
    conn.execute("DELETE FROM ledger WHERE seq >= 7")
    assert ledger.verify().n_entries == 6  # without the anchor, truncation is invisible
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify(anchor=anchor)
    assert err.value.entry_seq == 7 and "truncated" in err.value.what
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify(anchor=f"8:{anchor}")
    assert err.value.entry_seq == 7


def test_anchor_still_found_after_growth(make_ledger):
    conn, ledger = make_ledger(3)
    _, anchor = ledger.head_hash()
    ledger.append("export", "auditor")
    assert ledger.verify(anchor=anchor).n_entries == 4
    with pytest.raises(UsageError):
        ledger.verify(anchor="not-a-hash")


def test_hmac_chain_cannot_be_rebuilt_without_the_key(make_ledger):
    key = b"ledger secret"
    conn, ledger = make_ledger(5, key=key)
    assert ledger.verify().n_entries == 5
    # an attacker without the key edits entry 3 and rebuilds the chain with plain SHA-256 ...
    entries = list(ledger.store.entries())
    prev = entries[1].entry_hash
    for e in entries[2:]:
        body = {**e.body(), "actor": "mallory" if e.seq == 3 else e.actor}
        h = compute_hash(prev, body, None)
        conn.execute(
            "UPDATE ledger SET actor = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            (body["actor"], prev, h, e.seq),
        )
        prev = h
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 3
    # ... or relabels everything as unsigned: still refused under the key
    conn2, signed = make_ledger(3, key=key)
    prev = GENESIS
    for e in list(signed.store.entries()):
        body = {**e.body(), "alg": "sha256"}
        h = compute_hash(prev, body, None)
        conn2.execute(
            "UPDATE ledger SET alg = 'sha256', prev_hash = ?, entry_hash = ? WHERE seq = ?", (prev, h, e.seq)
        )
        prev = h
    with pytest.raises(LedgerIntegrityError) as err:
        signed.verify()
    assert err.value.entry_seq == 1 and "not signed" in err.value.what


def test_wrong_key_fails_and_signed_ledger_needs_key(make_ledger):
    conn, ledger = make_ledger(3, key=b"right")
    with pytest.raises(LedgerIntegrityError) as err:
        Ledger(ledger.store, key=b"wrong").verify()
    assert err.value.entry_seq == 1
    with pytest.raises(UsageError, match="FACEAUDIT_LEDGER_KEY"):
        Ledger(ledger.store).verify()
    with pytest.raises(PolicyError, match="signed"):
        Ledger(ledger.store).append("identify", "x")
    conn2, unsigned = make_ledger(2)
    with pytest.raises(PolicyError, match="unsigned"):
        Ledger(unsigned.store, key=b"k").append("identify", "x")
