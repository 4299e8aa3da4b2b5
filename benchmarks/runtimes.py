"""Which runtime for YuNet and SFace? Per-call latency in OpenVINO, OpenCV DNN (both engines) and onnxruntime.

Same random inputs for every runtime; each row is the mean of 30 calls after a warm-up call. YuNet rows time
the whole detector call (padding, graph and output decoding) on an LFW-sized 250×250 image and a 640×480 one.

    python benchmarks/runtimes.py
    python benchmarks/runtimes.py --arcface-mbf     # the research model's runtimes, beside SFace's default
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from _common import print_table

from faceaudit.models.files import SFACE, YUNET, verified_path
from faceaudit.models.onnx_embedder import sface_embedder
from faceaudit.models.onnx_fix import fixed_model_path
from faceaudit.models.onnx_runtime import make_session
from faceaudit.models.yunet import YuNetDetector


def timed(fn, *args, reps: int = 30) -> float:
    """Mean milliseconds per call of ``fn(*args)`` after one warm-up call."""
    fn(*args)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    return (time.perf_counter() - t0) / reps * 1000


def sface_rows(threads: int) -> list[list[object]]:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (16, 3, 112, 112)).astype(np.float32)
    faces = [c.transpose(1, 2, 0)[..., ::-1].astype(np.uint8) for c in crops]
    cv2.setNumThreads(threads)
    rows = []
    classic = cv2.dnn.readNetFromONNX(str(verified_path(SFACE)), cv2.dnn.ENGINE_CLASSIC)

    def classic_one() -> None:
        classic.setInput(crops[:1])
        classic.forward()

    rows.append(["SFace", "cv2.dnn ENGINE_CLASSIC, original file", threads, 1, timed(classic_one)])
    for runtime, precision, label in [
        ("openvino", "bf16", "OpenVINO bf16, folded graph"),
        ("openvino", "f32", "OpenVINO f32, folded graph"),
        ("opencv", None, "cv2.dnn ENGINE_NEW, fixed graph"),
    ]:
        emb = sface_embedder(threads=threads, runtime=runtime, precision=precision)
        rows.append(["SFace", label, threads, 1, timed(emb.embed, faces[:1])])
        rows.append(["SFace", label, threads, 16, timed(emb.embed, faces, reps=5) / 16])
    fixed = str(fixed_model_path(verified_path(SFACE)))
    for fold in (False, True):
        s = make_session(fixed, threads=threads, fold_qdq=fold)
        name = s.get_inputs()[0].name
        label = "onnxruntime" + (" + disable_quant_qdq" if fold else "") + ", fixed graph"
        rows.append(["SFace", label, threads, 1, timed(s.run, None, {name: crops[:1]})])
    return rows


def yunet_rows(threads: int) -> list[list[object]]:
    rng = np.random.default_rng(1)
    images = {
        "250×250": rng.integers(0, 255, (250, 250, 3), dtype=np.uint8),
        "640×480": rng.integers(0, 255, (480, 640, 3), dtype=np.uint8),
    }
    cv2.setNumThreads(threads)
    rows = []
    for runtime, label in [("openvino", "OpenVINO f32 + our decoding"), ("opencv", "cv2.FaceDetectorYN")]:
        det = YuNetDetector(runtime=runtime, threads=threads)
        for size, img in images.items():
            # a size's second sighting compiles its fixed-shape graph: keep that out of the timing
            det.detect(img)
            rows.append(["YuNet", f"{label}, {size}", threads, 1, timed(det.detect, img)])
    s = make_session(str(fixed_model_path(verified_path(YUNET), batch_dim=False)), threads=threads)
    x = np.zeros((1, 3, 640, 640), np.float32)
    name = s.get_inputs()[0].name
    rows.append(["YuNet", "onnxruntime, fixed 640×640 graph only", threads, 1, timed(s.run, None, {name: x})])
    return rows


def arcface_mbf_rows(threads: int) -> list[list[object]]:
    """w600k_mbf (arcface-mbf) in each runtime, beside SFace's default in the same run (needs the research
    model: make research-models). Same random crops for every runtime."""
    from faceaudit.models.files import W600K_MBF

    try:
        path = str(verified_path(W600K_MBF))
    except Exception as exc:  # the optional research model is not installed
        print(f"arcface-mbf skipped: {exc}")
        return []
    from faceaudit.models.onnx_embedder import OnnxEmbedder

    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(16)]
    rows = []
    reference = None
    for runtime, precision, label in [
        ("openvino", "f32", "OpenVINO f32"),
        ("openvino", "bf16", "OpenVINO bf16 (f32 where the CPU lacks bf16)"),
        ("onnxruntime", None, "onnxruntime"),
        ("opencv", None, "cv2.dnn ENGINE_NEW"),
    ]:
        emb = OnnxEmbedder(path, runtime=runtime, precision=precision, threads=threads, input_size=(112, 112))
        vecs = emb.embed(faces)
        reference = vecs if reference is None else reference
        cos = float((vecs * reference).sum(axis=1).min())
        rows.append(
            ["arcface-mbf", f"{label}; min cos to f32 {cos:.5f}", threads, 1, timed(emb.embed, faces[:1])]
        )
        rows.append(["arcface-mbf", label, threads, 16, timed(emb.embed, faces, reps=5) / 16])
    sface = sface_embedder(threads=threads)
    rows.append(["SFace", f"default ({sface.runtime}), same run", threads, 1, timed(sface.embed, faces[:1])])
    rows.append(
        ["SFace", f"default ({sface.runtime}), same run", threads, 16, timed(sface.embed, faces, reps=5) / 16]
    )
    return rows


def main() -> None:
    import sys

    rows = []
    only_mbf = "--arcface-mbf" in sys.argv[1:]
    for threads in (1, 2):
        rows += arcface_mbf_rows(threads) if only_mbf else sface_rows(threads) + yunet_rows(threads)
    print_table(
        ["model", "runtime", "threads", "batch", "ms per face / image"],
        [[*r[:4], f"{r[4]:.1f}"] for r in rows],
    )


if __name__ == "__main__":
    main()
