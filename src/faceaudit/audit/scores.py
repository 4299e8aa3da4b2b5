"""The streaming comparator: every pair of templates, in blocks, into fixed-width score histograms.

Non-mated comparison scores are never stored one by one. Each (group_a, group_b) cell gets a histogram over a
fixed grid of score bins, so memory stays flat as N grows. Mated scores are few and are kept exactly.

Scores are quantised by :meth:`ScoreGrid.quantise`, and a comparison is a match at threshold index ``k`` when
its bin index is ``>= k``. Thresholds are therefore bin lower edges, exact to one bin width.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from faceaudit.errors import FaceAuditError, InputError

COSINE_BIN_WIDTH = 1e-4
"""Bin width of the cosine-similarity grid: reported thresholds are exact to this width."""

BLOCK = 2048
"""Rows (and columns) of one tile of the score matrix."""


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

    @classmethod
    def cosine(cls, width: float = COSINE_BIN_WIDTH) -> ScoreGrid:
        """Cosine similarity in [-1, 1], with one spare bin at each end."""
        n = int(round(2.0 / width)) + 3
        return cls(lo=-1.0 - width, width=width, n_bins=n)

    @classmethod
    def from_scores(
        cls, scores: np.ndarray, n_bins: int = 20_000, higher_is_better: bool = True
    ) -> ScoreGrid:
        """A grid that spans the observed ``scores`` with ``n_bins`` bins (vendor scores of any range)."""
        s = np.asarray(scores, np.float64)
        if not higher_is_better:
            s = -s
        lo, hi = float(s.min()), float(s.max())
        span = hi - lo
        width = span / n_bins if span > 0 else 1e-6
        # A decimal-looking width makes the reported thresholds readable; round it down to 2 significant digits.
        exp = np.floor(np.log10(width))
        width = float(np.floor(width / 10**exp * 10) / 10 * 10**exp)
        lo = float(np.floor(lo / width) * width) - width
        n = int(np.ceil((hi - lo) / width)) + 3
        return cls(lo=lo, width=width, n_bins=n, higher_is_better=higher_is_better)

    def quantise(self, scores: np.ndarray) -> np.ndarray:
        """Bin index (intp) of each score. The one quantisation used everywhere, reference tests included."""
        x = np.asarray(scores, np.float32)
        if not self.higher_is_better:
            x = -x
        x = x * np.float32(1.0 / self.width) + np.float32(-self.lo / self.width)
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
            "note": f"thresholds are bin lower edges, exact to one bin width ({self.width:g})",
        }


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

    @property
    def n_groups(self) -> int:
        return len(self.groups)

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


def _segments(sorted_codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Start offsets of each group's run in ``sorted_codes`` (length n_groups + 1)."""
    return np.searchsorted(sorted_codes, np.arange(n_groups + 1), side="left")


def _same_subject_pairs(sr: np.ndarray, sc: np.ndarray, ri: np.ndarray, ci: np.ndarray):
    """(row, col) positions with ``sr[row] == sc[col]`` among rows ``ri`` and cols ``ci``, by sorting."""
    o = np.argsort(sc[ci], kind="stable")
    cs = sc[ci][o]
    lo = np.searchsorted(cs, sr[ri], "left")
    cnt = np.searchsorted(cs, sr[ri], "right") - lo
    total = int(cnt.sum())
    rows = np.repeat(ri, cnt)
    starts = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
    return rows, ci[o[starts]]


def compare_templates(
    templates: np.ndarray,
    group_index: Sequence[int] | np.ndarray,
    subject: Sequence[int] | np.ndarray,
    groups: list[str],
    *,
    grid: ScoreGrid | None = None,
    block: int = BLOCK,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ComparisonCounts:
    """Compare every unordered pair of ``templates`` (rows L2-normalised here) in tiles of ``block``².

    ``group_index[i]`` is the group of template i (-1: no label), ``subject[i]`` an integer subject code (give
    each image without a subject id a code of its own). Pairs with the same subject are mated; their scores are
    kept exactly and left out of the non-mated histograms. ``progress(n)`` is called with the number of
    pairs done after each tile. Memory: the templates plus O(block²) plus the histograms, whatever N is.

    Each tile is one SGEMM of augmented templates, ``[x·(1/w), -lo/w] · [y, 1]``, so that it yields the bin
    coordinate ``s/w - lo/w`` directly; its integer part is the bin (the arithmetic of
    :meth:`ScoreGrid.quantise`, up to float32 rounding). Binning runs in ``threads`` threads while the next
    SGEMM runs.
    """
    grid = grid or ScoreGrid.cosine()
    if not grid.higher_is_better:
        raise FaceAuditError("template comparisons are similarities; use a higher-is-better grid")
    x = np.asarray(templates, np.float32)
    n = len(x)
    gi = np.asarray(group_index, np.intp)
    subj = np.asarray(subject, np.intp)
    if gi.shape != (n,) or subj.shape != (n,):
        raise FaceAuditError("group_index and subject must have one entry per template")
    n_groups = len(groups)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InputError(
            "templates", "a template is all zeros (a failed image); drop failures before comparing"
        )
    # Sort by group (unlabelled, coded n_groups, last) so each tile splits into few (group_a, group_b) rectangles.
    code = np.where(gi < 0, n_groups, gi)
    order = np.argsort(code, kind="stable")
    code, subj = code[order], subj[order]
    scale = np.float32(1.0 / grid.width)
    offset = np.float32(-grid.lo / grid.width)
    # the two augmented copies are the only N-sized allocations (filled in chunks: no full temporary)
    cols_aug = np.empty((n, x.shape[1] + 1), np.float32)
    for i in range(0, n, 8192):
        idx = order[i : i + 8192]
        np.divide(x[idx], norms[idx], out=cols_aug[i : i + 8192, :-1])
    cols_aug[:, -1] = 1.0
    rows_aug = np.empty_like(cols_aug)
    np.multiply(cols_aug[:, :-1], scale, out=rows_aug[:, :-1])
    rows_aug[:, -1] = offset
    seg = _segments(code, n_groups + 1)
    n_bins = grid.n_bins
    trash = n_bins  # masked entries (self-pairs, lower triangle, mated pairs) are binned here and dropped
    sentinel = np.float32(n_bins + 0.5)
    hist = np.zeros((n_groups + 1, n_groups + 1, n_bins + 1), np.int64)
    mated: list[tuple[np.ndarray, ...]] = []
    n_threads = threads or min(4, os.cpu_count() or 1)
    buffers = [np.empty((block, block), np.float32) for _ in range(2)]
    tril = np.tri(min(block, n), dtype=bool)  # self-pairs and the lower triangle of diagonal tiles

    def bin_rows(v: np.ndarray, r0: int, c0: int, lo: int, hi: int) -> list[tuple[int, int, np.ndarray]]:
        """Histograms of rows [lo, hi) of tile ``v`` (origin r0, c0), one per (group_a, group_b) rectangle."""
        out = []
        r1, c1 = r0 + hi, c0 + v.shape[1]
        idx = v[lo:hi].astype(np.intp)
        for ga in range(code[r0 + lo], code[r1 - 1] + 1):
            ra, rb = max(seg[ga], r0 + lo) - r0 - lo, min(seg[ga + 1], r1) - r0 - lo
            if ra >= rb:
                continue
            for gb in range(code[c0], code[c1 - 1] + 1):
                ca, cb = max(seg[gb], c0) - c0, min(seg[gb + 1], c1) - c0
                if ca >= cb:
                    continue
                part = idx if (ra, rb, ca, cb) == (0, len(idx), 0, v.shape[1]) else idx[ra:rb, ca:cb]
                out.append((min(ga, gb), max(ga, gb), np.bincount(part.ravel(), minlength=n_bins + 1)))
        return out

    pending: list[tuple[list[Future], int]] = []

    def collect(item: tuple[list[Future], int]) -> None:
        futures, masked = item
        n_trash = 0
        for fut in futures:
            for a, b, h in fut.result():
                if len(h) > n_bins + 1:
                    raise FaceAuditError("internal error: a score fell outside the cosine grid")
                hist[a, b] += h
                n_trash += int(h[trash])
        if n_trash != masked:
            raise FaceAuditError(f"internal error: {n_trash - masked} scores fell outside [-1, 1]")

    # blocks never straddle a group boundary, so each tile is one (group_a, group_b) rectangle: one bincount
    bounds = [
        (a, min(seg[g + 1], a + block)) for g in range(n_groups + 1) for a in range(seg[g], seg[g + 1], block)
    ]
    tiles = [(bounds[i], bounds[j]) for i in range(len(bounds)) for j in range(i, len(bounds))]
    with ThreadPoolExecutor(n_threads) as pool:
        for t, ((r0, r1), (c0, c1)) in enumerate(tiles):
            if len(pending) >= len(buffers):
                collect(pending.pop(0))
            v = buffers[t % len(buffers)][: r1 - r0, : c1 - c0]
            np.matmul(rows_aug[r0:r1], cols_aug[c0:c1].T, out=v)
            masked = 0
            if c0 == r0:  # diagonal tile: keep j > i only
                lower = tril[: r1 - r0, : c1 - c0]
                np.copyto(v, sentinel, where=lower)
                masked += int(np.count_nonzero(lower))
            sr, sc = subj[r0:r1], subj[c0:c1]
            common = np.intersect1d(sr, sc)
            if len(common):
                ri = np.flatnonzero(np.isin(sr, common))
                ci = np.flatnonzero(np.isin(sc, common))
                rows, cols = _same_subject_pairs(sr, sc, ri, ci)
                keep = (rows + r0) < (cols + c0)
                rows, cols = rows[keep], cols[keep]
                if len(rows):
                    mated.append((v[rows, cols].copy(), code[rows + r0], code[cols + c0], sr[rows]))
                    v[rows, cols] = sentinel
                    masked += len(rows)
            step = -(-(r1 - r0) // n_threads)
            futures = [
                pool.submit(bin_rows, v, r0, c0, lo, min(lo + step, r1 - r0))
                for lo in range(0, r1 - r0, step)
            ]
            pending.append((futures, masked))
            if progress:
                h, w = r1 - r0, c1 - c0
                progress(h * (h - 1) // 2 if c0 == r0 else h * w)
        while pending:
            collect(pending.pop(0))

    if mated:
        coords = np.concatenate([m[0] for m in mated])
        m_ga = np.concatenate([m[1] for m in mated])
        m_gb = np.concatenate([m[2] for m in mated])
        m_subj = np.concatenate([m[3] for m in mated])
    else:
        coords = np.zeros(0, np.float32)
        m_ga = m_gb = m_subj = np.zeros(0, np.intp)
    lo_g, hi_g = np.minimum(m_ga, m_gb), np.maximum(m_ga, m_gb)
    unl = n_groups
    unlabelled = hist[:, unl, :n_bins].sum(axis=0) + hist[unl, :unl, :n_bins].sum(axis=0)
    return ComparisonCounts(
        grid=grid,
        groups=list(groups),
        non_mated=np.ascontiguousarray(hist[:n_groups, :n_groups, :n_bins]),
        mated_scores=((coords.astype(np.float64) - float(offset)) / float(scale)).astype(np.float32),
        mated_bins=coords.astype(np.intp),
        mated_group_a=np.where(lo_g == unl, -1, lo_g),
        mated_group_b=np.where(hi_g == unl, -1, hi_g),
        mated_subject=m_subj,
        non_mated_unlabelled=unlabelled,
    )


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
        mated_scores=scores[mated].astype(np.float32),
        mated_bins=bins[mated],
        mated_group_a=np.where(m_lo == unl, -1, m_lo),
        mated_group_b=np.where(m_hi == unl, -1, m_hi),
        mated_subject=(
            np.asarray(subject, np.intp)[mated] if subject is not None else np.arange(int(mated.sum()))
        ),
        non_mated_unlabelled=unlabelled.astype(np.int64),
    )


def false_matches_by_subject(
    templates: np.ndarray,
    group_index: Sequence[int] | np.ndarray,
    subject: Sequence[int] | np.ndarray,
    n_groups: int,
    bins: Sequence[int],
    *,
    grid: ScoreGrid | None = None,
    block: int = BLOCK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each subject's share of the same-group non-mated comparisons and false matches, for the bootstrap.

    A second pass over the tiles: for each threshold bin in ``bins``, every same-group non-mated pair with
    bin >= threshold counts once for each of its two subjects, and so does every such comparison. Returns
    one cluster per (subject, group): ``subjects`` (codes), ``group``, ``errors`` (clusters × thresholds)
    and ``trials`` (clusters). Same bin arithmetic as :func:`compare_templates`.
    """
    grid = grid or ScoreGrid.cosine()
    x = np.asarray(templates, np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    gi = np.asarray(group_index, np.intp)
    subj = np.asarray(subject, np.intp)
    n = len(x)
    ks = np.asarray(list(bins), np.float32)
    scale = np.float32(1.0 / grid.width)
    offset = np.float32(-grid.lo / grid.width)
    rows_aug = np.concatenate([x * scale, np.full((n, 1), offset, np.float32)], axis=1)
    cols_aug = np.concatenate([x, np.ones((n, 1), np.float32)], axis=1)
    per_image = np.zeros((n, len(ks)), np.int64)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        for c0 in range(r0, n, block):
            c1 = min(n, c0 + block)
            v = rows_aug[r0:r1] @ cols_aug[c0:c1].T
            valid = (gi[r0:r1, None] == gi[None, c0:c1]) & (gi[r0:r1, None] >= 0)
            valid &= subj[r0:r1, None] != subj[None, c0:c1]
            if c0 == r0:
                valid &= ~np.tri(r1 - r0, c1 - c0, dtype=bool)
            for t, k in enumerate(ks):
                hit = valid & (v >= k)
                per_image[r0:r1, t] += hit.sum(axis=1)
                per_image[c0:c1, t] += hit.sum(axis=0)
    # clusters: (subject, group) pairs of labelled images; each image in group g meets every image of g not
    # of its own subject
    labelled = gi >= 0
    group_size = np.bincount(gi[labelled], minlength=n_groups)
    keys = np.stack([subj[labelled], gi[labelled]])
    uniq, inv, own = np.unique(keys, axis=1, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    errors = np.zeros((uniq.shape[1], len(ks)), np.int64)
    np.add.at(errors, inv, per_image[labelled])
    trials = np.bincount(inv, weights=group_size[gi[labelled]] - own[inv], minlength=uniq.shape[1])
    return uniq[0], uniq[1], errors, trials.astype(np.int64)
