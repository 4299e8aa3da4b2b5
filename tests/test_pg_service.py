"""Two ``faceaudit serve`` replicas on one real PostgreSQL database: what one does, the other sees at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (faceaudit[postgres])")
pytest.importorskip("httpx", reason="the service extras are not installed")

from service_fixtures import ROLE_KEYS, enrol, image, make_gallery, make_key, start_server  # noqa: E402
from stores import postgres_store  # noqa: E402


@pytest.fixture()
def replicas(pg_url, tmp_path, monkeypatch):
    monkeypatch.delenv("FACEAUDIT_KEY", raising=False)
    store = postgres_store(pg_url, tmp_path)
    make_gallery(store, n_synthetic=0)
    keys = {role: make_key(store, f"{role}-person", role) for role in ROLE_KEYS}
    servers = []
    try:
        for name in ("a", "b"):
            srv = start_server(store, "--workers", "2", log=tmp_path / f"{name}.log")
            srv.keys = keys
            servers.append(srv)
        yield servers
    finally:
        for srv in servers:
            srv.stop()


def _identify(server, face: str) -> list[str]:
    with server.client("searcher") as c:
        r = c.post("/v1/identify", files={"image": image(face)}, data={"purpose": "test", "case": "C-1"})
    assert r.status_code == 200, r.text
    return [c["subject_ref"] for c in r.json()["candidates"]]


def test_enrol_on_one_replica_identify_and_erase_across(replicas, pg_url):
    a, b = replicas
    enrol(a, "enroller", "p-0001", "0001", n_images=2)
    assert _identify(b, "0001")[:1] == ["p-0001"]  # enrolled through a, found through b
    with b.client("dpo") as c:
        r = c.delete("/v1/subjects/p-0001", params={"reason": "subject asked"})
    assert r.status_code == 200, r.text
    assert "p-0001" not in _identify(a, "0001")  # erased through b: a never returns it again
    with a.client("dpo") as c:
        assert c.delete("/v1/subjects/p-0001", params={"reason": "again"}).status_code == 404

    # both replicas append to the one ledger at once; the chain holds
    with ThreadPoolExecutor(4) as pool:  # two requests in flight per replica: within its 2 workers
        found = list(pool.map(lambda i: _identify((a, b)[i % 2], "0002"), range(16)))
    assert len(found) == 16
    import psycopg

    from faceaudit.ledger import Ledger
    from faceaudit.ledger.pg_store import PostgresLedgerStore

    with psycopg.connect(pg_url, autocommit=True) as conn:
        ledger = Ledger(PostgresLedgerStore(conn))
        report = ledger.verify()
        actions = [e.action for e in ledger.store.entries()]
    assert actions.count("identify") == 18 and report.n_entries == len(actions)
    for srv in replicas:  # each replica verifies the shared chain (its own view of the same rows)
        with srv.client("auditor") as c:
            got = c.get("/v1/ledger/verify").json()
        assert got["intact"] is True and got["entries"] >= report.n_entries


def _index(server) -> dict:
    with server.client("auditor") as c:
        r = c.get("/v1/index")
    assert r.status_code == 200, r.text
    return r.json()


def _caught_up(server, version: int, limit_s: float = 20.0) -> dict:
    """Poll ``/v1/index`` (which never searches, so never catches up by itself) until the index reflects
    ``version``; a generous limit, since this is not a timing test (benchmarks/replica_follow.py times it)."""
    import time

    deadline = time.monotonic() + limit_s
    while True:
        got = _index(server)
        if got["index_version"] >= version or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_a_replica_follows_the_other_without_a_search(replicas):
    """Replica b's index follows a's enrolment and erasure through LISTEN/NOTIFY, with no request to b but
    ``/v1/index``: no search is what brings it up to date."""
    a, b = replicas
    start = _index(b)
    assert start["follower"]["running"] and start["index_version"] == start["gallery_version"]
    enrol(a, "enroller", "p-0003", "0003")
    enrolled = _index(a)["gallery_version"]
    assert enrolled == start["gallery_version"] + 1
    got = _caught_up(b, enrolled)
    assert got["index_version"] == enrolled and got["follower"]["catch_ups"] >= 1
    with a.client("dpo") as c:
        assert c.delete("/v1/subjects/p-0003", params={"reason": "asked"}).status_code == 200
    got = _caught_up(b, enrolled + 1)
    assert got["index_version"] == enrolled + 1 and got["follower"]["errors"] == 0
    assert "p-0003" not in _identify(b, "0003")
