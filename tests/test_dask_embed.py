"""Embedding on a real Dask LocalCluster: the same rows as in process, in manifest order, bad files reported."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'faceaudit[dask]')")

from conftest import run_cli  # noqa: E402

from faceaudit.pipeline.batch import embed_paths  # noqa: E402
from faceaudit.pipeline.dask_embed import embed_paths_dask  # noqa: E402


def test_dask_embedding_matches_in_process(dask_local, face_paths, tmp_path):
    for p in face_paths:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    names = [p.name for p in face_paths]
    paths = [*names[:4], "broken.jpg", "missing.jpg", *names[4:]]
    want = embed_paths(paths, tmp_path)
    done = []
    got = embed_paths_dask(paths, tmp_path, client=dask_local, chunk=3, progress=done.append)
    assert got.paths == paths and got.status[:4] == want.status[:4] and got.status[6:] == want.status[6:]
    assert got.status[4].startswith("error") and got.status[5].startswith("error")
    assert got.status[5] == want.status[5] and "not found" in got.status[5]
    assert got.model_id == want.model_id and sum(done) == len(paths) - 1  # the missing file never left
    ok = np.array([s == "ok" for s in want.status])
    assert ok.sum() >= 6
    # the same model on other threads: OpenVINO's f32 kernels may sum in another order (up to 2.5e-4 per entry
    # seen on an AVX2 CPU), so the templates agree as templates do, by cosine
    cos = np.sum(got.templates[ok] * want.templates[ok], axis=1)
    assert cos.min() > 0.9999, cos
    assert np.array_equal(got.n_faces, want.n_faces)
    # each worker loaded the engine once, whatever the number of chunks
    loaded = dask_local.run(
        lambda: len(__import__("faceaudit.pipeline.dask_embed").pipeline.dask_embed._ENGINES)
    )
    assert all(v <= 1 for v in loaded.values()) and sum(loaded.values()) >= 1


def test_embed_cli_on_a_scheduler_address(dask_local, face_paths, tmp_path):
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([["path"], *[[p.name] for p in face_paths[:3]], ["missing.jpg"]])
    out = tmp_path / "t.npz"
    address = dask_local.scheduler.address
    res = run_cli(
        "embed", str(manifest), "--root", str(face_paths[0].parent), "--out", str(out), "--dask", address
    )
    assert res.returncode == 0, res.stderr
    z = np.load(out)
    assert list(z["status"][:3]) == ["ok"] * 3 and "not found" in z["status"][3]
    assert "(dask)" in str(z["runtime"]) and np.allclose(
        np.linalg.norm(z["templates"][:3], axis=1), 1, atol=1e-4
    )
    bad = run_cli("embed", str(manifest), "--root", str(tmp_path), "--out", str(out), "--dask", "local:0")
    assert bad.returncode == 2 and "local:N" in bad.stderr
