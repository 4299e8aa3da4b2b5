"""faceaudit: face recognition that can be audited.

The plain functions below are the friendliest API (in the manner of face_recognition's ``api.py``); the
:class:`~faceaudit.pipeline.Engine` gives full control.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import numpy as np

    from faceaudit.imaging import ImageSource
    from faceaudit.pipeline.engine import DetectedFace, Engine, FaceTemplate, VerifyResult

_ENGINES: dict[tuple, Engine] = {}


def engine(model: str = "sface", policy: str = "central", **options: Any) -> Engine:
    """A cached :class:`Engine` for ``model`` and ``policy``."""
    from faceaudit.pipeline.engine import Engine

    key = (model, policy, tuple(sorted(options.items())))
    if key not in _ENGINES:
        _ENGINES[key] = Engine(model, policy=policy, **options)
    return _ENGINES[key]


def detect(
    image: ImageSource,
    model: str = "sface",
    *,
    channels: str = "bgr",
    landmarks: int = 5,
    policy: str = "central",
    **options: Any,
) -> list[DetectedFace]:
    """Every face in ``image`` (path, bytes or array): box, 5 landmarks, score, quality, and ``chosen`` for
    the face ``policy`` picks. Arrays are BGR unless ``channels="rgb"``; ``landmarks=68`` (dlib models) adds
    face_recognition's 68-point dict."""
    return engine(model, policy, **options).detect(image, channels=channels, landmarks=landmarks)


def embed(
    image: ImageSource,
    model: str = "sface",
    policy: str = "central",
    *,
    channels: str = "bgr",
    **options: Any,
) -> FaceTemplate:
    """The template of the chosen face in ``image``."""
    return engine(model, policy, **options).template(image, channels=channels)


def verify(
    a: ImageSource,
    b: ImageSource,
    model: str = "sface",
    threshold: float | None = None,
    *,
    channels: str = "bgr",
    policy: str = "central",
    **options: Any,
) -> VerifyResult:
    """1:1 verification: cosine similarity, threshold and match decision, and the faces compared."""
    return engine(model, policy, **options).verify(a, b, threshold=threshold, channels=channels)


def compare(a: Any, b: Any) -> np.ndarray:
    """The n×m matrix of cosine similarities between templates ``a`` and ``b`` (vectors, n×d matrices,
    ``Template`` / ``FaceTemplate`` values or lists of them; either side may be empty)."""
    from faceaudit.pipeline.compare import similarity_matrix

    return similarity_matrix(a, b)


def run_audit(
    manifest: str | os.PathLike, root: str | os.PathLike | None = None, group_by="sex", **options: Any
):
    """Demographic differential audit of a labelled manifest; returns an ``AuditResult``.

    The options and the details are those of :func:`faceaudit.audit.run.audit`. (``faceaudit.audit`` is the
    audit subpackage; this function is its one entry point from the package root.)
    """
    from faceaudit.audit.run import audit as _audit

    return _audit(manifest, root, group_by, **options)


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from faceaudit.pipeline.engine import Engine

        return Engine
    if name == "Gallery":
        from faceaudit.gallery import Gallery

        return Gallery
    if name == "audit":  # the subpackage, loaded on first use
        return import_module("faceaudit.audit")
    raise AttributeError(f"module 'faceaudit' has no attribute {name!r}")


__all__ = ["__version__", "Engine", "Gallery", "compare", "detect", "embed", "engine", "run_audit", "verify"]
"""What the README documents. ``Engine``, ``Gallery`` and the ``audit`` subpackage load on first use
(``__getattr__``), so that ``import faceaudit`` stays light."""
