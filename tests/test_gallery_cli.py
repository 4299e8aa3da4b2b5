"""The gallery commands in real subprocesses: exit codes, the candidate list, keys, erasure of the bytes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import cv2
import pytest
from conftest import run_cli

FAIRFACE = Path(__file__).parent / "data" / "fairface"
NAME = "Zephyrine Quillfeather-Odunsi"
REF = "subject-ZQO-7731"
CONSENT = ["--consent-basis", "signed consent form", "--consent-by", "Registrar Ruth"]
NOKEY = {"FACEAUDIT_KEY": ""}


def face(n: str) -> str:
    return str(FAIRFACE / f"fairface_{n}.jpg")


@pytest.fixture(scope="module")
def flipped(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("flip")
    paths = {}
    for n in ("0001", "0002", "0003", "0005"):
        p = out / f"{n}_flip.jpg"
        cv2.imwrite(str(p), cv2.flip(cv2.imread(face(n)), 1))
        paths[n] = str(p)
    return paths


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """A gallery with three subjects, one of them with a distinctive name and ref."""
    db = tmp_path_factory.mktemp("cli") / "g.db"
    r = run_cli("gallery", "init", "--db", str(db), env=NOKEY)
    assert r.returncode == 0, r.stderr
    key_file = Path(f"{db}.key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    for ref, name, n in (
        (REF, NAME, "0001"),
        ("S2", "Second Person", "0002"),
        ("S3", "Third Person", "0003"),
    ):
        r = run_cli(
            "gallery",
            "enroll",
            ref,
            face(n),
            "--name",
            name,
            *CONSENT,
            "--operator",
            "op",
            "--db",
            str(db),
            env=NOKEY,
        )
        assert r.returncode == 0, r.stderr
    return db


def test_enroll_refusals(gallery):
    db = ["--db", str(gallery)]
    r = run_cli(
        "gallery",
        "enroll",
        "X",
        face("0005"),
        "--name",
        "X",
        "--consent-by",
        "Ruth",
        "--operator",
        "op",
        *db,
        env=NOKEY,
    )
    assert r.returncode == 2 and "consent basis" in r.stderr
    r = run_cli(
        "gallery", "enroll", "X", face("0008"), "--name", "X", *CONSENT, "--operator", "op", *db, env=NOKEY
    )
    assert r.returncode == 3 and "fairface_0008.jpg" in r.stderr and "too blurred" in r.stderr


def test_identify_candidate_list(gallery, flipped):
    r = run_cli(
        "identify",
        flipped["0002"],
        "--purpose",
        "missing person",
        "--case",
        "MP-12",
        "--operator",
        "det",
        "--top-k",
        "2",
        "--json",
        "--db",
        str(gallery),
        env=NOKEY,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["decision"] is None and "match" not in out
    assert [c["subject_ref"] for c in out["candidates"]][0] == "S2" and len(out["candidates"]) == 2
    first, second = out["candidates"]
    assert first["name"] == "Second Person" and first["above_threshold"] and not second["above_threshold"]
    assert first["similarity"] > second["similarity"]
    for missing in ("--purpose", "--case", "--operator"):
        args = {"--purpose": "p", "--case": "c", "--operator": "o"}
        del args[missing]
        r = run_cli(
            "identify",
            flipped["0002"],
            *[x for kv in args.items() for x in kv],
            "--db",
            str(gallery),
            env=NOKEY,
        )
        assert r.returncode == 2 and missing in r.stderr
    r = run_cli(
        "identify",
        face("0008"),
        "--purpose",
        "p",
        "--case",
        "c",
        "--operator",
        "o",
        "--db",
        str(gallery),
        env=NOKEY,
    )
    assert r.returncode == 3 and "probe quality too low" in r.stderr


def test_verify_subject(gallery, flipped):
    r = run_cli(
        "verify-subject", flipped["0003"], "S3", "--operator", "o", "--json", "--db", str(gallery), env=NOKEY
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["subject_ref"] == "S3" and out["above_threshold"]
    r = run_cli(
        "verify-subject", flipped["0003"], "S2", "--operator", "o", "--json", "--db", str(gallery), env=NOKEY
    )
    assert not json.loads(r.stdout)["above_threshold"]


def test_wrong_or_missing_key_is_clear_and_changes_nothing(gallery, tmp_path):
    before = gallery.read_bytes()
    n_entries = sqlite3.connect(gallery).execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    args = [
        "gallery",
        "enroll",
        "K",
        face("0005"),
        "--name",
        "K",
        *CONSENT,
        "--operator",
        "o",
        "--db",
        str(gallery),
    ]
    r = run_cli(*args, env={"FACEAUDIT_KEY": "00" * 32})
    assert r.returncode == 2 and "wrong gallery key" in r.stderr
    r = run_cli(*args, "--key-file", str(tmp_path / "none.key"), env=NOKEY)
    assert r.returncode == 2 and "no gallery key" in r.stderr
    assert gallery.read_bytes() == before
    assert sqlite3.connect(gallery).execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == n_entries


def test_erase_overwrites_the_bytes(gallery, flipped):
    conn = sqlite3.connect(gallery)
    sealed = [
        r[0]
        for r in conn.execute(
            "SELECT t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id WHERE s.subject_ref = ?",
            (REF,),
        )
    ]
    conn.close()
    assert sealed

    def raw() -> bytes:
        return b"".join(p.read_bytes() for p in gallery.parent.glob(gallery.name + "*") if p.suffix != ".key")

    blob = raw()
    assert NAME.encode() in blob and REF.encode() in blob and all(s in blob for s in sealed)
    r = run_cli(
        "gallery",
        "erase",
        REF,
        "--reason",
        "erasure request",
        "--operator",
        "dpo",
        "--db",
        str(gallery),
        env=NOKEY,
    )
    assert r.returncode == 0, r.stderr
    blob = raw()
    assert NAME.encode() not in blob and REF.encode() not in blob
    assert not any(s in blob for s in sealed)
    assert not any(s[40:80] in blob for s in sealed)  # not even a fragment of the ciphertext
    r = run_cli(
        "identify",
        flipped["0001"],
        "--purpose",
        "p",
        "--case",
        "c",
        "--operator",
        "o",
        "--json",
        "--db",
        str(gallery),
        env=NOKEY,
    )
    assert REF not in [c["subject_ref"] for c in json.loads(r.stdout)["candidates"]]
    assert run_cli("ledger", "verify", "--db", str(gallery)).returncode == 0


def test_expire_command(tmp_path):
    db = tmp_path / "e.db"
    assert run_cli("gallery", "init", "--db", str(db), env=NOKEY).returncode == 0
    r = run_cli(
        "gallery",
        "enroll",
        "T",
        face("0005"),
        "--name",
        "Temporary",
        *CONSENT,
        "--consent-expires",
        "2099-01-01",
        "--operator",
        "o",
        "--db",
        str(db),
        env=NOKEY,
    )
    assert r.returncode == 0, r.stderr
    assert run_cli("gallery", "expire", "--as-of", "2098-12-31", "--db", str(db), env=NOKEY).returncode == 0
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM subjects").fetchone()[0] == 1
    r = run_cli("gallery", "expire", "--as-of", "2099-01-01", "--db", str(db), env=NOKEY)
    assert r.returncode == 0 and "1 subject(s)" in r.stderr
    assert b"Temporary" not in db.read_bytes()
    r = run_cli("gallery", "init", "--db", str(db), env=NOKEY)
    assert r.returncode == 2


def test_enroll_manifest_refuses_a_subject_and_enrols_the_rest(tmp_path):
    db = tmp_path / "m.db"
    assert run_cli("gallery", "init", "--db", str(db), env=NOKEY).returncode == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "subject_ref,path,name,consent_basis\n"
        "good,fairface_0001.jpg,Good One,\n"
        "bad,fairface_0002.jpg,Bad One,\n"
        "bad,fairface_0008.jpg,Bad One,\n"
        "own,fairface_0003.jpg,Own Basis,contract clause 4\n"
    )
    base = [
        "gallery",
        "enroll-manifest",
        str(manifest),
        "--root",
        str(FAIRFACE),
        "--operator",
        "bulk",
        "--db",
        str(db),
    ]
    r = run_cli(*base, "--consent-by", "Ruth", env=NOKEY)
    assert r.returncode == 2 and "consent basis" in r.stderr  # checked for every subject before any enrolment
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM subjects").fetchone()[0] == 0
    r = run_cli(*base, *CONSENT, env=NOKEY)
    assert r.returncode == 3 and "refused bad" in r.stderr and "too blurred" in r.stderr
    conn = sqlite3.connect(db)
    rows = dict(conn.execute("SELECT subject_ref, consent_basis FROM subjects").fetchall())
    assert rows == {"good": "signed consent form", "own": "contract clause 4"}
    assert conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0] == 2  # nothing of 'bad'
    conn.close()
    r = run_cli(*base, *CONSENT, env=NOKEY)
    assert r.returncode == 3 and "0 subject(s) enrolled, 2 already present, 1 refused" in r.stderr
