"""Detectors and embedders behind small Protocols, and one registry from names to backends.

Names: ``"sface"`` (YuNet + SFace, the default), ``"dlib"`` (dlib HOG + ResNet), ``"dlib-cnn"`` (dlib MMOD
CNN + ResNet), and ``"onnx:PATH"`` (YuNet + a user's own ONNX embedder, e.g. ArcFace 112×112). The registry
is :data:`faceaudit.models.registry.REGISTRY`.
"""

from __future__ import annotations

from faceaudit.models.base import Detector, Embedder, l2_normalise
from faceaudit.models.registry import (
    BACKEND_NAMES,
    DEFAULT_MODEL,
    REGISTRY,
    Backend,
    ModelEntry,
    describe_models,
    load_backend,
)

__all__ = [
    "Backend",
    "Detector",
    "Embedder",
    "ModelEntry",
    "REGISTRY",
    "l2_normalise",
    "load_backend",
    "BACKEND_NAMES",
    "DEFAULT_MODEL",
    "describe_models",
]
