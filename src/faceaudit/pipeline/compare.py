"""Vectorised comparison: the cosine similarity of every template on one side with every template on the other.

Templates are L2-normalised, so the similarity is a dot product and lies in [-1, 1]; a pair is a match when its
similarity is at or above the model's threshold. face_recognition users think in euclidean distance with
``tolerance=0.6``; for unit vectors ``distance² = 2 − 2·similarity``, and docs/models.md translates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from faceaudit.errors import UsageError
from faceaudit.models.base import check_threshold
from faceaudit.types import Template

__all__ = ["TemplateLike", "as_matrix", "check_threshold", "similarity_matrix"]

TemplateLike = Any
"""A template vector (d), a matrix of them (n×d), a :class:`Template` or a ``FaceTemplate``, or a sequence of
any of these."""


def _vector_and_model(item: Any) -> tuple[np.ndarray, str | None]:
    if isinstance(item, Template):
        return np.asarray(item.vector, np.float32), item.model_id
    template = getattr(item, "template", None)
    if isinstance(template, Template):  # a FaceTemplate
        return np.asarray(template.vector, np.float32), template.model_id
    return np.asarray(item, np.float32), None


def as_matrix(templates: TemplateLike, side: str = "templates") -> tuple[np.ndarray, str | None]:
    """``(n×d float32 matrix, model id or None)`` for any accepted input; an empty sequence gives 0 rows."""
    if isinstance(templates, Template) or hasattr(templates, "template"):
        vec, model = _vector_and_model(templates)
        return vec.reshape(1, -1), model
    if isinstance(templates, np.ndarray):
        if templates.ndim == 1:
            return templates.astype(np.float32).reshape(1, -1), None
        if templates.ndim == 2:
            return templates.astype(np.float32), None
        raise UsageError(
            f"{side}: expected a template (d) or a matrix of templates (n×d), got shape {templates.shape}"
        )
    if not isinstance(templates, Sequence) or isinstance(templates, str | bytes):
        raise UsageError(f"{side}: expected templates, got {type(templates).__name__}")
    if len(templates) == 0:
        return np.zeros((0, 0), np.float32), None
    vectors, models = [], set()
    for i, item in enumerate(templates):
        vec, model = _vector_and_model(item)
        if vec.ndim != 1:
            raise UsageError(f"{side}[{i}]: expected one template vector, got shape {vec.shape}")
        vectors.append(vec)
        if model is not None:
            models.add(model)
    dims = {v.shape[0] for v in vectors}
    if len(dims) > 1:
        raise UsageError(f"{side}: templates of different lengths {sorted(dims)}")
    if len(models) > 1:
        raise UsageError(
            f"{side}: templates from different models {sorted(models)}; compare one model's only"
        )
    return np.stack(vectors), next(iter(models), None)


def similarity_matrix(a: TemplateLike, b: TemplateLike) -> np.ndarray:
    """The n×m matrix of cosine similarities between the n templates of ``a`` and the m of ``b`` (float32).

    Either side may be empty (0 rows, or 0 columns). Templates tagged with different model ids, or of different
    lengths, cannot be compared and raise :class:`UsageError`.
    """
    ma, model_a = as_matrix(a, "a")
    mb, model_b = as_matrix(b, "b")
    if model_a and model_b and model_a != model_b:
        raise UsageError(f"cannot compare templates of model {model_a!r} with templates of model {model_b!r}")
    if len(ma) == 0 or len(mb) == 0:
        return np.zeros((len(ma), len(mb)), np.float32)
    if ma.shape[1] != mb.shape[1]:
        raise UsageError(f"template lengths differ: {ma.shape[1]} against {mb.shape[1]}")
    return ma @ mb.T
