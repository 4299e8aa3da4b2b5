"""The gallery commands in real subprocesses: exit codes, the candidate list, keys, erasure of the bytes.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (``store`` / ``module_store``)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import pytest
from conftest import run_cli
from stores import stored_bytes

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
def gallery(module_store):
    """A gallery with three subjects, one of them with a distinctive name and ref (its store)."""
    db = module_store.args()
    r = run_cli("gallery", "init", *db, env=NOKEY)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(module_store.key_file).st_mode) == 0o600
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
            *db,
            env=NOKEY,
        )
        assert r.returncode == 0, r.stderr
    return module_store


def test_enroll_refusals(gallery):
    db = gallery.args()
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
        *gallery.args(),
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
            *gallery.args(),
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
        *gallery.args(),
        env=NOKEY,
    )
    assert r.returncode == 3 and "probe quality too low" in r.stderr


def test_verify_subject(gallery, flipped):
    r = run_cli(
        "verify-subject", flipped["0003"], "S3", "--operator", "o", "--json", *gallery.args(), env=NOKEY
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["subject_ref"] == "S3" and out["above_threshold"]
    r = run_cli(
        "verify-subject", flipped["0003"], "S2", "--operator", "o", "--json", *gallery.args(), env=NOKEY
    )
    assert not json.loads(r.stdout)["above_threshold"]


def state(store) -> tuple:
    """What a command could change: every subject, template and ledger row and the meta values."""
    with store.raw() as conn:
        return tuple(
            sorted(map(tuple, conn.execute(f"SELECT * FROM {table}").fetchall()), key=repr)
            for table in ("meta", "subjects", "templates", "ledger")
        )


def test_wrong_or_missing_key_is_clear_and_changes_nothing(gallery, tmp_path):
    before_state = state(gallery)
    before = None if gallery.pg else Path(gallery.db).read_bytes()
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
        gallery.db,
    ]
    r = run_cli(*args, env={"FACEAUDIT_KEY": "00" * 32})
    assert r.returncode == 2 and "wrong gallery key" in r.stderr
    r = run_cli(*args, "--key-file", str(tmp_path / "none.key"), env=NOKEY)
    assert r.returncode == 2 and "no gallery key" in r.stderr
    if before is not None:
        assert Path(gallery.db).read_bytes() == before
    assert state(gallery) == before_state


def test_erase_overwrites_the_bytes(gallery, flipped):
    with gallery.raw() as conn:
        sealed = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id WHERE s.subject_ref = ?",
                (REF,),
            ).fetchall()
        ]
    assert sealed

    blob = stored_bytes(gallery)
    assert NAME.encode() in blob and REF.encode() in blob and all(s in blob for s in sealed)
    # PostgreSQL: a plain VACUUM may leave a deleted tuple's bytes in the page's free space; --vacuum (VACUUM
    # FULL) writes the tables anew without them (docs/scaling.md, "Erasure in PostgreSQL, honestly")
    vacuum = ["--vacuum"] if gallery.pg else []
    r = run_cli(
        "gallery",
        "erase",
        REF,
        "--reason",
        "erasure request",
        "--operator",
        "dpo",
        *vacuum,
        *gallery.args(),
        env=NOKEY,
    )
    assert r.returncode == 0, r.stderr
    blob = stored_bytes(gallery)
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
        *gallery.args(),
        env=NOKEY,
    )
    assert REF not in [c["subject_ref"] for c in json.loads(r.stdout)["candidates"]]
    assert run_cli("ledger", "verify", "--db", gallery.db).returncode == 0


def test_expire_command(store, tmp_path):
    db = store.args()
    assert run_cli("gallery", "init", *db, env=NOKEY).returncode == 0
    temporary, keeper = "Tamsin Oyelaran-Temporary", "Kesego Keeper-Lindqvist"  # found in no catalog
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "subject_ref,path,name,consent_expires\n"
        f"T,fairface_0005.jpg,{temporary},2099-01-01\n"
        f"K,fairface_0001.jpg,{keeper},\n"
    )
    r = run_cli(
        "gallery", "enroll-manifest", str(manifest), "--root", str(FAIRFACE), *CONSENT, "--operator", "o", *db,
        env=NOKEY,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert run_cli("gallery", "expire", "--as-of", "2098-12-31", *db, env=NOKEY).returncode == 0
    assert store.count("subjects") == 2
    # PostgreSQL: a plain VACUUM leaves the expired row's bytes in the page the kept subject still uses; --vacuum
    # (VACUUM FULL) writes the tables anew (docs/scaling.md). Before this test, 'gallery expire' had no --vacuum.
    vacuum = ["--vacuum"] if store.pg else []
    r = run_cli("gallery", "expire", "--as-of", "2099-01-01", *vacuum, *db, env=NOKEY)
    assert r.returncode == 0 and "1 subject(s)" in r.stderr
    assert store.count("subjects") == 1 and store.count("templates") == 1
    blob = stored_bytes(store)
    assert temporary.encode() not in blob and keeper.encode() in blob
    r = run_cli("gallery", "init", *db, env=NOKEY)
    assert r.returncode == 2


def test_enroll_manifest_refuses_a_subject_and_enrols_the_rest(store, tmp_path):
    manifest = tmp_path / "m.csv"
    assert run_cli("gallery", "init", *store.args(), env=NOKEY).returncode == 0
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
        *store.args(),
    ]
    r = run_cli(*base, "--consent-by", "Ruth", env=NOKEY)
    assert r.returncode == 2 and "consent basis" in r.stderr  # checked for every subject before any enrolment
    assert store.count("subjects") == 0
    r = run_cli(*base, *CONSENT, env=NOKEY)
    assert r.returncode == 3 and "refused bad" in r.stderr and "too blurred" in r.stderr
    with store.raw() as conn:
        rows = dict(conn.execute("SELECT subject_ref, consent_basis FROM subjects").fetchall())
    assert rows == {"good": "signed consent form", "own": "contract clause 4"}
    assert store.count("templates") == 2  # nothing of 'bad'
    r = run_cli(*base, *CONSENT, env=NOKEY)
    assert r.returncode == 3 and "0 subject(s) enrolled, 2 already present, 1 refused" in r.stderr
