"""Batch embedding with worker processes, and a pool reused across calls (real FairFace faces)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import FAIRFACE

from faceaudit.errors import UsageError
from faceaudit.models.forward import openvino_started
from faceaudit.pipeline.batch import WorkerPool, embed_paths
from faceaudit.pipeline.engine import Engine


def _root(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    names = []
    for p in sorted(FAIRFACE.glob("fairface_*.jpg")):
        shutil.copy(p, root / p.name)
        names.append(p.name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root, names[:4] + ["broken.jpg"] + names[4:]


def test_a_warm_pool_is_reused_and_matches_one_process(tmp_path):
    root, names = _root(tmp_path)
    Engine("sface")  # this process now runs OpenVINO, so workers must not be forked from it
    assert openvino_started()
    single = embed_paths(names, root, workers=1)
    with WorkerPool(2) as pool:
        assert pool.start_method == "forkserver"
        pool.warm([root / names[0]])
        first = embed_paths(names, root, pool=pool)
        again = embed_paths(list(reversed(names)), root, pool=pool)
        assert pool.info() == (single.model_id, 128, single.runtime)
        with pytest.raises(UsageError, match="WorkerPool"):
            embed_paths(names, root, pool=pool, threads=1)
    assert first.status == single.status and first.status[4].startswith("error")
    ok = single.ok
    assert ok.sum() == len(names) - 1
    assert (first.templates[ok] * single.templates[ok]).sum(axis=1).min() >= 0.9999
    assert np.array_equal(again.templates[::-1], first.templates)  # rows follow the order asked for
    assert first.runtime == single.runtime and "embedder=" in first.runtime


def test_runtime_is_recorded_in_the_templates_file(tmp_path):
    from faceaudit.pipeline.batch import load_templates

    root, names = _root(tmp_path)
    res = embed_paths(names[:2], root)
    res.save(tmp_path / "t.npz")
    assert load_templates(tmp_path / "t.npz").runtime == res.runtime == Engine("sface").runtime


def test_rows_are_records_and_take_keeps_every_column(tmp_path):
    from faceaudit.pipeline.batch import _process_chunk
    from faceaudit.pipeline.results import BatchRow

    root, names = _root(tmp_path)
    (root / "blank.png").write_bytes(
        __import__("cv2").imencode(".png", np.full((120, 120, 3), 128, np.uint8))[1].tobytes()
    )
    files = [(n, str(root / n)) for n in (names[0], "broken.jpg", "blank.png")]
    rows = _process_chunk(Engine("sface"), files)
    assert all(isinstance(r, BatchRow) for r in rows)
    assert [r.outcome for r in rows] == ["ok", "error", "no_face"]
    assert rows[0].template.shape == (128,) and rows[0].quality.inter_eye_px > 20
    assert rows[1].reason and rows[1].status == f"error: {rows[1].reason}" and rows[1].template is None
    assert np.isnan(rows[2].quality_values).all()

    res = embed_paths(names[:3] + ["broken.jpg"], root)
    sub = res.take([3, 0])
    assert sub.paths == ["broken.jpg", names[0]] and sub.status[0].startswith("error: ")
    assert np.array_equal(sub.templates[1], res.templates[0]) and not sub.templates[0].any()
    assert sub.n_faces[1] == res.n_faces[0] and sub.sharpness[1] == res.sharpness[0]
    assert (sub.model_id, sub.policy, sub.runtime) == (res.model_id, res.policy, res.runtime) != ("", "", "")
    assert res.take(res.rows_of([names[2]])).paths == [names[2]]
    with pytest.raises(KeyError, match="absent.jpg"):
        res.rows_of(["absent.jpg"])


def test_batched_templates_match_one_image_at_a_time_and_rows_keep_their_order(tmp_path, monkeypatch):
    import faceaudit.pipeline.batch as batch

    root, names = _root(tmp_path)
    (root / "blank.png").write_bytes(
        __import__("cv2").imencode(".png", np.full((120, 120, 3), 128, np.uint8))[1].tobytes()
    )
    faces = [n for n in names if n != "broken.jpg"]
    asked = [faces[0], "blank.png", faces[1], "broken.jpg", "absent.jpg", *faces[2:], faces[0]]
    engine = Engine("sface")
    alone = {n: engine.template(root / n).vector for n in faces}
    # several chunks: each is embedded in one call while the next one is decoded, detected and aligned
    monkeypatch.setattr(batch, "CHUNK", 3)
    res = embed_paths(asked, root)
    assert res.paths == asked
    status = dict(zip(asked, res.status, strict=True))
    assert status["blank.png"] == "no_face"
    assert status["broken.jpg"].startswith("error") and status["absent.jpg"].startswith("error")
    assert "absent.jpg" in status["absent.jpg"] or "not found" in status["absent.jpg"]
    for i, name in enumerate(asked):
        if name in alone:
            assert res.status[i] == "ok"
            assert float(res.templates[i] @ alone[name]) >= 0.999, name
        else:
            assert not res.templates[i].any()
    assert np.array_equal(res.templates[0], res.templates[-1])
    crops = [engine.prepare(engine.load(root / n))[0] for n in faces]
    together = engine.embed_crops(crops)  # one call for all the crops
    one_by_one = np.stack([engine.embed_crops([c])[0] for c in crops])
    assert (together * one_by_one).sum(axis=1).min() >= 0.999
