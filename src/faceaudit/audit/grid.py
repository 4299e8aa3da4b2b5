"""The score grid: fixed-width bins over which comparison scores are counted.

Scores are quantised by :meth:`ScoreGrid.quantise`, and a comparison is a match at threshold index ``k`` when
its bin index is ``>= k``. Thresholds are therefore bin lower edges, exact to one bin width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COSINE_BIN_WIDTH = 1e-4
"""Bin width of the cosine-similarity grid: reported thresholds are exact to this width."""


@dataclass(frozen=True, slots=True)
class ScoreGrid:
    """A fixed grid of ``n_bins`` score bins of ``width``, whose bin ``k`` has lower edge ``lo + k·width``.

    ``higher_is_better`` is False for distance scores: they are negated before binning, so that a match is
    always "bin index >= k", and :meth:`edge` gives the threshold back in the caller's units.
    """

    lo: float
    width: float
    n_bins: int
    higher_is_better: bool = True
    float64: bool = False

    @classmethod
    def cosine(cls, width: float = COSINE_BIN_WIDTH) -> ScoreGrid:
        """Cosine similarity in [-1, 1], with one spare bin at each end."""
        n = int(round(2.0 / width)) + 3
        return cls(lo=-1.0 - width, width=width, n_bins=n)

    @classmethod
    def from_scores(
        cls, scores: np.ndarray, n_bins: int = 20_000, higher_is_better: bool = True
    ) -> ScoreGrid:
        """A grid that spans the observed ``scores`` with about ``n_bins`` bins (vendor scores of any range).

        Binning is in float64 relative to the lowest score, so adding a constant to every score changes no
        count. Leave far outliers out of ``scores`` (see :mod:`faceaudit.audit.hygiene`): they fall into the
        end bins and do not set the width.
        """
        s = np.asarray(scores, np.float64)
        if not higher_is_better:
            s = -s
        lo, hi = float(s.min()), float(s.max())
        span = hi - lo
        width = span / n_bins if span > 0 else max(1e-6, abs(lo) * 1e-9)
        # A decimal-looking width makes the reported thresholds readable; round it down to 2 significant digits.
        exp = np.floor(np.log10(width))
        width = float(np.floor(width / 10**exp * 10) / 10 * 10**exp)
        # edges half a bin off the lowest score: scores on a grid of the bin width fall mid-bin, not on an edge
        lo = lo - 1.5 * width
        n = int(np.ceil((hi - lo) / width)) + 3
        return cls(lo=lo, width=width, n_bins=n, higher_is_better=higher_is_better, float64=True)

    def quantise(self, scores: np.ndarray) -> np.ndarray:
        """Bin index (intp) of each score. The one quantisation used everywhere, reference tests included.

        The cosine grid bins in float64 as ``s·(1/w) + (−lo/w)`` (the arithmetic of the DGEMM comparator); a
        grid from given scores bins in float64 relative to ``lo``. Scores beyond either end fall into the end bins.
        """
        if self.float64:
            x = np.asarray(scores, np.float64)
            x = ((-x if not self.higher_is_better else x) - self.lo) / self.width
            return np.clip(np.floor(x), 0, self.n_bins - 1).astype(np.intp)
        x = np.asarray(scores, np.float64)
        if not self.higher_is_better:
            x = -x
        x = x * (1.0 / self.width) + (-self.lo / self.width)
        np.clip(x, 0, self.n_bins - 1, out=x)
        return x.astype(np.intp)

    def edge(self, k: int) -> float:
        """The threshold of bin index ``k`` in the caller's score units."""
        v = round(self.lo + k * self.width, 12)
        return float(v if self.higher_is_better else -v)

    def centre(self) -> np.ndarray:
        """Bin centres in the caller's units."""
        c = self.lo + (np.arange(self.n_bins) + 0.5) * self.width
        return c if self.higher_is_better else -c

    def as_dict(self) -> dict:
        return {
            "lo": self.lo,
            "bin_width": self.width,
            "n_bins": self.n_bins,
            "higher_is_better": self.higher_is_better,
            "binning": "float64, relative to the lowest score" if self.float64 else "float64 (DGEMM)",
            "note": f"thresholds are bin lower edges, exact to one bin width ({self.width:g})",
        }
