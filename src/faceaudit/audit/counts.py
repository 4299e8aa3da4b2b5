"""What a comparison run accumulates: per group-pair histograms of non-mated scores, and every mated score."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceaudit.audit.grid import ScoreGrid


@dataclass(slots=True)
class ComparisonCounts:
    """What the comparator accumulates: everything the metrics need, and nothing per non-mated pair.

    - ``non_mated[a, b]``: histogram (``n_bins``) of non-mated scores between group a and group b (a <= b).
    - ``mated_bins``/``mated_scores``: every mated comparison, with its group pair and subject.
    - ``group_index`` -1 marks templates without a group label: they count in the overall rates only.
    """

    grid: ScoreGrid
    groups: list[str]
    non_mated: np.ndarray
    mated_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    mated_bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    mated_group_a: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    mated_group_b: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    mated_subject: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    non_mated_unlabelled: np.ndarray | None = None

    def non_mated_total(self) -> np.ndarray:
        """The histogram of every non-mated comparison (all cells, unlabelled templates included)."""
        total = self.non_mated.sum(axis=(0, 1))
        if self.non_mated_unlabelled is not None:
            total = total + self.non_mated_unlabelled
        return total

    def non_mated_within(self, g: int) -> np.ndarray:
        """Histogram of the same-group non-mated comparisons of group ``g``."""
        return self.non_mated[g, g]

    def cross(self, a: int, b: int) -> np.ndarray:
        """Histogram of non-mated comparisons between groups ``a`` and ``b`` (either order)."""
        return self.non_mated[min(a, b), max(a, b)]

    def mated_within(self, g: int) -> np.ndarray:
        """Bin indices of the mated comparisons with both images in group ``g``."""
        return self.mated_bins[(self.mated_group_a == g) & (self.mated_group_b == g)]


def count_scores(
    scores: np.ndarray,
    mated: np.ndarray,
    group_a: np.ndarray,
    group_b: np.ndarray,
    groups: list[str],
    grid: ScoreGrid,
    subject: np.ndarray | None = None,
) -> ComparisonCounts:
    """The same counts from scores computed elsewhere (a vendor's): one row per comparison.

    ``group_a``/``group_b`` are group indices (-1: no label); ``mated`` is boolean.
    """
    scores = np.asarray(scores, np.float64)
    mated = np.asarray(mated, bool)
    ga = np.asarray(group_a, np.intp)
    gb = np.asarray(group_b, np.intp)
    n_groups = len(groups)
    unl = n_groups
    ca, cb = np.where(ga < 0, unl, ga), np.where(gb < 0, unl, gb)
    lo_g, hi_g = np.minimum(ca, cb), np.maximum(ca, cb)
    bins = grid.quantise(scores)
    nm = ~mated
    cell = (lo_g[nm] * (n_groups + 1) + hi_g[nm]) * grid.n_bins + bins[nm]
    hist = np.bincount(cell, minlength=(n_groups + 1) ** 2 * grid.n_bins).reshape(
        n_groups + 1, n_groups + 1, -1
    )
    unlabelled = hist[:, unl].sum(axis=0) + hist[unl, :unl].sum(axis=0)
    m_lo, m_hi = lo_g[mated], hi_g[mated]
    return ComparisonCounts(
        grid=grid,
        groups=list(groups),
        non_mated=np.ascontiguousarray(hist[:n_groups, :n_groups]).astype(np.int64),
        mated_scores=scores[mated],  # float64: given scores may sit far from 0 (an offset)
        mated_bins=bins[mated],
        mated_group_a=np.where(m_lo == unl, -1, m_lo),
        mated_group_b=np.where(m_hi == unl, -1, m_hi),
        mated_subject=(
            np.asarray(subject, np.intp)[mated] if subject is not None else np.arange(int(mated.sum()))
        ),
        non_mated_unlabelled=unlabelled.astype(np.int64),
    )
