"""YuNet face detector (OpenCV model zoo, 2023mar, int8 weights) in OpenVINO or through ``cv2.FaceDetectorYN``.

Runtime chosen by measurement (docs/benchmarks.md, "Runtime choice"), one thread, whole detector call: for a
250×250 LFW image OpenVINO takes 1.9 ms against 3.0 ms for ``cv2.FaceDetectorYN``, and 8.4 ms against 14.0 ms
at 640×480. The OpenVINO path runs the same graph, with its weights folded to float32 and its input size freed
(:func:`~faceaudit.models.onnx_fix.folded_model_path`), always in f32, and decodes the outputs the way
``cv2.FaceDetectorYN`` does: the image is zero-padded to a multiple of 32, each anchor's score is
``sqrt(cls · obj)``, and boxes pass through ``cv2.dnn.NMSBoxes`` on integer boxes. Both runtimes give the same
faces (tests/test_engine.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import cv2
import numpy as np

from faceaudit.models.files import YUNET, verified_path
from faceaudit.types import Face

# errors only: cv2 5.0 warns about DNN targets on every detector it creates
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

MAX_SIDE = 1280
"""Images whose longer side exceeds this are downscaled for detection; coordinates are mapped back."""

YUNET_RUNTIMES = ("openvino", "opencv")

_DIVISOR = 32
_STRIDES = (8, 16, 32)
_STATIC_AFTER = 2
"""A padded input size seen this many times gets its own fixed-shape graph: 2.1 against 3.2 ms a 250×250 image,
for a one-off compile of about 0.1 s. The free-shape graph serves every other size."""
_STATIC_SIZES = 8


def _pad(n: int) -> int:
    return ((n - 1) // _DIVISOR + 1) * _DIVISOR


def decode_yunet(
    outputs: list[np.ndarray],
    pad_w: int,
    pad_h: int,
    score_threshold: float,
    nms_threshold: float,
    top_k: int,
) -> np.ndarray:
    """Rows of (x, y, w, h, 5 × landmark x, y, score) from YuNet's 12 outputs (cls, obj, bbox, kps per stride)."""
    rows = []
    for i, stride in enumerate(_STRIDES):
        cols = pad_w // stride
        cls, obj, bbox, kps = (np.asarray(outputs[i + 3 * k]).reshape(-1, (1, 1, 4, 10)[k]) for k in range(4))
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        idx = np.flatnonzero(score >= score_threshold)
        if not len(idx):
            continue
        r = (idx // cols).astype(np.float32)[:, None]
        c = (idx % cols).astype(np.float32)[:, None]
        b = bbox[idx]
        w = np.exp(b[:, 2:3]) * stride
        h = np.exp(b[:, 3:4]) * stride
        x1 = (c + b[:, 0:1]) * stride - w / 2
        y1 = (r + b[:, 1:2]) * stride - h / 2
        k = kps[idx].reshape(-1, 5, 2)
        marks = np.stack([(k[..., 0] + c) * stride, (k[..., 1] + r) * stride], axis=2).reshape(-1, 10)
        rows.append(np.hstack([x1, y1, w, h, marks, score[idx, None]]).astype(np.float32))
    if not rows:
        return np.zeros((0, 15), np.float32)
    faces = np.vstack(rows)
    if len(faces) > 1:
        boxes = [[int(v) for v in f[:4]] for f in faces]
        keep = cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), score_threshold, nms_threshold, 1.0, top_k)
        faces = faces[np.asarray(keep, dtype=int).reshape(-1)]
    return faces


class _OvYuNet:
    """YuNet's graph in OpenVINO: one free-shape compiled model, plus fixed-shape ones for frequent sizes."""

    def __init__(self, threads: int | None) -> None:
        from faceaudit.models.forward import openvino_config, openvino_core
        from faceaudit.models.onnx_fix import folded_model_path

        self._core = openvino_core()
        self._path = str(folded_model_path(verified_path(YUNET), free_spatial=True))
        self._config = openvino_config("f32", threads)
        self._free = self._compile(None)
        self._static: OrderedDict[tuple[int, int], Any] = OrderedDict()  # OpenVINO compiled models
        self._seen: dict[tuple[int, int], int] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def _compile(self, size: tuple[int, int] | None):
        model = self._core.read_model(self._path)
        model.reshape([1, 3, -1, -1] if size is None else [1, 3, size[1], size[0]])
        return self._core.compile_model(model, "CPU", self._config)

    def _request(self, size: tuple[int, int]):
        with self._lock:
            compiled = self._static.get(size)
            if compiled is None:
                self._seen[size] = self._seen.get(size, 0) + 1
                if self._seen[size] >= _STATIC_AFTER:
                    compiled = self._static[size] = self._compile(size)
                    if len(self._static) > _STATIC_SIZES:
                        self._static.popitem(last=False)
            else:
                self._static.move_to_end(size)
            compiled = compiled or self._free
        cache = self._local.__dict__.setdefault("requests", {})
        request = cache.get(id(compiled))
        if request is None or request[0] is not compiled:
            if len(cache) > _STATIC_SIZES:  # drop this thread's requests on graphs evicted from the cache
                with self._lock:
                    live = {id(c) for c in (self._free, *self._static.values())}
                for key in [k for k in cache if k not in live]:
                    del cache[key]
            request = cache[id(compiled)] = (compiled, compiled.create_infer_request())
        return request[1]

    def __call__(self, image: np.ndarray, args: tuple[float, float, int]) -> np.ndarray:
        h, w = image.shape[:2]
        pw, ph = _pad(w), _pad(h)
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = image.transpose(2, 0, 1)
        result = self._request((pw, ph)).infer({0: blob})
        outputs = [np.array(result[i]) for i in range(12)]
        return decode_yunet(outputs, pw, ph, *args)


class _CvYuNet:
    """``cv2.FaceDetectorYN`` on the untouched file (a net per thread: they are not thread-safe)."""

    def __init__(self, threads: int | None) -> None:
        from faceaudit.models.forward import thread_count

        threads = thread_count(threads)
        if threads:
            cv2.setNumThreads(int(threads))  # process-wide, as for OpenCV's DNN embedder
        self._path = str(verified_path(YUNET))
        self._local = threading.local()

    def __call__(self, image: np.ndarray, args: tuple[float, float, int]) -> np.ndarray:
        size = (image.shape[1], image.shape[0])
        net = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = cv2.FaceDetectorYN.create(self._path, "", size, *args)
        net.setInputSize(size)
        _, rows = net.detect(image)
        return np.zeros((0, 15), np.float32) if rows is None else rows


class YuNetDetector:
    """Detect faces with YuNet; returns boxes, 5 landmarks and scores in original image coordinates.

    ``runtime``: "openvino" (the default) or "opencv" (``cv2.FaceDetectorYN``; also the default when OpenVINO
    is not installed, or with ``FACEAUDIT_YUNET_RUNTIME=opencv``).
    """

    name = "yunet-2023mar-int8bq"

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        *,
        runtime: str | None = None,
        threads: int | None = None,
    ) -> None:
        from faceaudit.models.forward import default_runtime

        runtime = runtime or default_runtime("FACEAUDIT_YUNET_RUNTIME")
        if runtime not in YUNET_RUNTIMES:
            from faceaudit.errors import UsageError

            raise UsageError(f"YuNet runtime must be one of {', '.join(YUNET_RUNTIMES)}, not {runtime!r}")
        self.runtime = "openvino-f32" if runtime == "openvino" else "opencv"
        self._args = (score_threshold, nms_threshold, top_k)
        self._run = _OvYuNet(threads) if runtime == "openvino" else _CvYuNet(threads)

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, MAX_SIDE / max(h, w))
        work = (
            image
            if scale == 1.0
            else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        faces: list[Face] = []
        for row in self._run(work, self._args):
            r = row.astype(np.float64) / scale
            faces.append(
                Face(
                    box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                    landmarks=r[4:14].reshape(5, 2).astype(np.float32),
                    score=float(row[14]),
                )
            )
        return faces
