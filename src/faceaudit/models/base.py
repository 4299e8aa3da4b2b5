"""The small contracts every backend satisfies."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from faceaudit.errors import UsageError
from faceaudit.types import Face


@runtime_checkable
class Detector(Protocol):
    """Finds every face in a BGR uint8 image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return all faces, each with its box, 5 landmarks and score."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns aligned face crops into templates."""

    model_id: str
    dim: int
    default_threshold: float

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Crop and align one face the way this embedder expects (BGR uint8)."""
        ...

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        """Return an N×dim float32 array of L2-normalised templates for N aligned crops."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def check_threshold(threshold: float | str, what: str = "threshold") -> float:
    """``threshold`` as a float, refused unless it is a finite number within the similarity's range [-1, 1]."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number in [-1, 1], not {threshold!r}") from None
    if not -1.0 <= value <= 1.0:  # NaN fails too
        raise UsageError(f"{what} {threshold!r} is outside the cosine similarity's range [-1, 1]")
    return value
