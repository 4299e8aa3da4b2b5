"""Detectors and embedders behind small Protocols, and a registry from names to backends.

Names: ``"sface"`` (YuNet + SFace, the default), ``"dlib"`` (dlib HOG + ResNet), ``"dlib-cnn"`` (dlib MMOD
CNN + ResNet), and ``"onnx:PATH"`` (YuNet + a user's own ONNX embedder, e.g. ArcFace 112×112).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from faceaudit.errors import UsageError
from faceaudit.models.base import Detector, Embedder, l2_normalise

__all__ = [
    "Backend",
    "Detector",
    "Embedder",
    "l2_normalise",
    "load_backend",
    "BACKEND_NAMES",
    "describe_models",
]

BACKEND_NAMES = ("sface", "dlib", "dlib-cnn", "onnx:PATH")
DEFAULT_MODEL = "sface"


@dataclass(frozen=True, slots=True)
class Backend:
    """A detector and an embedder that belong together."""

    name: str
    detector: Detector
    embedder: Embedder

    @property
    def model_id(self) -> str:
        return self.embedder.model_id


_CACHE: dict[tuple, Backend] = {}


def load_backend(spec: str = DEFAULT_MODEL, **options: Any) -> Backend:
    """Build (and cache) the backend called ``spec``.

    ``options`` for ``onnx:PATH``: ``mean``, ``std``, ``channels`` ("rgb"/"bgr"), ``input_size`` (w, h),
    ``default_threshold``, ``runtime``, ``precision``. ``threads`` caps each runtime's threads (OpenVINO,
    onnxruntime intra-op, or OpenCV).
    """
    # per process: OpenVINO's compiled models and thread pools do not survive fork(), so a forked worker
    # (multiprocessing's default on Linux) builds its own backend instead of inheriting its parent's
    key = (os.getpid(), spec, tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key in _CACHE:
        return _CACHE[key]
    threads = options.pop("threads", None)
    if spec == "sface":
        from faceaudit.models.onnx_embedder import sface_embedder
        from faceaudit.models.yunet import YuNetDetector

        backend = Backend("sface", YuNetDetector(threads=threads), sface_embedder(threads=threads))
    elif spec in ("dlib", "dlib-cnn"):
        from faceaudit.models.dlib_backend import DlibDetector, DlibEmbedder

        kind = "cnn" if spec == "dlib-cnn" else "hog"
        backend = Backend(spec, DlibDetector(kind), DlibEmbedder())
    elif spec.startswith("onnx:"):
        from faceaudit.models.onnx_embedder import OnnxEmbedder
        from faceaudit.models.yunet import YuNetDetector

        path = spec[len("onnx:") :]
        if not path:
            raise UsageError("--model onnx:PATH needs a path to an .onnx file")
        backend = Backend(
            spec, YuNetDetector(threads=threads), OnnxEmbedder(path, threads=threads, **options)
        )
    else:
        raise UsageError(f"unknown model {spec!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    _CACHE[key] = backend
    return backend


def _sface_runtime_here() -> str:
    """What the sface backend runs on this machine, with the current environment (nothing is loaded)."""
    from faceaudit.models.forward import default_runtime, resolve_precision

    det = default_runtime("FACEAUDIT_YUNET_RUNTIME")
    emb = default_runtime("FACEAUDIT_SFACE_RUNTIME")
    det = "openvino-f32" if det == "openvino" else det
    emb = f"openvino-{resolve_precision()}" if emb == "openvino" else emb
    return f"detector={det} embedder={emb}"


def describe_models() -> list[dict[str, Any]]:
    """One row per bundled backend: files, SHA-256, licence, template dimension and default threshold."""
    from faceaudit.models.dlib_backend import DLIB_THRESHOLD
    from faceaudit.models.files import DLIB_MMOD, DLIB_RESNET, DLIB_SHAPE5, SFACE, YUNET, sha256_of
    from faceaudit.models.onnx_embedder import SFACE_THRESHOLD

    def files(*mfs):
        out = []
        for mf in mfs:
            try:
                path = mf.path()
                digest = sha256_of(path) if path.is_file() else "missing"
            except Exception as exc:  # package missing
                path, digest = "", f"unavailable ({exc})"
            ok = mf.sha256 is None or mf.sha256 == digest
            out.append(
                {
                    "file": str(path),
                    "sha256": digest,
                    "verified": ok,
                    "licence": mf.licence,
                    "source": mf.source,
                }
            )
        return out

    return [
        {
            "name": "sface",
            "model_id": "sface-2021dec-int8bq",
            "detector": "yunet-2023mar-int8bq",
            "dim": 128,
            "metric": "cosine",
            "default_threshold": SFACE_THRESHOLD,
            "runtime": "OpenVINO: SFace in bf16 where the CPU has it (else f32), YuNet in f32 "
            "(FACEAUDIT_SFACE_RUNTIME / FACEAUDIT_YUNET_RUNTIME=opencv, FACEAUDIT_PRECISION=f32 to change)",
            "runtime_here": _sface_runtime_here(),
            "files": files(YUNET, SFACE),
        },
        {
            "name": "dlib",
            "model_id": "dlib-resnet-v1",
            "detector": "dlib-hog",
            "dim": 128,
            "metric": "cosine",
            "default_threshold": DLIB_THRESHOLD,
            "runtime": "dlib",
            "files": files(DLIB_SHAPE5, DLIB_RESNET),
        },
        {
            "name": "dlib-cnn",
            "model_id": "dlib-resnet-v1",
            "detector": "dlib-cnn",
            "dim": 128,
            "metric": "cosine",
            "default_threshold": DLIB_THRESHOLD,
            "runtime": "dlib",
            "files": files(DLIB_MMOD, DLIB_SHAPE5, DLIB_RESNET),
        },
        {
            "name": "onnx:PATH",
            "model_id": "onnx:<file>:<sha256[:12]>",
            "detector": "yunet-2023mar-int8bq",
            "dim": "from the model",
            "metric": "cosine",
            "default_threshold": "0.3 unless --threshold",
            "runtime": "onnxruntime (or --onnx-runtime openvino / opencv)",
            "files": [],
        },
    ]
