"""Checks on comparison scores from elsewhere, before they are counted (rules for the class of input).

- A score must be finite, and of a magnitude that float64 resolves to the bin width (else refused, the line
  named).
- Far outliers (a sentinel such as 999) are counted and reported; they fall into the end bins and do not set
  the bin width.
- The same pair of images twice is refused, or removed with ``dedupe`` (and counted); without pair identity
  columns duplicates cannot be checked, and the audit says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceaudit.audit.grid import ScoreGrid
from faceaudit.errors import InputError

BULK_QUANTILES = (0.001, 0.999)
"""The bulk of the scores lies between these quantiles (of each side, mated and non-mated)."""

FAR = 1.0
"""A score is a far outlier beyond the bulk's range by more than ``FAR`` times that range."""

RESOLUTION = 1e-3
"""A score's float64 spacing must be at most this fraction of the bin width."""

PAIR_COLUMNS = ("image_a", "image_b")


@dataclass(frozen=True, slots=True)
class ScoreChecks:
    """What the checks found: far outliers (their first lines) and duplicates removed."""

    n_outliers: int = 0
    outlier_lines: tuple[int, ...] = ()
    fences: tuple[float, float] | None = None
    n_duplicates_removed: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "far_outliers": self.n_outliers,
            "far_outlier_lines": list(self.outlier_lines[:20]),
            "outlier_fences": list(self.fences) if self.fences else None,
            "duplicates_removed": self.n_duplicates_removed,
        }


def require_finite(path: object, scores: np.ndarray, raw: list[str], lines: np.ndarray) -> None:
    """Refuse the first non-finite score (``inf``, ``nan``, or an overflow such as ``1e400``)."""
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        try:
            float(raw[i])
            what = "not a finite number"
        except ValueError:
            what = "not a number"
        raise InputError(path, f"line {int(lines[i])}: score {raw[i]!r} is {what}")


def far_outliers(scores: np.ndarray, mated: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A mask of the scores far outside the bulk of both sides, and the fences ``(low, high)``."""
    s = np.asarray(scores, np.float64)
    parts = [s[side] for side in (~mated, mated) if side.any()]
    q = np.array([np.quantile(p, BULK_QUANTILES) for p in parts])
    lo, hi = float(q[:, 0].min()), float(q[:, 1].max())
    margin = FAR * (hi - lo)
    fences = (lo - margin, hi + margin)
    return (s < fences[0]) | (s > fences[1]), fences


def require_resolvable(path: object, scores: np.ndarray, grid: ScoreGrid, lines: np.ndarray) -> None:
    """Refuse the first score whose float64 spacing is too coarse for the grid's bin width."""
    coarse = np.spacing(np.abs(scores)) > grid.width * RESOLUTION
    if coarse.any():
        i = int(np.flatnonzero(coarse)[0])
        raise InputError(
            path,
            f"line {int(lines[i])}: score {scores[i]:g} is too large to resolve to the bin width "
            f"{grid.width:g} (float64 steps of {np.spacing(abs(scores[i])):g} there); check the file, or "
            "rescale its scores",
        )


def duplicate_rows(image_a: list[str], image_b: list[str]) -> tuple[np.ndarray, dict[int, int]]:
    """A mask of the rows whose unordered pair (image_a, image_b) came before, and row → first row."""
    first: dict[tuple[str, str], int] = {}
    dup = np.zeros(len(image_a), bool)
    earlier = {}
    for i, (a, b) in enumerate(zip(image_a, image_b, strict=True)):
        key = (a, b) if a <= b else (b, a)
        if key in first:
            dup[i] = True
            earlier[i] = first[key]
        else:
            first[key] = i
    return dup, earlier
