"""The forward pass of an ONNX graph, in one of two runtimes: onnxruntime or OpenCV's DNN engine.

Both take an N×C×H×W (or N×H×W×C) float32 blob and return the first output as an N×d float32 array. The
runtime is chosen by measurement (docs/benchmarks.md, "Runtime choice"): for the bundled SFace graph OpenCV
5's new DNN engine is about 1.8× faster than onnxruntime on this CPU and gives the same templates.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np

from faceaudit.errors import ModelIntegrityError
from faceaudit.models.onnx_runtime import make_session

RUNTIMES = ("onnxruntime", "opencv")


@dataclass(slots=True)
class InputSpec:
    """What the graph says about its image input (None where the graph leaves it open)."""

    shape: list = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    output_dim: int | None = None


class OrtForward:
    """onnxruntime, with int8 weight dequantisation folded once (``session.disable_quant_qdq``)."""

    def __init__(self, path: str, *, threads: int | None = None, fold_qdq: bool = True) -> None:
        try:
            self._session = make_session(path, threads=threads, fold_qdq=fold_qdq)
        except Exception as exc:
            raise ModelIntegrityError(f"{path}: onnxruntime cannot load this model ({exc})") from None
        inp = self._session.get_inputs()[0]
        out = self._session.get_outputs()[0]
        self._name = inp.name
        dim = out.shape[-1] if out.shape and isinstance(out.shape[-1], int) else None
        self.spec = InputSpec(list(inp.shape), dict(self._session.get_modelmeta().custom_metadata_map), dim)

    def __call__(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._name: blob})[0], np.float32).reshape(len(blob), -1)


class CvForward:
    """OpenCV's new DNN graph engine (OpenCV ≥ 5). A ``cv2.dnn.Net`` is not thread-safe, so calls are serialised."""

    def __init__(self, path: str, *, threads: int | None = None) -> None:
        import cv2

        if threads is None and os.environ.get("FACEAUDIT_THREADS"):
            threads = int(os.environ["FACEAUDIT_THREADS"])
        if threads:
            cv2.setNumThreads(int(threads))
        try:
            self._net = cv2.dnn.readNetFromONNX(path, cv2.dnn.ENGINE_NEW)
        except cv2.error as exc:
            raise ModelIntegrityError(f"{path}: OpenCV cannot load this model ({str(exc).strip()})") from None
        self._lock = threading.Lock()
        self.spec = InputSpec()

    def __call__(self, blob: np.ndarray) -> np.ndarray:
        with self._lock:
            self._net.setInput(blob)
            out = self._net.forward()
        return np.asarray(out, np.float32).reshape(len(blob), -1)


def make_forward(path: str, runtime: str, *, threads: int | None = None, fold_qdq: bool = True):
    """An :class:`OrtForward` or :class:`CvForward` for ``path``."""
    if runtime == "onnxruntime":
        return OrtForward(path, threads=threads, fold_qdq=fold_qdq)
    if runtime == "opencv":
        return CvForward(path, threads=threads)
    raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
