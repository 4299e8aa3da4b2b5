"""Erasure leaves nothing that links a person, reports a blocked checkpoint at once, and can be completed later."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from faceaudit.gallery import Consent, Gallery, GalleryLedger
from faceaudit.gallery.crypto import generate_key
from faceaudit.gallery.records import ScrubPendingWarning

FAIRFACE = Path(__file__).parent / "data" / "fairface"
NAME = "Quintessa Marlowe-Achterberg"


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def ledger_text(path: Path) -> str:
    with GalleryLedger(path) as gl:
        return "\n".join(json.dumps(e.as_dict(), ensure_ascii=False) for e in gl.ledger.store.entries())


def test_after_erasure_the_ledger_holds_nothing_that_links_the_person(tmp_path, engine):
    photo = FAIRFACE / "fairface_0002.jpg"
    probe = FAIRFACE / "fairface_0003.jpg"
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (photo, probe)]
    basis = f"signed form of {NAME}, 2026-11-02"
    with Gallery(tmp_path / "e.db", key=generate_key(), engine=engine) as g:
        g.enroll("qma-1", [photo], name=NAME, consent=Consent(basis, "Registrar Ruth"), operator="desk")
        g.verify_subject(probe, "qma-1", operator="o", purpose="door check")
        g.identify(probe, purpose="p", case="c", operator="o")
        g.erase("qma-1", reason="erasure request 12", operator="dpo")
        text = ledger_text(g.path)
        # a key holder can still check a photo against the ledger
        assert g.photo_digest(digests[0]) in text and g.photo_digest(digests[1]) in text
    for secret in (*digests, NAME, "Marlowe", "Registrar Ruth", "qma-1", basis):
        assert secret not in text, secret


def enrol_one(path: Path, key: bytes) -> None:
    with Gallery(path, key=key, engine=FakeEngine()) as g:
        g.enroll_templates(
            "held-1",
            np.eye(8, dtype=np.float32)[:1],
            name=NAME,
            consent=Consent("b", "r"),
            operator="o",
            model_id="fake-model",
        )


def raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.suffix != ".key")


READER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT COUNT(*) FROM subjects").fetchone()
print("reading", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
"""


def test_erase_while_another_process_reads_reports_at_once_and_scrub_completes_it(tmp_path):
    path = tmp_path / "held.db"
    key = generate_key()
    enrol_one(path, key)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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
            str(path),
            env={"FACEAUDIT_KEY": key.hex()},
            timeout=60,
        )
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert "erased held-1" in r.stderr and "pending" in r.stderr and "gallery scrub" in r.stderr
        assert elapsed < 30  # a bounded wait (5 s by default), not 50 tries of 60 s
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT value FROM meta WHERE key = 'scrub_pending'").fetchone() is not None
        assert conn.execute("SELECT COUNT(*) FROM subjects").fetchone()[0] == 0
        conn.close()
        r = run_cli("gallery", "scrub", "--wait", "0.5", "--db", str(path))
        assert r.returncode == 1 and "still has" in r.stderr
    finally:
        reader.stdin.write("\n")
        reader.stdin.flush()
        reader.wait(timeout=30)
    r = run_cli("gallery", "scrub", "--db", str(path))
    assert r.returncode == 0 and "checkpoint complete" in r.stderr, r.stderr
    assert NAME.encode() not in raw(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'scrub_pending'").fetchone() is None
    conn.close()
    assert run_cli("ledger", "verify", "--db", str(path)).returncode == 0


def test_the_api_warns_and_records_the_pending_scrub(tmp_path):
    path = tmp_path / "api.db"
    key = generate_key()
    enrol_one(path, key)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM subjects").fetchone()
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
    assert NAME.encode() not in raw(path)


def test_ledger_export_to_a_bad_place_logs_nothing_and_leaves_nothing(tmp_path):
    path = tmp_path / "x.db"
    enrol_one(path, generate_key())
    n = sqlite3.connect(path).execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    for out in ("/nonexistent/x.jsonl", str(tmp_path)):
        r = run_cli("ledger", "export", "--out", out, "--db", str(path))
        assert r.returncode == 3 and out in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == n
    assert not list(tmp_path.glob(".*.tmp"))
    r = run_cli("ledger", "export", "--out", str(tmp_path / "ok.jsonl"), "--db", str(path))
    assert r.returncode == 0 and len((tmp_path / "ok.jsonl").read_text().splitlines()) == n
