"""The streaming comparator: every pair of templates, in blocks, into fixed-width score histograms.

Non-mated comparison scores are never stored one by one. Each (group_a, group_b) cell gets a histogram over a
fixed grid of score bins (:mod:`faceaudit.audit.grid`), so memory stays flat as N grows. Mated scores are few
and are kept exactly.

The unit of work is one block of the score matrix: :func:`compare_block` turns the rows ``[r0, r1)`` against
the columns ``[c0, c1)`` of :func:`sort_templates`' output into a :class:`BlockCounts`; a distributed audit
runs blocks anywhere and folds them with :meth:`BlockCounts.add`. :func:`compare_templates` does the same in
process, in slabs of a tile scored and binned by each thread while in cache (:mod:`faceaudit.audit.comparator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit.audit.counts import ComparisonCounts, count_scores
from faceaudit.audit.grid import COSINE_BIN_WIDTH, ScoreGrid
from faceaudit.errors import FaceAuditError, InputError, UsageError

__all__ = [
    "BLOCK",
    "COSINE_BIN_WIDTH",
    "BlockCounts",
    "ComparisonCounts",
    "ScoreGrid",
    "SortedTemplates",
    "compare_block",
    "count_scores",
    "sort_templates",
]

BLOCK = 2048
"""Rows (and columns) of one tile of the score matrix."""

SLAB_ROWS = 256
"""Rows of one GEMM call: a 256 × 2048 float64 slab (4 MiB) stays in cache between its DGEMM and its binning
(:mod:`faceaudit.audit.comparator`); :func:`score_tile` makes the same calls, so both round alike on any BLAS."""
Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class SortedTemplates:
    """Templates ready for tiling: sorted by group (unlabelled last), L2-normalised and augmented.

    ``rows[i] = [x_i/w, -lo/w]`` and ``cols[j] = [x_j, 1]`` in float64, so that one DGEMM yields the bin
    coordinate ``s/w - lo/w`` of every score directly; its integer part is the bin (the arithmetic of
    :meth:`ScoreGrid.quantise`). ``code`` is each row's group (``n_groups`` for no
    label), ``seg[g]`` the first row of group g, and ``order[i]`` the caller's index of row i.
    """

    rows: np.ndarray
    cols: np.ndarray
    code: np.ndarray
    subject: np.ndarray
    seg: np.ndarray
    groups: tuple[str, ...]
    grid: ScoreGrid
    order: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.code)

    def spans(self, block: int = BLOCK) -> list[Span]:
        """Row ranges of at most ``block`` rows that never straddle a group boundary."""
        n_codes = len(self.groups) + 1
        return [
            (a, min(int(self.seg[g + 1]), a + block))
            for g in range(n_codes)
            for a in range(int(self.seg[g]), int(self.seg[g + 1]), block)
        ]

    def tiles(self, block: int = BLOCK) -> list[tuple[Span, Span]]:
        """Every block of the upper triangle of the score matrix, as (rows, cols) ranges, in a fixed order."""
        s = self.spans(block)
        return [(s[i], s[j]) for i in range(len(s)) for j in range(i, len(s))]


def sort_templates(
    templates: np.ndarray,
    group_index: Sequence[int] | np.ndarray,
    subject: Sequence[int] | np.ndarray,
    groups: Sequence[str],
    grid: ScoreGrid | None = None,
) -> SortedTemplates:
    """Check, normalise, sort by group and augment ``templates`` for :func:`compare_block`."""
    grid = grid or ScoreGrid.cosine()
    if not grid.higher_is_better:
        raise UsageError("template comparisons are similarities: give a higher-is-better score grid")
    x = np.asarray(templates, np.float64)
    n = len(x)
    gi = np.asarray(group_index, np.intp)
    subj = np.asarray(subject, np.intp)
    if gi.shape != (n,) or subj.shape != (n,):
        raise UsageError(
            f"{n} templates need one group index and one subject each; got {gi.shape[0]} group indices "
            f"and {subj.shape[0]} subjects"
        )
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InputError(
            "templates", "a template is all zeros (a failed image); drop failures before comparing"
        )
    n_groups = len(groups)
    code = np.where(gi < 0, n_groups, gi)
    order = np.argsort(code, kind="stable")
    # the two augmented copies are the only N-sized allocations (filled in chunks: no full temporary)
    cols = np.empty((n, x.shape[1] + 1), np.float64)
    for i in range(0, n, 8192):
        idx = order[i : i + 8192]
        np.divide(x[idx], norms[idx], out=cols[i : i + 8192, :-1])
    cols[:, -1] = 1.0
    rows = np.empty_like(cols)
    np.multiply(cols[:, :-1], 1.0 / grid.width, out=rows[:, :-1])
    rows[:, -1] = -grid.lo / grid.width
    code = code[order]
    seg = np.searchsorted(code, np.arange(n_groups + 2), side="left")
    return SortedTemplates(rows, cols, code, subj[order], seg, tuple(groups), grid, order)


Cell = tuple[int, int]


@dataclass(slots=True)
class BlockCounts:
    """What blocks of the score matrix add up to.

    ``cells[(a, b)]`` (a <= b, group codes with unlabelled last) counts the non-mated scores of that group
    pair per bin; its extra last bin counts the masked entries (self-pairs, the lower triangle, mated pairs),
    of which there must be exactly ``masked``. ``mated`` lists (bin coordinate, code a, code b, subject)
    arrays, one per block that had mated pairs.
    """

    cells: dict[Cell, np.ndarray] = field(default_factory=dict)
    masked: int = 0
    mated: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def add(self, other: BlockCounts) -> BlockCounts:
        """Fold ``other`` into this one (in place) and return it."""
        for cell, h in other.cells.items():
            if cell in self.cells:
                self.cells[cell] += h
            else:
                self.cells[cell] = h.copy()
        self.masked += other.masked
        self.mated.extend(other.mated)
        return self

    def to_counts(self, st: SortedTemplates) -> ComparisonCounts:
        """The :class:`ComparisonCounts` of every block added so far (call once all are in)."""
        n_bins, n_groups = st.grid.n_bins, len(st.groups)
        hist = np.zeros((n_groups + 1, n_groups + 1, n_bins + 1), np.int64)
        for (a, b), h in self.cells.items():
            hist[a, b] = h
        dropped = int(hist[..., n_bins].sum())
        if dropped != self.masked:
            raise FaceAuditError(
                f"internal error: {dropped - self.masked} scores fell outside the score grid [-1, 1]"
            )
        if self.mated:
            coords, m_a, m_b, m_subj = (np.concatenate(parts) for parts in zip(*self.mated, strict=True))
            canon = np.lexsort((coords, m_subj, m_b, m_a))  # one order, whatever order the blocks came in
            coords, m_a, m_b, m_subj = coords[canon], m_a[canon], m_b[canon], m_subj[canon]
        else:
            coords = np.zeros(0, np.float64)
            m_a = m_b = m_subj = np.zeros(0, np.intp)
        offset, scale = -st.grid.lo / st.grid.width, 1.0 / st.grid.width
        lo_g, hi_g, unl = np.minimum(m_a, m_b), np.maximum(m_a, m_b), n_groups
        unlabelled = hist[:, unl, :n_bins].sum(axis=0) + hist[unl, :unl, :n_bins].sum(axis=0)
        return ComparisonCounts(
            grid=st.grid,
            groups=list(st.groups),
            non_mated=np.ascontiguousarray(hist[:n_groups, :n_groups, :n_bins]),
            mated_scores=(coords - offset) / scale,
            mated_bins=coords.astype(np.intp),
            mated_group_a=np.where(lo_g == unl, -1, lo_g),
            mated_group_b=np.where(hi_g == unl, -1, hi_g),
            mated_subject=m_subj,
            non_mated_unlabelled=unlabelled,
        )


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


def score_tile(
    st: SortedTemplates, rows: Span, cols: Span, out: np.ndarray
) -> tuple[np.ndarray, int, tuple[np.ndarray, ...] | None]:
    """Bin coordinates of one tile into ``out``, with masked entries set past the last bin.

    Returns ``(tile, masked, mated)``: the tile (a view of ``out``), how many entries were masked, and the
    tile's mated comparisons (bin coordinate, code a, code b, subject), or None.
    """
    (r0, r1), (c0, c1) = rows, cols
    sentinel = st.grid.n_bins + 0.5
    v = out[: r1 - r0, : c1 - c0]
    for a in range(r0, r1, SLAB_ROWS):  # the comparator's GEMMs, call for call: the same rounding on any BLAS
        b, cs = min(r1, a + SLAB_ROWS), a if c0 == r0 else c0
        np.matmul(st.rows[a:b], st.cols[cs:c1].T, out=v[a - r0 : b - r0, cs - c0 :])
    masked = 0
    if c0 == r0:  # diagonal tile: keep j > i only
        lower = np.tri(r1 - r0, c1 - c0, dtype=bool)
        np.copyto(v, sentinel, where=lower)
        masked += int(np.count_nonzero(lower))
    sr, sc = st.subject[r0:r1], st.subject[c0:c1]
    common = np.intersect1d(sr, sc)
    mated = None
    if len(common):
        ri = np.flatnonzero(np.isin(sr, common))
        ci = np.flatnonzero(np.isin(sc, common))
        pr, pc = _same_subject_pairs(sr, sc, ri, ci)
        keep = (pr + r0) < (pc + c0)
        pr, pc = pr[keep], pc[keep]
        if len(pr):
            mated = (v[pr, pc].copy(), st.code[pr + r0], st.code[pc + c0], sr[pr])
            v[pr, pc] = sentinel
            masked += len(pr)
    return v, masked, mated


def bin_tile(
    st: SortedTemplates, v: np.ndarray, rows: Span, cols: Span, lo: int, hi: int
) -> dict[Cell, np.ndarray]:
    """Histograms (bins + 1) per group-code cell of rows ``[lo, hi)`` of tile ``v`` at (rows, cols)."""
    (r0, _), (c0, c1) = rows, cols
    n_bins, seg, code = st.grid.n_bins, st.seg, st.code
    out: dict[Cell, np.ndarray] = {}
    r1 = r0 + hi
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
            h = np.bincount(part.ravel(), minlength=n_bins + 1)
            if len(h) > n_bins + 1:
                raise FaceAuditError("internal error: a score fell outside the cosine grid")
            cell = (int(min(ga, gb)), int(max(ga, gb)))
            out[cell] = out[cell] + h if cell in out else h
    return out


def compare_block(st: SortedTemplates, rows: Span, cols: Span) -> BlockCounts:
    """Compare the templates in ``rows`` with those in ``cols`` (one of :meth:`SortedTemplates.tiles`).

    The unit a distributed audit sends to a worker: it needs only ``st`` and two ranges, and returns
    histograms and the block's mated scores, which :meth:`BlockCounts.add` folds together.
    """
    buf = np.empty((rows[1] - rows[0], cols[1] - cols[0]), np.float64)
    v, masked, mated = score_tile(st, rows, cols, buf)
    cells = bin_tile(st, v, rows, cols, 0, rows[1] - rows[0])
    return BlockCounts(cells, masked, [mated] if mated is not None else [])


def pairs_in(rows: Span, cols: Span) -> int:
    """The comparisons in one tile (a diagonal tile holds each unordered pair once, and no self-pair)."""
    h, w = rows[1] - rows[0], cols[1] - cols[0]
    return h * (h - 1) // 2 if cols[0] == rows[0] else h * w


def at_or_above(v: np.ndarray, rows: Span, cols: Span, coord: float, n_bins: int) -> tuple[np.ndarray, ...]:
    """Sorted-template indices ``(a, b)`` and coordinates of every unmasked entry of tile ``v`` (of
    :func:`score_tile`, at ``rows``, ``cols``) whose bin coordinate is at least ``coord``."""
    i, j = np.nonzero((v >= coord) & (v < n_bins))
    return i + rows[0], j + cols[0], v[i, j]


def fold_blocks(st: SortedTemplates, blocks: Iterable[BlockCounts]) -> ComparisonCounts:
    """:class:`ComparisonCounts` from blocks computed elsewhere (e.g. one Dask task per tile)."""
    total = BlockCounts()
    for b in blocks:
        total.add(b)
    return total.to_counts(st)
