"""Recognition engine on real faces (FairFace fixtures, CC BY 4.0)."""

from __future__ import annotations

import itertools
import shutil

import cv2
import numpy as np
import pytest
from conftest import FAIRFACE

from faceaudit.errors import ModelIntegrityError, NoFaceError, UsageError
from faceaudit.imaging import load_image
from faceaudit.models import files as model_files
from faceaudit.pipeline.align import ARCFACE_112, similarity_transform
from faceaudit.pipeline.select import select_face
from faceaudit.types import Face

FACE = FAIRFACE / "fairface_0006.jpg"


def _augmentations(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]

    def rotate(deg: float) -> np.ndarray:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)

    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok
    return {
        "flip": cv2.flip(image, 1),
        "rotate+10": rotate(10),
        "rotate-10": rotate(-10),
        "jpeg-q30": cv2.imdecode(jpeg, cv2.IMREAD_COLOR),
        "rescale-0.5": cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
    }


@pytest.mark.parametrize("model", ["sface", "dlib"])
def test_augmented_copies_of_one_face_match(model):
    from faceaudit.pipeline.engine import Engine

    eng = Engine(model)
    image = load_image(FACE)
    for name, variant in _augmentations(image).items():
        if model == "dlib" and name == "rotate+10":
            continue  # dlib's frontal HOG detector finds no face in this rotated copy (a known HOG limit)
        result = eng.verify(image, variant)
        assert result.match, (model, name, result)
        assert result.model == eng.model_id


@pytest.mark.parametrize("model", ["sface", "dlib"])
def test_different_people_do_not_match(model, face_paths):
    from faceaudit.pipeline.engine import Engine

    eng = Engine(model)
    templates = {}
    for p in face_paths:
        try:
            templates[p.name] = eng.template(p).vector
        except NoFaceError:
            assert model == "dlib", p  # HOG misses some FairFace crops; YuNet finds all eight
    assert len(templates) >= 6
    assert all(v.shape == (128,) and v.dtype == np.float32 for v in templates.values())
    for a, b in itertools.combinations(templates, 2):
        sim = float(templates[a] @ templates[b])
        assert sim < eng.threshold, (model, a, b, sim)


def test_templates_are_l2_normalised_and_tagged(engine):
    ft = engine.template(FACE)
    assert ft.vector.dtype == np.float32
    assert abs(float(np.linalg.norm(ft.vector)) - 1.0) < 1e-5
    assert ft.template.model_id == "sface-2021dec-int8bq"
    assert ft.policy == "central" and ft.n_faces >= 1


def test_template_is_the_same_whatever_the_batch_size(engine, face_paths):
    crops = [engine.prepare(load_image(p), str(p))[0] for p in face_paths]
    batched = engine.embed_crops(crops)
    single = np.concatenate([engine.embed_crops([c]) for c in crops])
    cos = (batched * single).sum(axis=1)
    assert cos.min() >= 0.9999, cos


@pytest.mark.parametrize("runtime", ["opencv", "onnxruntime"])
def test_sface_runtimes_agree_with_opencv_classic_engine(runtime, face_paths):
    """The load-time graph fix leaves SFace's numerics unchanged in both runtimes, batched or not.

    Reference: the untouched model file in cv2.dnn's classic engine, one crop at a time.
    """
    from faceaudit.models.onnx_embedder import sface_embedder
    from faceaudit.pipeline.engine import Engine

    crops = [Engine("sface").prepare(load_image(p), str(p))[0] for p in face_paths]
    net = cv2.dnn.readNetFromONNX(str(model_files.verified_path(model_files.SFACE)), cv2.dnn.ENGINE_CLASSIC)
    refs = []
    for crop in crops:
        net.setInput(cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False))
        ref = net.forward().reshape(-1)
        refs.append(ref / np.linalg.norm(ref))
    emb = sface_embedder(runtime=runtime)
    assert emb.runtime == runtime
    batched = emb.embed(crops)
    single = np.concatenate([emb.embed([c]) for c in crops])
    assert (batched * np.array(refs)).sum(axis=1).min() >= 0.9999
    assert (single * np.array(refs)).sum(axis=1).min() >= 0.9999


def test_dlib_backend_produces_128d_templates():
    from faceaudit.pipeline.engine import Engine

    ft = Engine("dlib").template(FACE)
    assert ft.vector.shape == (128,) and ft.template.model_id == "dlib-resnet-v1"


def test_no_face_raises_no_face_error(engine, tmp_path):
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    path = tmp_path / "gradient.png"
    cv2.imwrite(str(path), gradient)
    with pytest.raises(NoFaceError, match="no face") as err:
        engine.template(path)
    assert str(path) in str(err.value)
    assert engine.detect(path) == []


def test_model_file_with_wrong_sha256_is_refused(tmp_path, monkeypatch):
    src = model_files.YUNET.path()
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(model_files.ModelFile, "path", lambda self: bad)
    monkeypatch.setattr(model_files, "_VERIFIED", {})
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        model_files.verified_path(model_files.YUNET)


def test_alignment_maps_landmarks_onto_the_template():
    rng = np.random.default_rng(0)
    angle = np.deg2rad(17)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = (ARCFACE_112 @ rot.T) * 2.3 + np.array([40.0, 25.0]) + rng.normal(0, 1e-9, (5, 2))
    m = similarity_transform(src, ARCFACE_112)
    mapped = src @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - ARCFACE_112).max() < 1e-6


def _face(x, y, w, h, score=0.9):
    return Face((x, y, w, h), np.zeros((5, 2), np.float32), score)


def test_selection_policies():
    faces = [_face(0, 0, 200, 200, 0.95), _face(270, 170, 100, 100, 0.9), _face(500, 400, 120, 120, 0.99)]
    assert select_face(faces, 640, 480, "largest") == 0
    assert select_face(faces, 640, 480, "central") == 1
    assert select_face(faces, 640, 480, "best") == 1
    assert select_face([], 640, 480, "central") is None
    with pytest.raises(UsageError, match="policy"):
        select_face(faces, 640, 480, "random")


def test_quality_measures(engine):
    faces = engine.detect(FACE)
    assert faces
    q = faces[0].quality
    assert 20 < q.inter_eye_px < 200
    assert q.sharpness > 0
    assert 0 < q.detector_score <= 1
    assert -1 <= q.yaw <= 1
    blurred = cv2.GaussianBlur(load_image(FACE), (0, 0), 4)
    assert engine.detect(blurred)[0].quality.sharpness < q.sharpness
