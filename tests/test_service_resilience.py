"""Backpressure (503 + Retry-After), the kill -9 restart, and the keys commands, on real server processes."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import run_cli
from service_fixtures import image, make_gallery, make_key, start_server
from stores import sqlite_store

from faceaudit.service.errors import ApiError
from faceaudit.service.pool import InferencePool


def test_pool_refuses_work_beyond_its_queue():
    pool = InferencePool(workers=1, queue=1)
    release = threading.Event()

    async def scenario():
        first = asyncio.ensure_future(pool.run(release.wait, 30))
        second = asyncio.ensure_future(pool.run(lambda: "queued"))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as info:
            await pool.run(lambda: "refused")
        release.set()
        return await first, await second, info.value

    try:
        first, second, err = asyncio.run(scenario())
    finally:
        pool.shutdown()
    assert first is True and second == "queued"
    assert err.status == 503 and err.headers == {"Retry-After": "1"}


@pytest.mark.slow
def test_backpressure_answers_503_with_retry_after(tmp_path):
    """SQLite only: this is about the inference pool in front of the store (detect never reads it)."""
    store = sqlite_store(tmp_path)
    make_gallery(store, n_synthetic=2)
    key = make_key(store, "sam", "searcher", rate_limit="1000/s")
    srv = start_server(store, "--workers", "1", "--queue", "0")
    try:
        face = image("0001")

        def call(_):
            with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
                return c.post("/v1/detect", files={"image": face})

        with ThreadPoolExecutor(16) as ex:
            responses = list(ex.map(call, range(48)))
    finally:
        srv.stop()
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert 200 in codes
    busy = [r for r in responses if r.status_code == 503]
    assert busy, "16 concurrent clients against one worker with no queue never got a 503"
    assert all(r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "busy" for r in busy)


@pytest.mark.slow
def test_kill_9_during_concurrent_enrolments_leaves_no_partial_subject(store):
    make_gallery(store, n_synthetic=5)
    key = make_key(store, "erin", "enroller,searcher", rate_limit="1000/s")
    faces = ["0001", "0002", "0003", "0005", "0007"]
    srv = start_server(store, "--workers", "2", "--queue", "64")
    stop = threading.Event()
    answered: dict[str, int] = {}

    def enrol_loop(worker: int) -> None:
        n = 0
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            while not stop.is_set():
                ref = f"w{worker}-{n}"
                files = [
                    ("images", image(faces[(worker + n) % 5])),
                    ("images", image(faces[(worker + n + 1) % 5])),
                ]
                data = {"subject_ref": ref, "name": ref, "consent_basis": "form", "consent_by": "reg"}
                try:
                    answered[ref] = c.post("/v1/subjects", files=files, data=data).status_code
                except httpx.HTTPError:
                    return  # the server died under us
                n += 1

    threads = [threading.Thread(target=enrol_loop, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while sum(code == 201 for code in answered.values()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(60)
    assert srv.proc.returncode == -signal.SIGKILL
    assert sum(code == 201 for code in answered.values()) >= 6

    srv = start_server(store, "--workers", "2")
    try:
        with store.raw() as conn:
            per_subject = dict(
                conn.execute(
                    "SELECT s.subject_ref, COUNT(t.id) FROM subjects s "
                    "LEFT JOIN templates t ON t.subject_id = s.id GROUP BY s.id, s.subject_ref"
                ).fetchall()
            )
            enrol_entries = conn.scalar("SELECT COUNT(*) FROM ledger WHERE action = 'enroll'")
        assert all(n == 2 for n in per_subject.values()), per_subject  # no partial subject
        assert len(per_subject) == enrol_entries == 5 + len([r for r in per_subject if r.startswith("w")])
        assert all(ref in per_subject for ref, code in answered.items() if code == 201)
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            found = c.post(
                "/v1/identify", files={"image": image("0003")}, data={"purpose": "restart", "case": "K9"}
            ).json()
        enrolled_with_0003 = {r for r in per_subject if r.startswith("w")}
        top = found["candidates"][0]
        assert top["subject_ref"] in enrolled_with_0003 and top["similarity"] > 0.9  # the index was rebuilt
    finally:
        srv.stop()
    cli = run_cli("ledger", "verify", "--db", store.db)
    assert cli.returncode == 0, cli.stderr
    assert "chain intact" in cli.stdout


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from faceaudit.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_commands(store, capsys, monkeypatch):
    monkeypatch.delenv("FACEAUDIT_KEY", raising=False)
    make_gallery(store, n_synthetic=0)
    made = run_cli(
        "keys",
        "create",
        *(store.args() if store.pg else ["--db", store.db]),  # SQLite: the key file beside the gallery
        "--principal",
        "alice",
        "--role",
        "reviewer,auditor",
        "--operator",
        "lead",
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("fa_") and len(key) == 59
    key_id = key.split("_")[1]
    code, out, _ = _cli(capsys, "keys", "list", "--db", store.db)
    assert code == 0 and key_id in out and "alice" in out and key not in out
    code, _, err = _cli(
        capsys, "keys", "create", *store.args(), "--principal", "bob", "--role", "searcher,admin"
    )
    assert code == 2 and "admin" in err
    code, _, err = _cli(capsys, "keys", "create", *store.args(), "--principal", "bob", "--role", "boss")
    assert code == 2 and "unknown role" in err
    code, _, err = _cli(
        capsys,
        "keys",
        "create",
        *store.args(),
        "--principal",
        "bob",
        "--role",
        "dpo",
        "--expires",
        "2001-01-01",
    )
    assert code == 2 and "future" in err
    assert _cli(capsys, "keys", "revoke", key_id, "--db", store.db)[0] == 0
    code, _, err = _cli(capsys, "keys", "revoke", key_id, "--db", store.db)
    assert code == 2 and "already revoked" in err
    with store.raw() as conn:
        rows = conn.execute(
            "SELECT action, actor, params, auth FROM ledger WHERE substr(action, 1, 4) = 'key_' ORDER BY seq"
        ).fetchall()
    assert [r[0] for r in rows] == ["key_create", "key_revoke"]
    assert rows[0][1] == "lead" and '"auth": "local"' in rows[0][3] and "os_user" in rows[0][3]
    assert key not in str(rows) and key.split("_", 2)[2] not in str(rows)
    assert _cli(capsys, "ledger", "verify", "--db", store.db)[0] == 0
