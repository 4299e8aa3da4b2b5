"""``faceaudit ledger`` on a real gallery, tampered with through raw SQL, in subprocesses.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (the ``store`` fixture)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from stores import RawDb

from faceaudit.gallery import GalleryLedger

N_EXTRA = 7


@pytest.fixture()
def db(store):
    """A real gallery (init through the CLI) whose ledger holds 1 + N_EXTRA entries; its ``--db`` value."""
    r = run_cli("gallery", "init", *store.args(), "--operator", "admin", env={"FACEAUDIT_KEY": ""})
    assert r.returncode == 0, r.stderr
    with GalleryLedger(store.db) as gl:
        for i in range(N_EXTRA):
            with gl._repo.write():
                gl.ledger.append(
                    "identify",
                    f"op{i}",
                    purpose="test",
                    case_ref=f"C{i}",
                    gallery_id=gl.gallery_id,
                    gallery_version=0,
                    probe_sha256="cd" * 32,
                    params={"top_k": 10},
                    result={"n_candidates": 0, "candidates": []},
                )
    return store.db


def verify(db, *extra):
    return run_cli("ledger", "verify", "--db", str(db), *extra)


def tamper(db, *statements):
    with RawDb(db) as conn:
        for s in statements:
            conn.execute(s)


def test_intact_chain(db):
    r = verify(db)
    assert r.returncode == 0 and r.stdout.strip() == f"{1 + N_EXTRA} entries, chain intact"


def test_edited_field(db):
    tamper(db, "UPDATE ledger SET purpose = 'innocent' WHERE seq = 4")
    r = verify(db)
    assert r.returncode == 1 and "ledger entry 4: modified" in r.stderr


def test_deleted_middle_entry(db):
    tamper(db, "DELETE FROM ledger WHERE seq = 5")
    r = verify(db)
    assert r.returncode == 1 and "ledger entry 5: deleted" in r.stderr


def test_swapped_entries(db):
    tamper(
        db,
        "UPDATE ledger SET pos = -6 WHERE seq = 6",
        "UPDATE ledger SET pos = 6 WHERE seq = 7",
        "UPDATE ledger SET pos = 7 WHERE seq = 6",
    )
    r = verify(db)
    assert r.returncode == 1 and "ledger entry 6: reordered" in r.stderr


def test_truncated_tail_with_anchor(db):
    anchor = run_cli("ledger", "anchor", "--db", str(db))
    assert anchor.returncode == 0
    head = anchor.stdout.strip()
    assert head.startswith(f"{1 + N_EXTRA}:") and len(head.split(":")[1]) == 64
    assert verify(db, "--anchor", head).returncode == 0
    tamper(db, f"DELETE FROM ledger WHERE seq > {N_EXTRA - 1}")
    assert verify(db).returncode == 0  # invisible without the anchor
    r = verify(db, "--anchor", head)
    assert r.returncode == 1 and f"ledger entry {N_EXTRA}: deleted" in r.stderr and "truncated" in r.stderr


def test_export_is_logged_and_verifiable(db, tmp_path):
    out = tmp_path / "ledger.jsonl"
    r = run_cli(
        "ledger",
        "export",
        "--db",
        str(db),
        "--since",
        "3",
        "--format",
        "jsonl",
        "--out",
        str(out),
        "--operator",
        "auditor",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["seq"] for row in rows] == list(range(4, 2 + N_EXTRA))
    assert rows[0]["prev_hash"] and rows[0]["entry_hash"]
    with GalleryLedger(db) as gl:
        last = list(gl.ledger.store.entries())[-1]
    assert last.action == "export" and last.actor == "auditor" and last.result["n_entries"] == len(rows)
    assert verify(db).stdout.strip() == f"{2 + N_EXTRA} entries, chain intact"
    r = run_cli("ledger", "export", "--db", str(db), "--since", "2000-01-01", "--format", "jsonl")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2 + N_EXTRA


def test_signed_ledger(store):
    path = store.db
    env = {"FACEAUDIT_KEY": "", "FACEAUDIT_LEDGER_KEY": "ledger-secret"}
    assert run_cli("gallery", "init", *store.args(), env=env).returncode == 0
    assert run_cli("ledger", "verify", "--db", str(path), env=env).returncode == 0
    r = run_cli("ledger", "verify", "--db", str(path), env={"FACEAUDIT_LEDGER_KEY": ""})
    assert r.returncode == 2 and "FACEAUDIT_LEDGER_KEY" in r.stderr
    r = run_cli("ledger", "verify", "--db", str(path), env={"FACEAUDIT_LEDGER_KEY": "wrong"})
    assert r.returncode == 1 and "ledger entry 1" in r.stderr
