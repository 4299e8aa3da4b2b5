"""The PostgreSQL ledger store under concurrent writers: separate processes append at once, the chain holds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from faceaudit.errors import LedgerIntegrityError, UsageError
from faceaudit.ledger import Ledger, LedgerEntry

psycopg = pytest.importorskip("psycopg")

from faceaudit.ledger.pg_store import (  # noqa: E402
    LedgerConflictError,
    PostgresLedgerStore,
    create_schema,
)

WRITER = """
import sys
import psycopg
from faceaudit.ledger import Ledger
from faceaudit.ledger.pg_store import PostgresLedgerStore

url, name, n, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode() or None
with psycopg.connect(url, autocommit=True) as conn:
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store, key=key)
    print("ready", flush=True)
    sys.stdin.readline()  # the start gate: every writer connected before any appends
    for i in range(n):
        with store.transaction():
            ledger.append("identify", name, purpose="load", case_ref=f"{name}-{i}", params={"i": i})
"""


@pytest.fixture()
def conn(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as c:
        create_schema(c)
        yield c


@pytest.mark.parametrize("key", [b"", b"ledger secret"])
def test_processes_appending_at_once_keep_one_chain(pg_url, conn, key):
    n_procs, n_each = 4, 25
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_url, f"writer-{p}", str(n_each), key.decode()],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(n_procs)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    ledger = Ledger(PostgresLedgerStore(conn), key=key or None)
    report = ledger.verify()
    assert report.n_entries == n_procs * n_each
    entries = list(ledger.store.entries())
    assert [e.seq for e in entries] == list(range(1, n_procs * n_each + 1))
    for p in range(n_procs):  # every append of every writer is there, each once, in that writer's order
        mine = [e.params["i"] for e in entries if e.actor == f"writer-{p}"]
        assert mine == list(range(n_each))
    # the writers really interleaved (not one after the other): otherwise this test proves nothing
    actors = [e.actor for e in entries]
    switches = sum(a != b for a, b in zip(actors, actors[1:], strict=False))
    assert switches > n_procs


def test_an_open_append_blocks_the_next_writer_until_commit(pg_url, conn):
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store)
    ledger.append("init", "admin")
    done = threading.Event()

    def other_writer():
        with psycopg.connect(pg_url, autocommit=True) as c2:
            s2 = PostgresLedgerStore(c2)
            with s2.transaction():
                Ledger(s2).append("identify", "second")
        done.set()

    with store.transaction():
        ledger.append("identify", "first")
        t = threading.Thread(target=other_writer)
        t.start()
        # the second writer waits on the advisory lock (seen by the server), not on chance
        deadline = time.monotonic() + 30
        waiting = False
        while time.monotonic() < deadline and not waiting:
            waiting = (
                conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]
                == 1
            )
            time.sleep(0.05)
        assert waiting and not done.is_set()
    t.join(timeout=30)
    assert done.is_set()
    entries = list(store.entries())
    assert [e.actor for e in entries] == ["admin", "first", "second"]
    assert Ledger(store).verify().n_entries == 3


def test_a_write_on_a_stale_head_is_refused_not_forked(conn):
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store)
    first = ledger.append("init", "admin")
    ledger.append("identify", "a")
    stale = LedgerEntry(**{**first.as_dict(), "seq": 2, "actor": "b", "entry_hash": "0" * 64})
    with pytest.raises(LedgerConflictError, match="another writer"):
        store.write(stale)
    assert store.count() == 2 and ledger.verify().n_entries == 2


def test_append_many_writes_one_chain_and_refuses_a_broken_or_stale_one(conn):
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store, key=b"k")
    ledger.append("init", "admin")
    with store.transaction():
        entries = ledger.append_many(
            [{"action": "enroll", "actor": "a", "params": {"i": i}} for i in range(5)]
        )
    assert [e.seq for e in entries] == [2, 3, 4, 5, 6] and ledger.verify().n_entries == 6
    assert [e.as_dict() for e in store.entries(1)] == [e.as_dict() for e in entries]
    gap = [entries[0], LedgerEntry(**{**entries[1].as_dict(), "seq": 9})]
    with pytest.raises(LedgerConflictError, match="does not follow"):
        store.write_many(gap)
    with pytest.raises(LedgerConflictError, match="another writer"):
        store.write_many(entries[:2])  # a chain that no longer follows the head
    assert store.count() == 6 and ledger.verify().n_entries == 6


def test_appends_refuse_snapshot_isolation(conn):
    store = PostgresLedgerStore(conn)
    Ledger(store).append("init", "admin")
    with pytest.raises(UsageError, match="READ COMMITTED"), conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        Ledger(store).append("identify", "x")
    assert store.count() == 1


def test_append_rolls_back_with_the_callers_transaction(conn):
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store)
    ledger.append("init", "admin")
    with pytest.raises(RuntimeError), store.transaction():
        ledger.append("identify", "x")
        raise RuntimeError("the change failed")
    assert store.count() == 1 and ledger.verify().n_entries == 1


def test_entries_page_through_a_long_ledger(conn):
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store)
    with store.transaction():
        for i in range(2500):
            ledger.append("identify", f"op{i}")
    assert ledger.verify().n_entries == 2500
    assert [e.seq for e in store.entries(since_seq=2490)] == list(range(2491, 2501))


def test_auth_round_trips_and_is_hashed(conn):
    store = PostgresLedgerStore(conn)
    ledger = Ledger(store)
    ledger.append("init", "admin")  # an entry without auth keeps its old-format hash
    ledger.append("identify", "alice", auth={"auth": "api-key", "key_id": "k1"})
    entries = list(store.entries())
    assert entries[0].auth is None and entries[1].auth == {"auth": "api-key", "key_id": "k1"}
    assert ledger.verify().n_entries == 2
    conn.execute("""UPDATE ledger SET auth = '{"auth": "local"}' WHERE seq = 2""")
    with pytest.raises(LedgerIntegrityError) as err:
        ledger.verify()
    assert err.value.entry_seq == 2
