"""The CLI contract of detect, verify, embed and models (real subprocesses)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
from conftest import FAIRFACE, run_cli


def test_detect_json_contract():
    res = run_cli("detect", str(FAIRFACE / "fairface_0001.jpg"), "--json")
    assert res.returncode == 0, res.stderr
    faces = json.loads(res.stdout)
    assert isinstance(faces, list) and len(faces) >= 1
    for f in faces:
        assert set(f) == {"box", "landmarks", "score", "quality", "chosen"}
        assert len(f["box"]) == 4 and all(isinstance(v, float) for v in f["box"])
        assert len(f["landmarks"]) == 5 and all(len(pt) == 2 for pt in f["landmarks"])
        assert 0.0 < f["score"] <= 1.0
        assert set(f["quality"]) == {"inter_eye_px", "sharpness", "detector_score", "yaw"}


def test_verify_json_contract():
    a, b = str(FAIRFACE / "fairface_0001.jpg"), str(FAIRFACE / "fairface_0002.jpg")
    same = json.loads(run_cli("verify", a, a, "--json").stdout)
    assert list(same)[:4] == ["similarity", "threshold", "match", "model"]  # documented keys, unchanged
    assert set(same) == {"similarity", "threshold", "match", "model", "images"}
    for image in same["images"]:
        assert image["path"] == a and image["policy"] == "central" and image["n_faces"] >= 1
        assert len(image["box"]) == 4
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
    assert all(
        f["verified"] and f["licence"] for r in rows.values() if not r.get("optional") for f in r["files"]
    )
    assert "research" in rows["arcface-mbf"]["licence"] and rows["arcface-mbf"]["dim"] == 512
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


def test_detect_takes_folders_and_stdin_and_writes_json_lines_or_csv(tmp_path):
    folder = tmp_path / "imgs" / "nested"
    folder.mkdir(parents=True)
    for n in ("fairface_0001.jpg", "fairface_0003.jpg"):
        (folder / n).write_bytes((FAIRFACE / n).read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "readme.txt").write_text("skipped: not an image file")
    res = run_cli("detect", str(tmp_path / "imgs"), "--json")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [Path(x["path"]).name for x in lines] == ["broken.jpg", "fairface_0001.jpg", "fairface_0003.jpg"]
    assert lines[0]["kind"] == "InputError" and lines[0]["exit_code"] == 3
    group = lines[2]
    assert group["n_faces"] == len(group["faces"]) >= 2 and group["policy"] == "central"
    assert sum(f["chosen"] for f in group["faces"]) == 1
    largest = json.loads(
        run_cli("detect", str(folder / "fairface_0003.jpg"), "--json", "--policy", "largest").stdout
    )
    areas = [f["box"][2] * f["box"][3] for f in largest]
    assert largest[areas.index(max(areas))]["chosen"]  # --policy marks the face it would choose

    res = run_cli(
        "detect", "-", "--csv", stdin=f"{folder / 'fairface_0001.jpg'}\n\n{folder / 'broken.jpg'}\n"
    )
    rows = list(csv.DictReader(res.stdout.splitlines()))
    assert [r["status"] for r in rows][-1].startswith("error: ") and rows[0]["status"] == "ok"
    assert rows[0]["chosen"] == "1" and float(rows[0]["w"]) > 20
    assert run_cli("detect", str(tmp_path / "absent")).returncode == 3


def test_embed_takes_absolute_paths_and_folders_without_root(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path\n{FAIRFACE / 'fairface_0001.jpg'}\n{FAIRFACE / 'fairface_0002.jpg'}\n")
    res = run_cli("embed", str(manifest), "--out", str(tmp_path / "a.npz"))
    assert res.returncode == 0, res.stderr
    a = np.load(tmp_path / "a.npz")
    assert list(a["status"]) == ["ok", "ok"]
    res = run_cli("embed", str(FAIRFACE), "--out", str(tmp_path / "b.npz"))
    assert res.returncode == 0, res.stderr
    b = np.load(tmp_path / "b.npz")
    assert len(b["path"]) == 8 and (b["status"] == "ok").all()
    assert float(a["templates"][0] @ b["templates"][0]) > 0.9999
    assert run_cli("embed", str(FAIRFACE), "--root", "x", "--out", str(tmp_path / "c.npz")).returncode == 2


def test_verify_json_errors_are_json_on_stdout(tmp_path):
    res = run_cli("verify", str(FAIRFACE / "fairface_0001.jpg"), str(tmp_path / "absent.jpg"), "--json")
    assert res.returncode == 3
    err = json.loads(res.stdout)
    assert err["kind"] == "InputError" and err["path"].endswith("absent.jpg") and err["exit_code"] == 3
    assert "absent.jpg" in res.stderr


def test_out_of_range_thresholds_and_unknown_options_are_refused():
    face = str(FAIRFACE / "fairface_0001.jpg")
    for bad in ("1.5", "-1.01", "nan", "inf"):
        res = run_cli("verify", face, face, "--threshold", bad)
        assert res.returncode == 2 and "--threshold" in res.stderr, bad
    res = run_cli("verify", face, face, "--accept-model-license", "research")
    assert res.returncode == 2 and "needs no licence" in res.stderr
