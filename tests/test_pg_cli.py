"""The gallery and ledger commands with ``--db postgresql://…`` against a real PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

pytest.importorskip("psycopg", reason="psycopg is not installed (faceaudit[postgres])")

FAIRFACE = Path(__file__).parent / "data" / "fairface"
CONSENT = ["--consent-basis", "signed consent form", "--consent-by", "Registrar Ruth"]
NOKEY = {"FACEAUDIT_KEY": ""}


def face(n: str) -> str:
    return str(FAIRFACE / f"fairface_{n}.jpg")


def test_gallery_identify_erase_and_ledger_commands(pg_url, tmp_path):
    from faceaudit.pgsql import redact

    r = run_cli("gallery", "init", "--db", pg_url, env=NOKEY)
    assert r.returncode == 2 and "--key-file" in r.stderr  # no key file beside a database URL
    key = tmp_path / "gallery.key"
    db = ["--db", pg_url, "--key-file", str(key)]
    r = run_cli("gallery", "init", *db, env=NOKEY)
    assert r.returncode == 0, r.stderr
    assert (
        redact(pg_url) in r.stderr and pg_url.split(":")[2].split("@")[0] not in r.stderr
    )  # password masked
    for ref, n in (("S1", "0001"), ("S2", "0002")):
        r = run_cli("gallery", "enroll", ref, face(n), "--name", f"Person {ref}", *CONSENT, "--operator", "op", *db,
                    env=NOKEY)  # fmt: skip
        assert r.returncode == 0, r.stderr
    ask = ["--purpose", "p", "--case", "c", "--operator", "det", "--json", *db]
    r = run_cli("identify", face("0002"), *ask, env=NOKEY)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["candidates"][0]["subject_ref"] == "S2"
    r = run_cli(
        "gallery", "erase", "S2", "--reason", "asked", "--operator", "dpo", "--vacuum", *db, env=NOKEY
    )
    assert r.returncode == 0, r.stderr
    r = run_cli("identify", face("0002"), *ask, env=NOKEY)
    assert "S2" not in [c["subject_ref"] for c in json.loads(r.stdout)["candidates"]]
    # the ledger is verified and exported without the gallery key
    r = run_cli("ledger", "verify", "--db", pg_url, env=NOKEY)
    assert r.returncode == 0 and "chain intact" in r.stdout, r.stderr
    r = run_cli("ledger", "export", "--db", pg_url, "--operator", "auditor", env=NOKEY)
    actions = [json.loads(line)["action"] for line in r.stdout.splitlines()]
    assert r.returncode == 0 and actions[0] == "configure" and actions.count("identify") == 2, r.stderr
    r = run_cli("gallery", "scrub", "--db", pg_url, env=NOKEY)
    assert r.returncode == 0, r.stderr
    r = run_cli("ledger", "verify", "--db", pg_url.rsplit("/", 1)[0] + "/no_such_db", env=NOKEY)
    assert r.returncode != 0 and "no_such_db" in r.stderr and "Traceback" not in r.stderr
