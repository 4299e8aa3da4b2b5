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


def detect(image: ImageSource, model: str = "sface") -> list[DetectedFace]:
    """Every face in ``image`` (path, bytes or BGR array): box, 5 landmarks, score and quality."""
    return engine(model).detect(image)


def embed(image: ImageSource, model: str = "sface", policy: str = "central") -> FaceTemplate:
    """The template of the chosen face in ``image``."""
    return engine(model, policy).template(image)


def verify(
    a: ImageSource, b: ImageSource, model: str = "sface", threshold: float | None = None
) -> VerifyResult:
    """1:1 verification: cosine similarity, threshold and match decision."""
    return engine(model).verify(a, b, threshold=threshold)


# Importing a submodule binds its name on this package, so the subpackage ``faceaudit.audit`` (cheap: its names
# load lazily) is imported first; the function below then keeps the name ``faceaudit.audit`` for good.
import_module("faceaudit.audit")


def audit(manifest: str | os.PathLike, root: str | os.PathLike | None = None, group_by="sex", **options: Any):
    """Demographic differential audit of a labelled manifest; returns an ``AuditResult``.

    The options and the details are those of :func:`faceaudit.audit.run.audit`.
    """
    from faceaudit.audit.run import audit as run_audit

    return run_audit(manifest, root, group_by, **options)


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from faceaudit.pipeline.engine import Engine

        return Engine
    if name == "Gallery":
        from faceaudit.gallery import Gallery

        return Gallery
    raise AttributeError(f"module 'faceaudit' has no attribute {name!r}")


__all__ = ["__version__", "Engine", "Gallery", "audit", "detect", "embed", "engine", "verify"]
"""What the README documents. ``Engine``, ``Gallery`` and ``audit`` load on first use (``__getattr__``), so that
``import faceaudit`` stays light."""
