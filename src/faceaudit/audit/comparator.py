"""The in-process comparator: every thread scores a slab of the score matrix and bins it while it is in cache.

A slab is :data:`SLAB_ROWS` rows of one tile (:meth:`~faceaudit.audit.scores.SortedTemplates.tiles`) against
the tile's columns: one single-threaded DGEMM, then the mask (the lower triangle of a diagonal tile, mated
pairs), one ``bincount`` into the thread's own histogram of the slab's group pair, and, while the slab is
still in cache, the pairs that later steps need (:class:`Keep`):

- the same-group non-mated pairs at or above the bin that the overall FMR target ``fmr`` can reach, for the
  subject-clustered bootstrap (:mod:`faceaudit.audit.bootstrap`). That bin is not known until every pair is
  counted, so each thread keeps what lies at or above a floor it can prove: the lowest bin ``k`` whose
  count of its own scores at or above ``k`` is within ``fmr`` × all pairs. The final threshold index can only
  lie at or above every thread's floor (more scores only raise it), so nothing the bootstrap needs is dropped,
  and a thread holds about ``fmr`` × pairs of them at a time;
- every non-mated pair that scores at or above ``score`` (the label check of
  :mod:`faceaudit.audit.label_errors`).

The histograms are integer counts and the mated scores are put in one canonical order, so the counts equal
those of :func:`~faceaudit.audit.scores.compare_block` folded over every tile (and of a Dask run).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from faceaudit.audit.counts import ComparisonCounts
from faceaudit.audit.grid import ScoreGrid
from faceaudit.audit.scores import BLOCK, SLAB_ROWS, BlockCounts, Cell, SortedTemplates, Span, sort_templates
from faceaudit.errors import FaceAuditError

BLAS_THREADS = 1
"""BLAS threads of each comparator thread (and of each Dask task, which then rounds the same)."""
KEEP_LIMIT = 20_000_000
"""Most same-group pairs the bootstrap may keep (``fmr`` × pairs); above it the bootstrap rescans instead."""
EDGE = 1e-6
"""Margin, in bins, below the label-check score (a DGEMM's rounding is ~1e-10 bins): candidates are rescored."""


@dataclass(frozen=True, slots=True)
class Keep:
    """What to keep besides the histograms: ``fmr`` (an overall FMR target) and ``score`` (a raw score)."""

    fmr: float | None = None
    score: float | None = None


@dataclass(slots=True)
class KeptPairs:
    """Pairs of sorted-template indices (``a`` < ``b``) with their bin coordinates (bin = floor(coord)).

    ``same_group`` holds every same-group non-mated pair with bin >= ``floor``; ``above`` every non-mated pair
    whose coordinate is at least that of ``score``, less :data:`EDGE` (``score`` None: none were kept).
    """

    floor: int | None
    same_group: tuple[np.ndarray, np.ndarray, np.ndarray]
    score: float | None
    above: tuple[np.ndarray, np.ndarray, np.ndarray]


def score_coordinate(grid: ScoreGrid, score: float) -> float:
    """The bin coordinate of a raw cosine ``score``, in the DGEMM's arithmetic (``s·(1/w) + (−lo/w)``)."""
    return score * (1.0 / grid.width) + (-grid.lo / grid.width)


def no_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An empty ``(a, b, coordinate)`` triple."""
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)


@dataclass(slots=True)
class _Slab:
    rows: Span
    cols: Span
    diagonal: bool  # rows and cols in one span: keep col > row only


@dataclass
class _Thread:
    """One thread's sums: histograms per cell (bins + 1: the last counts masked entries), mated, kept pairs."""

    cells: dict[Cell, np.ndarray] = field(default_factory=dict)
    total: np.ndarray | None = None
    masked: int = 0
    mated: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    floor: int = 0
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    n_kept: int = 0
    above: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def _slabs(st: SortedTemplates, block: int) -> tuple[list[_Slab], np.ndarray, np.ndarray, np.ndarray]:
    """The slabs in tile order; ``table[chunk, span]`` the slab of a row chunk against a column span (-1: none),
    ``chunk_start`` the first row of each row chunk and ``span_start`` that of each span."""
    spans = st.spans(block)
    starts = [a for r0, r1 in spans for a in range(r0, r1, SLAB_ROWS)]
    table = np.full((len(starts), len(spans)), -1, np.intp)
    out: list[_Slab] = []
    chunk = 0
    for i, (r0, r1) in enumerate(spans):
        n_chunks = len(range(r0, r1, SLAB_ROWS))
        for j in range(i, len(spans)):
            c0, c1 = spans[j]
            for k, a in enumerate(range(r0, r1, SLAB_ROWS)):
                table[chunk + k, j] = len(out)
                out.append(_Slab((a, min(r1, a + SLAB_ROWS)), (a, c1) if i == j else (c0, c1), i == j))
        chunk += n_chunks
    return out, table, np.asarray(starts, np.intp), np.asarray([r0 for r0, _ in spans], np.intp)


def _mated_pairs(subject: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of indices ``a < b`` with ``subject[a] == subject[b]``."""
    order = np.argsort(subject, kind="stable")
    s = subject[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, np.intp)
    sizes = np.diff(np.r_[starts, len(s)])
    a_parts, b_parts = [np.zeros(0, np.intp)], [np.zeros(0, np.intp)]
    for m in np.unique(sizes[sizes > 1]):
        first = starts[sizes == m]
        iu, ju = np.triu_indices(int(m), 1)
        a_parts.append(order[(first[:, None] + iu[None, :]).ravel()])
        b_parts.append(order[(first[:, None] + ju[None, :]).ravel()])
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    return np.minimum(a, b), np.maximum(a, b)


def _mated_by_slab(
    subject: np.ndarray, table: np.ndarray, chunk_start: np.ndarray, span_start: np.ndarray
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Every mated pair (sorted indices a < b), grouped by the slab that holds it (the tables of :func:`_slabs`)."""
    a, b = _mated_pairs(subject)
    if not len(a):
        return {}
    slab = table[np.searchsorted(chunk_start, a, "right") - 1, np.searchsorted(span_start, b, "right") - 1]
    if (slab < 0).any():
        raise FaceAuditError("internal error: a mated pair fell outside every slab")
    o = np.argsort(slab, kind="stable")
    bounds = np.flatnonzero(np.r_[True, slab[o][1:] != slab[o][:-1]])
    return {
        int(slab[o[s]]): (a[o[s:e]], b[o[s:e]])
        for s, e in zip(bounds, np.r_[bounds[1:], len(o)], strict=True)
    }


def _floor(total: np.ndarray, allowed: int) -> int:
    """The lowest bin k whose count of scores at or above k is within ``allowed``."""
    ge = np.cumsum(total[::-1])[::-1]
    return int(np.searchsorted(-ge, -allowed, side="left"))


class _Run:
    """One comparison: slabs handed out to threads in order, each thread summing into its own :class:`_Thread`."""

    def __init__(self, st: SortedTemplates, keep: Keep, block: int) -> None:
        self.st = st
        self.slabs, table, chunk_start, span_start = _slabs(st, block)
        self.mated = _mated_by_slab(st.subject, table, chunk_start, span_start)
        self.n_bins = st.grid.n_bins
        n = st.n
        self.allowed: int | None = None
        if keep.fmr is not None and keep.fmr * n * (n - 1) / 2 <= KEEP_LIMIT:
            self.allowed = int(np.floor(keep.fmr * (n * (n - 1) // 2) + 1e-9))
        self.above: float | None = None
        if keep.score is not None:
            self.above = score_coordinate(st.grid, keep.score) - EDGE
        self._next = 0
        self._lock = threading.Lock()
        self.done = 0
        self.stop = False

    def take(self) -> int | None:
        with self._lock:
            if self.stop or self._next >= len(self.slabs):
                return None
            self._next += 1
            return self._next - 1

    def work(self, t: _Thread) -> None:
        """Take slabs until none is left (BLAS limited to one thread by the caller)."""
        buf = np.empty((SLAB_ROWS, BLOCK), np.float64)
        bins = np.empty((SLAB_ROWS, BLOCK), np.intp)  # reused: no page faults of a fresh array per slab
        while (i := self.take()) is not None:
            sl = self.slabs[i]
            width = sl.cols[1] - sl.cols[0]
            if buf.shape[1] < width:
                buf = np.empty((SLAB_ROWS, width), np.float64)
                bins = np.empty((SLAB_ROWS, width), np.intp)
            pairs = self.slab(t, i, sl, buf, bins)
            with self._lock:
                self.done += pairs

    def slab(self, t: _Thread, i: int, sl: _Slab, buf: np.ndarray, bins: np.ndarray) -> int:
        st, n_bins = self.st, self.n_bins
        (r0, r1), (c0, c1) = sl.rows, sl.cols
        v = buf[: r1 - r0, : c1 - c0]
        np.matmul(st.rows[r0:r1], st.cols[c0:c1].T, out=v)
        sentinel = n_bins + 0.5
        masked = 0
        if sl.diagonal:  # col index <= row index: the lower triangle and the diagonal
            tri = np.tri(r1 - r0, min(c1 - c0, r1 - r0), dtype=bool)
            np.copyto(v[:, : tri.shape[1]], sentinel, where=tri)
            masked += int(np.count_nonzero(tri))
        pairs = v.size - masked
        if i in self.mated:
            a, b = self.mated[i]
            pr, pc = a - r0, b - c0
            t.mated.append((v[pr, pc].copy(), st.code[a], st.code[b], st.subject[a]))
            v[pr, pc] = sentinel
            masked += len(a)
        b = bins[: r1 - r0, : c1 - c0]
        np.copyto(b, v, casting="unsafe")  # truncation: the bin (every coordinate is positive)
        flat = b.ravel()
        h = np.bincount(flat, minlength=n_bins + 1)
        if len(h) > n_bins + 1:
            raise FaceAuditError("internal error: a score fell outside the cosine grid")
        ga, gb = int(st.code[r0]), int(st.code[c0])
        cell = (min(ga, gb), max(ga, gb))
        if cell in t.cells:
            t.cells[cell] += h
        else:
            t.cells[cell] = h
        t.masked += masked
        if self.allowed is not None:
            self._keep_same_group(t, v, flat, sl, h, ga, gb)
        if self.above is not None and h[int(np.floor(self.above)) : n_bins].any():
            i_, j_, c = _at_or_above(v, flat, int(np.floor(self.above)), n_bins)
            sel = c >= self.above
            t.above.append((i_[sel] + r0, j_[sel] + c0, c[sel]))
        return pairs

    def _keep_same_group(
        self, t: _Thread, v: np.ndarray, flat: np.ndarray, sl: _Slab, h: np.ndarray, ga: int, gb: int
    ) -> None:
        assert self.allowed is not None
        n_bins = self.n_bins
        if t.total is None:
            t.total = h[:n_bins].copy()
        else:
            t.total += h[:n_bins]
        t.floor += _floor(t.total[t.floor :], self.allowed)  # the floor only rises: search above it
        if ga != gb or ga >= len(self.st.groups) or not h[t.floor : n_bins].any():
            return
        i_, j_, c = _at_or_above(v, flat, t.floor, n_bins)
        t.kept.append((i_ + sl.rows[0], j_ + sl.cols[0], c))
        t.n_kept += len(i_)
        if t.n_kept > 2 * self.allowed + v.size:  # drop what the floor has since passed
            t.kept = [(a[c >= t.floor], b[c >= t.floor], c[c >= t.floor]) for a, b, c in t.kept]
            t.n_kept = sum(len(a) for a, _, _ in t.kept)


def _at_or_above(v: np.ndarray, flat: np.ndarray, k: int, n_bins: int) -> tuple[np.ndarray, ...]:
    """Row, column and coordinate of every unmasked entry of slab ``v`` whose bin (``flat``: its bins, raveled)
    is at least ``k``: one integer compare over the slab, then only the few hits (masked entries are bin
    ``n_bins``)."""
    idx = np.flatnonzero(flat >= k)
    idx = idx[flat[idx] < n_bins]
    i_, j_ = np.divmod(idx, v.shape[1])
    return i_, j_, v[i_, j_]


def join_pairs(
    parts: Sequence[tuple[np.ndarray, ...]], floor: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``(a, b, coordinate)`` triple from ``parts``, in their order (int64 indices), keeping the
    coordinates at or above ``floor`` (None: all)."""
    if not parts:
        return no_pairs()
    a, b, c = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if floor is not None:
        sel = c >= floor
        a, b, c = a[sel], b[sel], c[sel]
    return a.astype(np.int64), b.astype(np.int64), c


def compare_sorted(
    st: SortedTemplates,
    *,
    keep: Keep = Keep(),
    block: int = BLOCK,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[ComparisonCounts, KeptPairs]:
    """Compare every pair of sorted templates ``st`` in ``threads`` threads; the counts and the kept pairs."""
    run = _Run(st, keep, block)
    n_threads = max(1, threads or os.cpu_count() or 1)
    sums = [_Thread() for _ in range(n_threads)]
    reported = 0
    # one BLAS thread per comparator thread, set once for the whole run (the limit is process-wide)
    with threadpool_limits(BLAS_THREADS, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(run.work, t) for t in sums]
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                for f in finished:
                    f.result()  # a thread's error stops the run (finally) and is raised here
                if progress and run.done > reported:
                    done = run.done
                    progress(done - reported)
                    reported = done
        finally:
            run.stop = True  # on an error or an interrupt, the other threads stop after their slab
    total = BlockCounts()
    for t in sums:
        total.add(BlockCounts(t.cells, t.masked, t.mated))
    counts = total.to_counts(st)
    floor = max(t.floor for t in sums) if run.allowed is not None else None
    kept = KeptPairs(
        floor=floor,
        same_group=join_pairs([p for t in sums for p in t.kept], floor) if floor is not None else no_pairs(),
        score=keep.score,
        above=join_pairs([p for t in sums for p in t.above], run.above or 0.0),
    )
    return counts, kept


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
    pairs done as the work goes on. Memory: the templates plus O(block) per thread plus the histograms,
    whatever N is.

    The same counts as folding :func:`compare_block` over every tile; the work runs in ``threads`` threads
    (default: one per CPU), each scoring and binning slabs of a tile (:func:`compare_sorted`).
    """
    st = sort_templates(templates, group_index, subject, groups, grid)
    counts, _ = compare_sorted(st, block=block, threads=threads, progress=progress)
    return counts
