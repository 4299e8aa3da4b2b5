"""The index file beside an SQLite gallery (``DB.index``): loaded instead of rebuilt, caught up after enrolments,
removed and made unreadable by erasure, refused (and rebuilt) when altered, and safe with concurrent writers.

The file exists only beside an SQLite gallery, so these tests run on SQLite (that an erased subject never comes
back through a Gallery opened with ``index_file=True`` holds on both stores: tests/contracts/
test_erasure_index_file.py). Whether the index was loaded or rebuilt is read from ``Gallery``'s live index
(``origin``) and from the file's bytes, never from timings."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.crypto import TemplateSealer, generate_key
from faceaudit.gallery.index_file import SALT_META, IndexFile, IndexFileWarning

FAIRFACE = Path(__file__).parent / "data" / "fairface"
FACES = {"ada": "0002", "ben": "0005", "cy": "0007"}
CONSENT = Consent("signed form", "desk")


def face(n: str) -> Path:
    return FAIRFACE / f"fairface_{n}.jpg"


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict[str, Path]:
    """A mirrored copy of each enrolled face: the same person, not the same image."""
    out = tmp_path_factory.mktemp("probes")
    paths = {}
    for ref, n in FACES.items():
        p = out / f"{ref}.jpg"
        cv2.imwrite(str(p), cv2.flip(cv2.imread(str(face(n))), 1))
        paths[ref] = p
    return paths


@pytest.fixture()
def db(tmp_path, engine) -> Path:
    """A gallery of three real faces (key in DB.key)."""
    path = tmp_path / "g.db"
    (tmp_path / "g.db.key").write_text(generate_key().hex())
    os.chmod(tmp_path / "g.db.key", 0o600)
    with Gallery(path, engine=engine, operator="o") as g:
        for ref, n in FACES.items():
            g.enroll(ref, [face(n)], name=ref.title(), consent=CONSENT, operator="o")
    return path


def identify(db: Path, engine, probe: Path, *, index_file: bool = True) -> tuple[str, list[str]]:
    """(how the index was made, the candidates' refs) of one identify in a freshly opened gallery."""
    with Gallery(db, engine=engine, index_file=index_file) as g:
        result = g.identify(probe, purpose="p", case="c", operator="o", top_k=3)
        return g._live.origin, [c.subject_ref for c in result.candidates]


def saved_ids(db: Path, engine) -> set[int]:
    """The template ids the index file holds (it must open under the gallery's current salt)."""
    with Gallery(db, engine=engine) as g:
        saved = IndexFile(Path(f"{db}.index"), g._sealer, g.gallery_id).load(
            g._repo, engine.model_id, "exact"
        )
    assert saved is not None
    return set(saved.arrays["ids"].tolist())


def template_ids(db: Path, ref: str) -> set[int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT t.id FROM templates t JOIN subjects s ON s.id = t.subject_id WHERE s.subject_ref = ?",
            (ref,),
        ).fetchall()
    return {r[0] for r in rows}


def test_the_second_identify_loads_the_file_sealed_and_private(db, engine, probes):
    index = Path(f"{db}.index")
    origin, refs = identify(db, engine, probes["ben"])
    assert (origin, refs[0]) == ("rebuilt", "ben")
    first = index.read_bytes()
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{db}.index.lock").stat().st_mode) == 0o600
    origin, refs = identify(db, engine, probes["ben"])
    assert (origin, refs[0]) == ("file", "ben")
    assert index.read_bytes() == first  # loaded, not written again
    with Gallery(db, engine=engine) as g:  # sealed: no template is in the file in the clear
        vectors = [g._sealer.open(b, gallery_id=g.gallery_id, subject_ref=r, model_id=m)
                   for _, r, m, b in g._repo.iter_other_models("-")]  # fmt: skip
    assert vectors and not any(v.tobytes()[:64] in first for v in vectors)


def test_without_index_file_nothing_is_written(db, engine, probes):
    assert identify(db, engine, probes["ada"], index_file=False)[0] == "rebuilt"
    assert not list(db.parent.glob("g.db.index*"))


def test_a_subject_enrolled_after_the_file_was_written_is_found(db, engine, probes, tmp_path):
    identify(db, engine, probes["ada"])
    with Gallery(db, engine=engine) as g:
        g.enroll("dee", [face("0001")], name="Dee", consent=CONSENT, operator="o")
        version = g.version
    probe = tmp_path / "dee.jpg"
    cv2.imwrite(str(probe), cv2.flip(cv2.imread(str(face("0001"))), 1))
    origin, refs = identify(db, engine, probe)
    assert (origin, refs[0]) == ("file+caught up", "dee")
    header = read_header(Path(f"{db}.index"))
    assert header["version"] == version and header["count"] == 4  # rewritten at the new version
    assert identify(db, engine, probe) == ("file", refs)


def read_header(path: Path) -> dict:
    raw = path.read_bytes()
    start = raw.index(b"\n") + 1 + 4
    return json.loads(raw[start : start + int.from_bytes(raw[start - 4 : start], "little")])


def test_a_subject_erased_after_the_file_was_written_never_comes_back(db, engine, probes, tmp_path):
    index = Path(f"{db}.index")
    assert identify(db, engine, probes["ben"])[1][0] == "ben"
    erased = template_ids(db, "ben")
    assert erased <= saved_ids(db, engine)
    old = tmp_path / "old.index"
    shutil.copy(index, old)
    with Gallery(db, engine=engine) as g:
        g.erase("ben", reason="request", operator="dpo")
        assert not index.exists()  # removed before erase returned
    origin, refs = identify(db, engine, probes["ben"])
    assert origin == "rebuilt" and "ben" not in refs
    assert not erased & saved_ids(db, engine)  # the rewritten file holds no template of the erased subject
    # the file as it was before the erasure, put back: it no longer opens (its salt is gone), quietly rebuilt
    shutil.copy(old, index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        origin, refs = identify(db, engine, probes["ben"])
    assert origin == "rebuilt" and "ben" not in refs


def test_a_file_left_by_an_erasure_that_died_before_removing_it_goes_at_the_next_open(
    db, engine, probes, tmp_path
):
    """The state a process killed between the erasure's commit and the file's removal leaves: the file of before
    the erasure, and the scrub still pending. The next open of the gallery removes the file."""
    import sqlite3

    index = Path(f"{db}.index")
    identify(db, engine, probes["ada"])
    shutil.copy(index, tmp_path / "before.index")
    with Gallery(db, engine=engine) as g:
        g.erase("ada", reason="request", operator="dpo")
    shutil.copy(tmp_path / "before.index", index)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('scrub_pending', '2026-12-06T00:00:00Z')")
    with Gallery(db, engine=engine):
        assert not index.exists()


def test_cli_identify_uses_the_file_and_never_returns_an_erased_subject(db, engine, probes):
    env = {"FACEAUDIT_KEY": ""}
    ask = ["--db", str(db), "--purpose", "p", "--case", "c", "--operator", "o", "--json", "--top-k", "3"]
    index = Path(f"{db}.index")

    def cli_identify(probe: Path) -> list[str]:
        r = run_cli("identify", str(probe), *ask, env=env)
        assert r.returncode == 0, r.stderr
        return [c["subject_ref"] for c in json.loads(r.stdout)["candidates"]]

    assert cli_identify(probes["cy"])[0] == "cy"
    written = index.read_bytes()
    assert cli_identify(probes["cy"])[0] == "cy"
    assert index.read_bytes() == written  # the second call loaded it
    r = run_cli("identify", str(probes["cy"]), *ask, "--no-index-file", env=env)
    assert r.returncode == 0 and index.read_bytes() == written
    r = run_cli(
        "gallery", "erase", "cy", "--db", str(db), "--reason", "request", "--operator", "dpo", env=env
    )
    assert r.returncode == 0, r.stderr
    assert not index.exists()
    assert "cy" not in cli_identify(probes["cy"])
    assert not template_ids(db, "cy") and len(saved_ids(db, engine)) == 2


def _other_key_file(db: Path, engine) -> None:
    """A file that claims this gallery, its model and its salt, sealed under another gallery key."""
    with Gallery(db, engine=engine, index_file=True) as g:
        g._ensure_index()
        state = g._live.index.state()
        other = IndexFile(Path(f"{db}.index"), TemplateSealer(generate_key()), g.gallery_id)
        assert other.save(g._repo, engine.model_id, "exact", g.version, state)


def _other_gallery_file(db: Path, engine) -> None:
    """The index file of another gallery (its own key and id), copied over this one's."""
    other = db.parent / "other" / "o.db"
    other.parent.mkdir()
    with Gallery(other, key=generate_key(), engine=engine, index_file=True) as g:
        g.enroll_templates("x", np.eye(128, dtype=np.float32)[:1], name="X", consent=CONSENT, operator="o",
                           model_id=engine.model_id)  # fmt: skip
        g._ensure_index()
    shutil.copy(f"{other}.index", f"{db}.index")


def _flip_a_payload_byte(db: Path, engine) -> None:
    with open(f"{db}.index", "r+b") as fh:
        fh.seek(-100, os.SEEK_END)
        b = fh.read(1)
        fh.seek(-100, os.SEEK_END)
        fh.write(bytes([b[0] ^ 0x01]))


def _truncate(db: Path, engine) -> None:
    path = Path(f"{db}.index")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_the_header(db: Path, engine) -> None:
    path = Path(f"{db}.index")
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"count": 3', b'"count": 2', 1))  # the header is bound to every chunk


@pytest.mark.parametrize(
    "damage, says",
    [
        (_flip_a_payload_byte, "does not open"),
        (_truncate, "truncated"),
        (_edit_the_header, "does not open"),
        (_other_key_file, "does not open"),
        (_other_gallery_file, "belongs to another gallery"),
    ],
)
def test_a_damaged_or_foreign_file_is_refused_and_rebuilt(db, engine, probes, damage, says):
    assert identify(db, engine, probes["ada"])[0] == "rebuilt"
    damage(db, engine)
    with pytest.warns(IndexFileWarning, match=says):
        origin, refs = identify(db, engine, probes["ada"])
    assert (origin, refs[0], len(refs)) == ("rebuilt", "ada", 3)  # nothing lost: every subject is searched
    assert identify(db, engine, probes["ada"])[0] == "file"  # and the file was written anew
    with Gallery(db, engine=engine) as g:
        assert len(g.subjects()) == 3 and g.ledger.verify()


RACER = """
import sys, warnings
import numpy as np
from faceaudit.gallery import Gallery
warnings.simplefilter("error")
class E:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8
for _ in range(int(sys.argv[3])):
    with Gallery(sys.argv[1], key=bytes.fromhex(sys.argv[2]), engine=E(), index_file=True) as g:
        g.identify_template(np.eye(8, dtype=np.float32)[0], probe_sha256="x", purpose="p", case="c",
                            operator="o", top_k=50)
"""


def test_writers_race_each_other_and_an_erasure_without_leaving_an_erased_template(tmp_path):
    """Three processes load, catch up and write the file in a loop while this one enrols and erases: no reader
    ever meets a torn file (a warning fails the racer), and once the erasure has returned, any file on disk holds
    no template of the erased subject."""

    class E:
        model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8

    db, key = tmp_path / "g.db", generate_key()
    rng = np.random.default_rng(5)
    v = rng.standard_normal((400, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Gallery(db, key=key, engine=E()) as g:
        g.enroll_many([(f"s{i}", f"S {i}", v[i : i + 1]) for i in range(400)], consent=CONSENT, operator="o",
                      model_id="fake-model")  # fmt: skip
        g.enroll_templates("gone-0", np.eye(8, dtype=np.float32)[:1], name="Gone", consent=CONSENT,
                           operator="o", model_id="fake-model")  # fmt: skip
        erased = template_ids(db, "gone-0")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(RACER), str(db), key.hex(), "25"],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for _ in range(3)
        ]
        path = Path(f"{db}.index")
        while not path.exists() and all(r.poll() is None for r in racers):
            time.sleep(0.05)  # until the racers are writing (no timing is asserted)
        for i in range(5):  # enrolments meanwhile: the racers catch up and rewrite
            g.enroll_templates(f"new-{i}", v[i : i + 1], name="N", consent=CONSENT, operator="o",
                               model_id="fake-model")  # fmt: skip
        g.erase("gone-0", reason="request", operator="dpo")
        assert all(r.poll() is None for r in racers), "the racers ended before the erasure: no race"
        if path.exists():
            saved = IndexFile(path, g._sealer, g.gallery_id).load(g._repo, "fake-model", "exact")
            assert saved is None or not erased & set(saved.arrays["ids"].tolist())
        outs = [(r.wait(120), r.stderr.read()) for r in racers]
        assert all(rc == 0 for rc, _ in outs), outs
        assert SALT_META in g._repo.read_meta()
        saved = IndexFile(path, g._sealer, g.gallery_id).load(g._repo, "fake-model", "exact")
        assert saved is not None and not erased & set(saved.arrays["ids"].tolist())
        assert not list(tmp_path.glob(".g.db.index.*.tmp"))
