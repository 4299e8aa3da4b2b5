"""Erasure leaves nothing that links a person, reports a blocked checkpoint at once, and can be completed later.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (the ``store`` fixture). What
blocks the scrub differs: an SQLite reader holds the WAL's frames; a PostgreSQL snapshot pins the dead tuples."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from conftest import run_cli
from stores import RawDb, stored_bytes

from faceaudit.gallery import Consent, Gallery, GalleryLedger
from faceaudit.gallery.crypto import generate_key
from faceaudit.gallery.records import ScrubPendingWarning

FAIRFACE = Path(__file__).parent / "data" / "fairface"
NAME = "Quintessa Marlowe-Achterberg"


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def ledger_text(path: str) -> str:
    with GalleryLedger(path) as gl:
        return "\n".join(json.dumps(e.as_dict(), ensure_ascii=False) for e in gl.ledger.store.entries())


def test_after_erasure_the_ledger_holds_nothing_that_links_the_person(store, engine):
    photo = FAIRFACE / "fairface_0002.jpg"
    probe = FAIRFACE / "fairface_0003.jpg"
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (photo, probe)]
    basis = f"signed form of {NAME}, 2026-11-02"
    with Gallery(store.db, key=generate_key(), engine=engine) as g:
        g.enroll("qma-1", [photo], name=NAME, consent=Consent(basis, "Registrar Ruth"), operator="desk")
        g.verify_subject(probe, "qma-1", operator="o", purpose="door check")
        g.identify(probe, purpose="p", case="c", operator="o")
        g.erase("qma-1", reason="erasure request 12", operator="dpo")
        text = ledger_text(store.db)
        # a key holder can still check a photo against the ledger
        assert g.photo_digest(digests[0]) in text and g.photo_digest(digests[1]) in text
    for secret in (*digests, NAME, "Marlowe", "Registrar Ruth", "qma-1", basis):
        assert secret not in text, secret


def enrol_one(path: str, key: bytes) -> None:
    with Gallery(path, key=key, engine=FakeEngine()) as g:
        g.enroll_templates(
            "held-1",
            np.eye(8, dtype=np.float32)[:1],
            name=NAME,
            consent=Consent("b", "r"),
            operator="o",
            model_id="fake-model",
        )


READER = """
import sys
sys.path.insert(0, sys.argv[2])
from stores import RawDb
conn = RawDb(sys.argv[1])
conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if conn.pg else "BEGIN")
conn.execute("SELECT COUNT(*) FROM subjects").fetchone()
print("reading", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
"""


def begin_reading(db: str) -> RawDb:
    """A reader in the middle of a read transaction (SQLite: a WAL read mark; PostgreSQL: a snapshot)."""
    reader = RawDb(db)
    reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if reader.pg else "BEGIN")
    reader.execute("SELECT COUNT(*) FROM subjects").fetchone()
    return reader


def no_password(store, text: str) -> bool:
    return not store.pg or urlparse(store.db).password not in text


def test_erase_while_another_process_reads_reports_at_once_and_scrub_completes_it(store):
    path = store.db
    key = generate_key()
    enrol_one(path, key)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, path, str(Path(__file__).parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        t0 = time.monotonic()
        r = run_cli(
            "gallery",
            "erase",
            "held-1",
            "--reason",
            "request",
            "--operator",
            "dpo",
            "--db",
            path,
            env={"FACEAUDIT_KEY": key.hex()},
            timeout=60,
        )
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert "erased held-1" in r.stderr and "pending" in r.stderr and "gallery scrub" in r.stderr
        assert elapsed < 30  # a bounded wait (5 s by default), not 50 tries of 60 s
        held = "a transaction open" if store.pg else "write-ahead log"  # what keeps the bytes, in plain words
        assert held in r.stderr and no_password(store, r.stderr)
        with RawDb(path) as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'scrub_pending'").fetchone() is not None
            assert conn.scalar("SELECT COUNT(*) FROM subjects") == 0
        r = run_cli("gallery", "scrub", "--wait", "0.5", "--db", path)
        assert (
            r.returncode == 1
            and "still has" in r.stderr
            and held in r.stderr
            and no_password(store, r.stderr)
        )
    finally:
        reader.stdin.write("\n")
        reader.stdin.flush()
        reader.wait(timeout=30)
    r = run_cli("gallery", "scrub", "--db", path)
    assert r.returncode == 0 and "checkpoint complete" in r.stderr and no_password(store, r.stderr), r.stderr
    assert NAME.encode() not in stored_bytes(store)
    with RawDb(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'scrub_pending'").fetchone() is None
    assert run_cli("ledger", "verify", "--db", path).returncode == 0


def test_the_api_warns_and_records_the_pending_scrub(store):
    path = store.db
    key = generate_key()
    enrol_one(path, key)
    reader = begin_reading(path)
    with Gallery(path, key=key, engine=FakeEngine(), create=False) as g:
        with pytest.warns(ScrubPendingWarning, match="gallery scrub"):
            g.erase("held-1", reason="r", operator="o")
        assert g.scrub_pending is not None
        reader.execute("COMMIT")
        reader.close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert g.scrub(wait_s=1.0)
        assert g.scrub_pending is None
    assert NAME.encode() not in stored_bytes(store)


def test_ledger_export_to_a_bad_place_logs_nothing_and_leaves_nothing(store, tmp_path):
    path = store.db
    enrol_one(path, generate_key())
    n = store.count("ledger")
    for out in ("/nonexistent/x.jsonl", str(tmp_path)):
        r = run_cli("ledger", "export", "--out", out, "--db", path)
        assert r.returncode == 3 and out in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert store.count("ledger") == n
    assert not list(tmp_path.glob(".*.tmp"))
    r = run_cli("ledger", "export", "--out", str(tmp_path / "ok.jsonl"), "--db", path)
    assert r.returncode == 0 and len((tmp_path / "ok.jsonl").read_text().splitlines()) == n
