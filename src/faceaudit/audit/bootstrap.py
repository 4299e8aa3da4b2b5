"""The subject-clustered bootstrap, made cheap: counts per subject and per subject pair, then subjects resampled.

Comparisons share subjects, so they are not independent: a subject who is hard to recognise fails in every
mated pair of theirs, and a subject who resembles many others false-matches many times. The bootstrap
therefore resamples whole subjects, within each group: resample b gives subject s a weight ``w[b, s]`` (how
many times it was drawn), and then

- FNMR* = Σ w_s·e_s / Σ w_s·m_s (e_s, m_s: the subject's false non-matches and mated comparisons);
- FMR* = Σ_{s<t} w_s·w_t·E_st / Σ_{s<t} w_s·w_t·n_s·n_t, where E_st counts the false matches between
  subjects s and t and n_s is subject s's number of images (every pair of images of two different subjects of
  the group is a non-mated comparison). Two draws of the same subject make no non-mated pair.

E is sparse: only false matches, which the comparator keeps as it counts (:class:`~faceaudit.audit.comparator.
KeptPairs`), or which :func:`high_scoring_pairs` finds in a second pass when it did not. Every resample is
drawn at once, as a matrix W of weights (resamples × subjects), and every sum is a product with it: FNMR*
takes ``W @ e`` and ``W @ m``, FMR* takes ``rowsum((W @ E) ∘ W)`` with E a sparse subjects × subjects matrix.
The cost grows with the subjects and the false matches, never with the pairs. Every term is an integer, and
float64 holds integers exactly, so the order of the sums changes no bit. The draws are
``rng.integers(0, S_g, S_g)`` per resample and group, in group order, from ``numpy.random.default_rng(seed)``
(drawn as one array, which is the same stream); tests repeat them in a plain loop over the resampled images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from faceaudit.audit.comparator import join_pairs
from faceaudit.audit.counts import ComparisonCounts
from faceaudit.audit.disaggregated import Interval
from faceaudit.audit.scores import BLOCK, SortedTemplates, Span, at_or_above, score_tile

METHOD = "subject-clustered bootstrap (percentile; subjects resampled within each group)"
CONFIDENCE = 0.95
CHUNK = 256
"""Resamples summed at a time (memory: CHUNK × subjects float64 per product)."""

if TYPE_CHECKING:
    from faceaudit.audit.comparator import KeptPairs


def high_scoring_pairs(st: SortedTemplates, k_min: int, block: int = BLOCK) -> tuple[np.ndarray, ...]:
    """``(group code, subject a, subject b, bin)`` of every same-group non-mated pair with bin >= ``k_min``.

    A second pass over the same-group tiles only (tiles never straddle a group), with the comparator's
    arithmetic (:func:`~faceaudit.audit.scores.score_tile`), so the bins agree with the histograms.
    """
    a, b, coord = same_group_pairs(st, st.tiles(block), k_min)
    return st.code[a], st.subject[a], st.subject[b], coord.astype(np.intp)


def same_group_pairs(
    st: SortedTemplates, tiles: Sequence[tuple[Span, Span]], k_min: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted-template indices ``a < b`` and bin coordinates of every same-group non-mated pair with bin >=
    ``k_min`` in ``tiles`` (others are skipped), in tile order: one Dask task's share, or every tile's."""
    n_groups, n_bins = len(st.groups), st.grid.n_bins
    buf: np.ndarray | None = None
    parts = []
    for rows, cols in tiles:
        g = int(st.code[rows[0]])
        if g != int(st.code[cols[0]]) or g >= n_groups:
            continue
        shape = (rows[1] - rows[0], cols[1] - cols[0])
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1] < shape[1]:
            buf = np.empty(shape, np.float64)
        v, _, _ = score_tile(st, rows, cols, buf)
        parts.append(at_or_above(v, rows, cols, k_min, n_bins))
    return join_pairs(parts)


@dataclass
class GroupClusters:
    """One group's subjects: images per subject, false-match pairs (local indices) and mated comparisons."""

    n_images: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_bin: np.ndarray
    mated_cluster: np.ndarray
    mated_bin: np.ndarray
    weights: np.ndarray | None = field(default=None, repr=False)


class ClusteredBootstrap:
    """Bootstrap intervals of FMR, FNMR and their max/min ratio at any bin index, from one set of draws."""

    def __init__(self, clusters: list[GroupClusters], n_boot: int, seed: int = 0) -> None:
        self.clusters = clusters
        self.n_boot = n_boot
        self.seed = seed
        self._memo: dict[tuple[str, int, int], np.ndarray] = {}
        rng = np.random.default_rng(seed)
        for c in clusters:
            c.weights = _weights(rng, len(c.n_images), n_boot)

    @classmethod
    def from_templates(
        cls,
        st: SortedTemplates,
        counts: ComparisonCounts,
        k_min: int,
        n_boot: int,
        seed: int = 0,
        kept: KeptPairs | None = None,
    ) -> ClusteredBootstrap:
        """Clusters from the sorted templates (subjects per group) and the comparator's mated counts.

        The false matches at bin ``k_min`` and above come from ``kept`` (the comparator's kept pairs) when it
        holds them all, else from a second pass over the same-group tiles (:func:`high_scoring_pairs`).
        """
        code, subj = st.code, st.subject
        if kept is not None and kept.floor is not None and kept.floor <= k_min:
            a, b, coord = kept.same_group
            hit = coord >= k_min
            a, b = a[hit], b[hit]
            pair_group, pair_a, pair_b = code[a], subj[a], subj[b]
            pair_bin = np.floor(coord[hit]).astype(np.intp)
        else:
            pair_group, pair_a, pair_b, pair_bin = high_scoring_pairs(st, k_min)
        clusters = []
        for g in range(len(st.groups)):
            subjects, n_img = np.unique(subj[code == g], return_counts=True)
            sel = pair_group == g
            within = (counts.mated_group_a == g) & (counts.mated_group_b == g)
            clusters.append(
                GroupClusters(
                    n_images=n_img.astype(np.float64),
                    pair_a=np.searchsorted(subjects, pair_a[sel]),
                    pair_b=np.searchsorted(subjects, pair_b[sel]),
                    pair_bin=pair_bin[sel],
                    mated_cluster=np.searchsorted(subjects, counts.mated_subject[within]),
                    mated_bin=counts.mated_bins[within],
                )
            )
        return cls(clusters, n_boot, seed)

    def fmr(self, g: int, k: int) -> np.ndarray:
        """FMR of group ``g`` at bin index ``k`` in each resample (NaN where a resample has no comparisons)."""
        if ("fmr", g, k) in self._memo:  # before building E again
            return self._memo["fmr", g, k]
        c = self.clusters[g]
        n, size = c.n_images, len(c.n_images)
        hit = c.pair_bin >= k
        e = sparse.csr_matrix(
            (np.ones(int(hit.sum())), (c.pair_a[hit], c.pair_b[hit])), shape=(size, size)
        )  # duplicates (several image pairs of two subjects) are summed

        def sums(w: np.ndarray) -> tuple[np.ndarray | float, np.ndarray]:
            errors = np.einsum("bs,sb->b", w, e @ w.T) if e.nnz else 0.0
            return errors, ((w @ n) ** 2 - (w**2) @ (n**2)) / 2

        return self._resampled(("fmr", g, k), sums)

    def fnmr(self, g: int, k: int) -> np.ndarray:
        """FNMR of group ``g`` at bin index ``k`` in each resample (NaN where a resample has no mated pair)."""
        c = self.clusters[g]
        size = len(c.n_images)
        mated = np.bincount(c.mated_cluster, minlength=size).astype(np.float64)
        errors = np.bincount(c.mated_cluster, weights=(c.mated_bin < k), minlength=size)
        return self._resampled(("fnmr", g, k), lambda w: (w @ errors, w @ mated))

    def _resampled(self, key: tuple[str, int, int], sums) -> np.ndarray:
        """errors / trials in each resample, ``sums(w)`` giving both for a block of weights (memoised by ``key``:
        a ratio asks again for rates already drawn)."""
        if key not in self._memo:
            weights = self.clusters[key[1]].weights
            assert weights is not None
            num, den = np.empty(self.n_boot), np.empty(self.n_boot)
            for lo in range(0, self.n_boot, CHUNK):
                num[lo : lo + CHUNK], den[lo : lo + CHUNK] = sums(weights[lo : lo + CHUNK].astype(np.float64))
            with np.errstate(invalid="ignore", divide="ignore"):
                self._memo[key] = np.where(den > 0, num / den, np.nan)
        return self._memo[key]

    def interval(self, values: np.ndarray) -> Interval:
        """Percentile interval of resampled values (NaN resamples dropped; ``high`` inf when unbounded)."""
        v = values[~np.isnan(values)]
        if len(v) == 0:
            return Interval(None, None, "")
        p = [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2]
        if np.isinf(v).any():  # no interpolation towards an unbounded resample (inf − inf is NaN)
            lo, hi = float(np.quantile(v, p[0], method="lower")), float(np.quantile(v, p[1], method="higher"))
        else:
            lo, hi = (float(x) for x in np.quantile(v, p))
        return Interval(lo, hi, f"{METHOD}, {self.n_boot} resamples")

    def ratio(self, rate: str, hi_g: int, lo_g: int, k: int) -> Interval:
        """Interval of ``rate``(hi_g) / ``rate``(lo_g) at ``k``: the ratio's own uncertainty (inf: 0 errors)."""
        f = self.fmr if rate == "fmr" else self.fnmr
        num, den = f(hi_g, k), f(lo_g, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / den, np.where(num > 0, np.inf, np.nan))
        return self.interval(r)


def _weights(rng: np.random.Generator, size: int, n_boot: int) -> np.ndarray:
    """``w[b, s]``: how many times subject s was drawn in resample b (draws of ``size`` from ``size``).

    One ``rng.integers`` call per :data:`CHUNK` resamples: the same stream as one call per resample."""
    w = np.zeros((n_boot, size), np.uint8)  # a subject is drawn a few times at most (≪ 255)
    if size == 0:
        return w
    for lo in range(0, n_boot, CHUNK):
        m = min(CHUNK, n_boot - lo)
        draws = rng.integers(0, size, (m, size)) + (np.arange(m) * size)[:, None]
        w[lo : lo + m] = np.minimum(np.bincount(draws.ravel(), minlength=m * size), 255).reshape(m, size)
    return w
