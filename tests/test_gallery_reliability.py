"""Reliability with real stores and real processes: SIGKILL mid-enrolment, two enrolling processes at once.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (the ``store`` fixture)."""

from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from conftest import run_cli
from stores import RawDb

from faceaudit.gallery import Gallery

FAIRFACE = Path(__file__).parent / "data" / "fairface"
GOOD = ["0001", "0002", "0003", "0005", "0007"]
VARIANTS = ("orig", "flip", "rot", "scale")
NOKEY = {"FACEAUDIT_KEY": ""}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Augmented copies of the good FairFace faces: ``<face>_<variant>.jpg``."""
    root = tmp_path_factory.mktemp("imgs")
    for n in GOOD:
        img = cv2.imread(str(FAIRFACE / f"fairface_{n}.jpg"))
        h, w = img.shape[:2]
        for name, im in {
            "orig": img,
            "flip": cv2.flip(img, 1),
            "rot": cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), -4, 1.0), (w, h)),
            "scale": cv2.resize(img, None, fx=0.9, fy=0.9),
        }.items():
            cv2.imwrite(str(root / f"{n}_{name}.jpg"), im)
    return root


def write_manifest(path: Path, refs: list[str]) -> dict[str, int]:
    """Fake subjects of 2–4 images each; returns the expected template count per subject."""
    expected = {}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject_ref", "path", "name"])
        for ref in refs:
            i = int(ref.split("-")[1])
            n_images = 2 + i % 3
            for v in VARIANTS[:n_images]:
                w.writerow([ref, f"{GOOD[i % len(GOOD)]}_{v}.jpg", f"Name of {ref}"])
            expected[ref] = n_images
    return expected


def manifest_cmd(db: str, manifest: Path, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "faceaudit",
        "gallery",
        "enroll-manifest",
        str(manifest),
        "--root",
        str(root),
        "--consent-basis",
        "signed form",
        "--consent-by",
        "Registrar",
        "--operator",
        "bulk",
        "--db",
        db,
    ]


def check_consistent(db: str, expected: dict[str, int], engine) -> set[str]:
    """Every subject fully enrolled or absent; the ledger intact with one enrol entry per subject."""
    with Gallery(db, engine=engine, create=False) as g:
        subjects = {s["subject_ref"]: s["n_templates"] for s in g.subjects()}
        enrol_entries = [e for e in g.ledger.store.entries() if e.action == "enroll"]
        assert g.rebuild_index() == sum(subjects.values())  # every sealed template opens
    for ref, n in subjects.items():
        assert expected[ref] == n, f"{ref} has {n} of {expected[ref]} templates"
    assert len(enrol_entries) == len(subjects)
    r = run_cli("ledger", "verify", "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    return set(subjects)


def count_subjects(db: str) -> int:
    if db.startswith("postgresql://"):
        with RawDb(db) as conn:
            return int(conn.scalar("SELECT COUNT(*) FROM subjects"))
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM subjects").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_killed_mid_enrolment_recovers(store, tmp_path, images, engine, monkeypatch):
    db = store.db
    assert run_cli("gallery", "init", *store.args(), env=NOKEY).returncode == 0
    monkeypatch.setenv("FACEAUDIT_KEY", store.key_file.read_text().strip())
    refs = [f"subj-{i:02d}" for i in range(24)]
    manifest = tmp_path / "m.csv"
    expected = write_manifest(manifest, refs)
    rng = random.Random(20261126)
    kills = 0
    for _ in range(4):
        start = count_subjects(db)
        if start == len(refs):
            break
        proc = subprocess.Popen(
            manifest_cmd(db, manifest, images), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and count_subjects(db) <= start and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this run has committed something new
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        present = check_consistent(db, expected, engine)
        assert present <= set(refs)
    assert kills >= 1
    r = subprocess.run(manifest_cmd(db, manifest, images), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "already present" in r.stderr
    assert check_consistent(db, expected, engine) == set(refs)


def test_two_processes_enrolling_at_once_lose_nothing(store, tmp_path, images, engine, monkeypatch):
    db = store.db
    assert run_cli("gallery", "init", *store.args(), env=NOKEY).returncode == 0
    monkeypatch.setenv("FACEAUDIT_KEY", store.key_file.read_text().strip())
    shared = [f"both-{i:02d}" for i in range(4)]
    a_refs = [f"a-{i:02d}" for i in range(8)] + shared
    b_refs = shared + [f"b-{i:02d}" for i in range(8)]
    expected = write_manifest(tmp_path / "a.csv", a_refs)
    expected.update(write_manifest(tmp_path / "b.csv", b_refs))
    procs = [
        subprocess.Popen(
            manifest_cmd(db, tmp_path / m, images), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for m in ("a.csv", "b.csv")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert check_consistent(db, expected, engine) == set(a_refs) | set(b_refs)
