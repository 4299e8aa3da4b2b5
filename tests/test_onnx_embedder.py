"""Loading a user's own ONNX embedder, with a tiny model that the test builds itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FAIRFACE, run_cli

from faceaudit.errors import InputError, ModelFormatError, UsageError

onnx = pytest.importorskip("onnx")


def _tiny_embedder(path, size=112, dim=16, batch="N", metadata=None):
    """A real ONNX graph: 4×4 average pooling, flatten, then a fixed random projection to ``dim``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(42)
    pooled = 3 * (size // 4) * (size // 4)
    weight = numpy_helper.from_array(rng.normal(size=(pooled, dim)).astype(np.float32), "W")
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_own_onnx_embedder_reads_size_and_dim_from_the_model(tmp_path):
    from faceaudit.pipeline.engine import Engine

    path = _tiny_embedder(tmp_path / "tiny.onnx", size=96, dim=16)
    eng = Engine(f"onnx:{path}", mean=127.5, std=127.5, channels="rgb")
    assert eng.dim == 16
    assert eng.backend.embedder.input_size == (96, 96)
    assert eng.model_id.startswith("onnx:tiny.onnx:")
    ft = eng.template(FAIRFACE / "fairface_0001.jpg")
    assert ft.vector.shape == (16,)
    assert abs(float(np.linalg.norm(ft.vector)) - 1) < 1e-5


def test_normalisation_options_change_the_input(tmp_path):
    from faceaudit.models.onnx_embedder import OnnxEmbedder

    path = _tiny_embedder(tmp_path / "tiny.onnx")
    crop = np.random.default_rng(1).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    a = OnnxEmbedder(path, mean=127.5, std=127.5).embed([crop])
    b = OnnxEmbedder(path, mean=0.0, std=1.0).embed([crop])
    c = OnnxEmbedder(path, mean=127.5, std=127.5, channels="bgr").embed([crop])
    assert float(a[0] @ b[0]) < 0.9999
    assert float(a[0] @ c[0]) < 0.9999


def test_normalisation_is_read_from_model_metadata(tmp_path):
    from faceaudit.models.onnx_embedder import OnnxEmbedder

    crop = np.random.default_rng(2).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    tagged = OnnxEmbedder(
        _tiny_embedder(tmp_path / "t.onnx", metadata={"mean": "0", "std": "1", "channels": "bgr"})
    )
    plain = OnnxEmbedder(_tiny_embedder(tmp_path / "p.onnx"), mean=0.0, std=1.0, channels="bgr")
    assert (tagged._mean, tagged._std, tagged._channels) == (0.0, 1.0, "bgr")
    assert float(tagged.embed([crop])[0] @ plain.embed([crop])[0]) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ModelFormatError, match="channels"):
        OnnxEmbedder(_tiny_embedder(tmp_path / "bad.onnx", metadata={"channels": "cmyk"}))


def test_cli_verify_with_own_onnx_model(tmp_path):
    path = _tiny_embedder(tmp_path / "arcface-like.onnx")
    face = str(FAIRFACE / "fairface_0002.jpg")
    res = run_cli("verify", face, face, "--model", f"onnx:{path}", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"].startswith("onnx:arcface-like.onnx:")
    assert out["similarity"] == pytest.approx(1.0, abs=1e-5) and out["match"] is True


def test_bad_model_files_give_clear_errors(tmp_path):
    from faceaudit.models.onnx_embedder import OnnxEmbedder

    with pytest.raises(InputError, match="not found"):
        OnnxEmbedder(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="junk.onnx"):
        OnnxEmbedder(junk)
    res = run_cli("verify", "a.jpg", "b.jpg", "--model", f"onnx:{junk}")
    assert res.returncode == 3 and "junk.onnx" in res.stderr


def test_own_model_in_the_opencv_runtime_matches_onnxruntime(tmp_path):
    from faceaudit.models.onnx_embedder import OnnxEmbedder

    path = _tiny_embedder(tmp_path / "tiny.onnx")
    crops = [np.random.default_rng(i).integers(0, 255, (112, 112, 3), dtype=np.uint8) for i in range(3)]
    ort_t = OnnxEmbedder(path).embed(crops)
    cv_t = OnnxEmbedder(path, runtime="opencv", input_size=(112, 112)).embed(crops)
    assert (ort_t * cv_t).sum(axis=1).min() >= 0.9999
    with pytest.raises(UsageError, match="input_size"):
        OnnxEmbedder(path, runtime="opencv")
    face = str(FAIRFACE / "fairface_0003.jpg")
    res = run_cli("verify", face, face, "--model", f"onnx:{path}", "--onnx-runtime", "opencv",
                  "--onnx-size", "112", "112", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["match"] is True


def test_own_model_in_openvino_reads_shape_and_metadata_and_matches_onnxruntime(tmp_path):
    from faceaudit.models.onnx_embedder import OnnxEmbedder

    path = _tiny_embedder(tmp_path / "tiny.onnx", size=96, metadata={"mean": "0", "std": "255"})
    crops = [np.random.default_rng(i).integers(0, 255, (96, 96, 3), dtype=np.uint8) for i in range(3)]
    ort = OnnxEmbedder(path)
    ov = OnnxEmbedder(path, runtime="openvino", precision="f32")
    assert ov.runtime == "openvino-f32" and ov.input_size == (96, 96) and ov.dim == ort.dim == 16
    assert (ov._mean, ov._std) == (0.0, 255.0)
    assert (ort.embed(crops) * ov.embed(crops)).sum(axis=1).min() >= 0.9999
