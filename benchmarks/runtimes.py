"""Which runtime for YuNet and SFace? Per-call latency of cv2.dnn (both engines) and onnxruntime, same inputs.

python benchmarks/runtimes.py
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from _common import print_table

from faceaudit.models.files import SFACE, YUNET, verified_path
from faceaudit.models.onnx_fix import fixed_model_path
from faceaudit.models.onnx_runtime import make_session


def timed(fn, *args, reps: int = 30) -> float:
    """Mean milliseconds per call of ``fn(*args)`` after one warm-up call."""
    fn(*args)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    return (time.perf_counter() - t0) / reps * 1000


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    crops = rng.integers(0, 255, (16, 3, 112, 112)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(verified_path(SFACE)), cv2.dnn.ENGINE_CLASSIC)

    def cv2_one():
        net.setInput(crops[:1])
        net.forward()

    fixed = str(fixed_model_path(verified_path(SFACE)))
    new_engine = cv2.dnn.readNetFromONNX(fixed, cv2.dnn.ENGINE_NEW)

    def cv2_new(batch: np.ndarray) -> None:
        new_engine.setInput(batch)
        new_engine.forward()

    for threads in (1, 2):
        cv2.setNumThreads(threads)
        rows.append(
            ["SFace", "cv2.dnn (ENGINE_CLASSIC), original file", threads, "1", f"{timed(cv2_one):.1f}"]
        )
        rows.append(
            ["SFace", "cv2.dnn (ENGINE_NEW), fixed graph", threads, "1", f"{timed(cv2_new, crops[:1]):.1f}"]
        )
        per = timed(cv2_new, crops, reps=5) / 16
        rows.append(["SFace", "cv2.dnn (ENGINE_NEW), fixed graph", threads, "16", f"{per:.1f}"])
        for fold in (False, True):
            s = make_session(fixed, threads=threads, fold_qdq=fold)
            name = s.get_inputs()[0].name
            label = "onnxruntime" + (" + disable_quant_qdq" if fold else "")
            rows.append(["SFace", label, threads, "1", f"{timed(s.run, None, {name: crops[:1]}):.1f}"])
            if fold:
                per = timed(s.run, None, {name: crops}, reps=5) / 16
                rows.append(["SFace", label, threads, "16", f"{per:.1f}"])
    img = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    small = cv2.resize(img, (250, 250))
    for threads in (1, 2):
        cv2.setNumThreads(threads)
        det = cv2.FaceDetectorYN.create(str(verified_path(YUNET)), "", (250, 250))
        rows.append(["YuNet", "cv2.FaceDetectorYN 250×250", threads, "1", f"{timed(det.detect, small):.1f}"])
        det.setInputSize((640, 480))
        rows.append(["YuNet", "cv2.FaceDetectorYN 640×480", threads, "1", f"{timed(det.detect, img):.1f}"])
        s = make_session(str(fixed_model_path(verified_path(YUNET), batch_dim=False)), threads=threads)
        x = np.zeros((1, 3, 640, 640), np.float32)
        name = s.get_inputs()[0].name
        rows.append(
            [
                "YuNet",
                "onnxruntime 640×640 (graph only, no decoding)",
                threads,
                "1",
                f"{timed(s.run, None, {name: x}):.1f}",
            ]
        )
    print_table(["model", "runtime", "threads", "batch", "ms per face / image"], rows)


if __name__ == "__main__":
    main()
