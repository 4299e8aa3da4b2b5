"""The CLI contract of detect, verify, embed and models (real subprocesses)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
from conftest import FAIRFACE, run_cli


def test_detect_json_contract():
    res = run_cli("detect", str(FAIRFACE / "fairface_0001.jpg"), "--json")
    assert res.returncode == 0, res.stderr
    faces = json.loads(res.stdout)
    assert isinstance(faces, list) and len(faces) >= 1
    for f in faces:
        assert set(f) == {"box", "landmarks", "score", "quality"}
        assert len(f["box"]) == 4 and all(isinstance(v, float) for v in f["box"])
        assert len(f["landmarks"]) == 5 and all(len(pt) == 2 for pt in f["landmarks"])
        assert 0.0 < f["score"] <= 1.0
        assert set(f["quality"]) == {"inter_eye_px", "sharpness", "detector_score", "yaw"}


def test_verify_json_contract():
    a, b = str(FAIRFACE / "fairface_0001.jpg"), str(FAIRFACE / "fairface_0002.jpg")
    same = json.loads(run_cli("verify", a, a, "--json").stdout)
    assert set(same) == {"similarity", "threshold", "match", "model"}
    assert same["match"] is True and same["similarity"] > 0.99 and same["model"] == "sface-2021dec-int8bq"
    res = run_cli("verify", a, b, "--json", "--threshold", "0.9")
    diff = json.loads(res.stdout)
    assert diff["match"] is False and diff["threshold"] == 0.9 and diff["similarity"] < 0.9


def test_embed_writes_npz_and_survives_bad_rows(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    names = ["fairface_0001.jpg", "fairface_0002.jpg", "fairface_0003.jpg"]
    for n in names:
        (root / n).write_bytes((FAIRFACE / n).read_bytes())
    (root / "broken.jpg").write_bytes((FAIRFACE / names[0]).read_bytes()[:500])
    cv2.imwrite(str(root / "wall.png"), np.full((200, 200, 3), 128, np.uint8))
    rows = [*names[:2], "broken.jpg", "missing.jpg", "wall.png", names[2]]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "sex"])
        w.writerows([[r, "x"] for r in rows])
    out = tmp_path / "templates.npz"
    res = run_cli("embed", str(manifest), "--root", str(root), "--out", str(out), "--workers", "2")
    assert res.returncode == 0, res.stderr
    z = np.load(out)
    assert z["templates"].shape == (6, 128) and z["templates"].dtype == np.float32
    assert list(z["path"]) == rows
    status = list(z["status"])
    assert status[0] == status[1] == status[5] == "ok"
    assert status[2].startswith("error: ") and "truncated" in status[2]
    assert status[3].startswith("error: ") and "not found" in status[3]
    assert status[4] == "no_face"
    assert not z["templates"][[2, 3, 4]].any()
    assert np.allclose(np.linalg.norm(z["templates"][[0, 1, 5]], axis=1), 1, atol=1e-5)
    assert z["n_faces"][0] >= 1 and z["n_faces"][4] == 0
    assert str(z["model_id"]) == "sface-2021dec-int8bq" and str(z["policy"]) == "central"
    single = run_cli("embed", str(manifest), "--root", str(root), "--out", str(tmp_path / "one.npz"))
    assert single.returncode == 0
    cos = (np.load(tmp_path / "one.npz")["templates"] * z["templates"]).sum(1)[[0, 1, 5]]
    assert cos.min() >= 0.9999  # one worker or two: the same templates


def test_embed_manifest_errors(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,sex\na.jpg,x\n")
    res = run_cli("embed", str(manifest), "--root", str(tmp_path), "--out", str(tmp_path / "o.npz"))
    assert res.returncode == 3 and "m.csv" in res.stderr and "'path'" in res.stderr
    res = run_cli(
        "embed", str(tmp_path / "nope.csv"), "--root", str(tmp_path), "--out", str(tmp_path / "o.npz")
    )
    assert res.returncode == 3 and "nope.csv" in res.stderr


def test_usage_errors_exit_2():
    assert run_cli("verify", "only-one.jpg").returncode == 2
    assert run_cli("detect", "x.jpg", "--policy", "random").returncode == 2
    res = run_cli("verify", "a.jpg", "b.jpg", "--model", "nosuchmodel")
    assert res.returncode == 2 and "unknown model" in res.stderr


def test_models_lists_files_hashes_licences_and_thresholds():
    res = run_cli("models", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert {"sface", "dlib", "onnx:PATH"} <= set(rows)
    sface_files = {f["sha256"] for f in rows["sface"]["files"]}
    assert "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10" in sface_files
    assert "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee" in sface_files
    assert all(f["verified"] and f["licence"] for r in rows.values() for f in r["files"])
    assert rows["sface"]["dim"] == rows["dlib"]["dim"] == 128
    assert isinstance(rows["sface"]["default_threshold"], float)
    from faceaudit.pipeline.engine import Engine

    assert rows["sface"]["runtime_here"] == Engine("sface").runtime  # what a template will record


def test_embed_draws_a_progress_bar_on_a_terminal(tmp_path):
    """stderr attached to a pseudo-terminal gets a progress bar; a pipe gets only the summary line."""
    import os
    import pty
    import subprocess
    import sys

    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nfairface_0001.jpg\nfairface_0002.jpg\n")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceaudit",
            "embed",
            str(manifest),
            "--root",
            str(FAIRFACE),
            "--out",
            str(tmp_path / "o.npz"),
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "embedding" in text and "2/2" in text
    piped = run_cli("embed", str(manifest), "--root", str(FAIRFACE), "--out", str(tmp_path / "p.npz"))
    assert "2/2" not in piped.stderr and "2 templates" in piped.stderr
