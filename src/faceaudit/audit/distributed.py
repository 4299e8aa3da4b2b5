"""The all-pairs comparison and the 1:N searches on a Dask cluster: the same blocks as in process, the same
counts, bit for bit.

:func:`compare_templates_dask` sorts the templates once (:func:`~faceaudit.audit.scores.sort_templates`),
scatters them to every worker once, and sends each task a run of consecutive tiles of the score matrix
(:meth:`~faceaudit.audit.scores.SortedTemplates.tiles`). A task folds its tiles as
:func:`~faceaudit.audit.scores.compare_block` does and returns histograms and mated scores, never scores one by
one, and the few pairs that the label check lists (:func:`compare_sorted_dask`); the bootstrap's false matches
come from a second round of tasks over the same-group tiles.
Histograms are integer counts, so the order in which they arrive does not matter; mated scores are joined in
tile order, as :func:`~faceaudit.audit.comparator.compare_templates` joins them.

Bit for bit, with one condition. BLAS may round differently with a different number of threads. The tiles
are DGEMMs (a score would need to lie within ~1e-12 of a bin edge to change bins) and the 1:N searches
re-score every float32 score near a deciding one in float64 (:mod:`faceaudit.audit.exact`), so in practice
the counts agree everywhere; each comparison task still runs its DGEMMs with one BLAS thread, as every thread of
the in-process comparator does (:data:`~faceaudit.audit.comparator.BLAS_THREADS`), and each search task with the
BLAS thread count of the calling process (through threadpoolctl), so on workers with the same BLAS build and CPU
kernel they agree bit for bit.

``address`` is a scheduler address (``tcp://host:8786``) or ``local:N`` for a LocalCluster of N worker
processes (one thread each) on 127.0.0.1, started and stopped around the call. dask.distributed is optional:
``pip install 'faceaudit[dask]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from faceaudit.audit.bootstrap import same_group_pairs
from faceaudit.audit.comparator import (
    BLAS_THREADS,
    EDGE,
    Keep,
    KeptPairs,
    join_pairs,
    no_pairs,
    score_coordinate,
)
from faceaudit.audit.identification import BLOCK as SEARCH_BLOCK
from faceaudit.audit.identification import DEFAULT_RANK, Searches, search
from faceaudit.audit.metrics import threshold_index
from faceaudit.audit.scores import (
    BLOCK,
    BlockCounts,
    ComparisonCounts,
    ScoreGrid,
    SortedTemplates,
    at_or_above,
    bin_tile,
    pairs_in,
    score_tile,
    sort_templates,
)
from faceaudit.dask_cluster import completed, dask_client, scatter_once, worker_memory
from faceaudit.errors import UsageError

TASKS_PER_THREAD = 4
"""Tasks per worker thread: enough for balance, few enough that transfers of histograms stay small."""


def blas_threads() -> int | None:
    """The calling process's BLAS thread count (None when threadpoolctl finds no BLAS)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _compare_tiles(
    st: SortedTemplates,
    tiles: Sequence[tuple[tuple[int, int], tuple[int, int]]],
    n_blas: int | None,
    above: float | None = None,
) -> tuple[BlockCounts, tuple[np.ndarray, ...]]:
    """One task: fold ``tiles`` (consecutive, in tile order) into one :class:`BlockCounts`, its DGEMMs run
    with ``n_blas`` BLAS threads (default 1, as the in-process comparator, for identical rounding); and every
    non-mated pair whose bin coordinate is at least ``above`` (the label check's, as the comparator keeps
    them), as sorted-template indices and coordinates."""
    from threadpoolctl import threadpool_limits

    n_bins = st.grid.n_bins
    total = BlockCounts()
    found = []
    with threadpool_limits(limits=n_blas, user_api="blas"):
        for rows, cols in tiles:
            buf = np.empty((rows[1] - rows[0], cols[1] - cols[0]), np.float64)
            v, masked, mated = score_tile(st, rows, cols, buf)
            cells = bin_tile(st, v, rows, cols, 0, rows[1] - rows[0])
            total.add(BlockCounts(cells, masked, [mated] if mated is not None else []))
            if above is not None and any(
                h[max(0, int(np.floor(above))) : n_bins].any() for h in cells.values()
            ):
                found.append(at_or_above(v, rows, cols, above, n_bins))
    return total, join_pairs(found)


def _same_group_pairs(
    st: SortedTemplates, tiles: Sequence[tuple[tuple[int, int], tuple[int, int]]], k: int, n_blas: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One task of the second pass: :func:`~faceaudit.audit.bootstrap.same_group_pairs` with ``n_blas``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_blas, user_api="blas"):
        return same_group_pairs(st, tiles, k)


def _task_runs(tiles: list, n_tasks: int) -> list[list]:
    """Split ``tiles`` into at most ``n_tasks`` runs of consecutive tiles with about equal pair counts."""
    weight = np.array([(r[1] - r[0]) * (c[1] - c[0]) for r, c in tiles], np.float64)
    cuts = np.searchsorted(np.cumsum(weight), np.linspace(0, weight.sum(), n_tasks + 1)[1:-1], side="right")
    bounds = [0, *sorted(set(int(c) for c in cuts)), len(tiles)]
    return [tiles[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def compare_templates_dask(
    templates: np.ndarray,
    group_index: Sequence[int] | np.ndarray,
    subject: Sequence[int] | np.ndarray,
    groups: list[str],
    *,
    client: Any = None,
    address: str | None = None,
    grid: ScoreGrid | None = None,
    block: int = BLOCK,
    tasks: int | None = None,
    n_blas: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ComparisonCounts:
    """:func:`~faceaudit.audit.comparator.compare_templates` on a Dask cluster (give ``client`` or ``address``).

    ``tasks`` defaults to :data:`TASKS_PER_THREAD` per worker thread. ``n_blas`` is the BLAS thread count of
    each task's DGEMMs (default :data:`~faceaudit.audit.comparator.BLAS_THREADS`, as in process, which makes
    the counts equal the in-process ones).
    ``progress(n)`` gets the pairs of each task as it finishes.
    """
    if client is None:
        if address is None:
            raise UsageError("compare_templates_dask needs a Dask client or a scheduler address")
        with dask_client(address) as c:
            return compare_templates_dask(
                templates,
                group_index,
                subject,
                groups,
                client=c,
                grid=grid,
                block=block,
                tasks=tasks,
                n_blas=n_blas,
                progress=progress,
            )
    st = sort_templates(templates, group_index, subject, groups, grid)
    counts, _ = compare_sorted_dask(
        st, client=client, block=block, tasks=tasks, n_blas=n_blas, progress=progress
    )
    return counts


def compare_sorted_dask(
    st: SortedTemplates,
    *,
    client: Any,
    keep: Keep | None = None,
    block: int = BLOCK,
    tasks: int | None = None,
    n_blas: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[ComparisonCounts, KeptPairs]:
    """:func:`~faceaudit.audit.comparator.compare_sorted` on a Dask cluster: the counts and the kept pairs.

    The label check's pairs (``keep.score``) come back with each task's histograms. The bootstrap's false matches
    (``keep.fmr``) lie at or above a threshold that is known only once every histogram is in, so a second round
    of tasks, over the same-group tiles only, returns the same-group pairs at or above the threshold bin of
    ``keep.fmr``: the work stays on the workers, and the client receives only the pairs it needs.
    """
    keep = keep or Keep()
    tiles = st.tiles(block)
    if not tiles:
        return BlockCounts().to_counts(st), KeptPairs(None, no_pairs(), keep.score, no_pairs())
    n_threads = sum(client.nthreads().values()) or 1
    runs = _task_runs(tiles, tasks or TASKS_PER_THREAD * n_threads)
    st_remote = scatter_once(client, st)  # once per worker, not once per task
    n_blas = n_blas or BLAS_THREADS  # as each thread of the in-process comparator: the same rounding
    # as the comparator: the label check's score as a bin coordinate, less a margin (its pairs are re-scored)
    above = None if keep.score is None else score_coordinate(st.grid, keep.score) - EDGE
    futures = [client.submit(_compare_tiles, st_remote, run, n_blas, above, pure=False) for run in runs]
    index = {f.key: i for i, f in enumerate(futures)}
    total = BlockCounts()
    mated: list[list] = [[] for _ in runs]
    found: list[tuple[np.ndarray, ...]] = [no_pairs() for _ in runs]
    for future, (part, hits) in completed(client, futures):
        i = index[future.key]
        mated[i], found[i] = part.mated, hits
        part.mated = []
        total.add(part)  # integer histograms: any arrival order gives the same sums
        if progress:
            progress(sum(pairs_in(r, c) for r, c in runs[i]))
        future.release()
    for m in mated:  # mated scores in tile order, as in process
        total.mated.extend(m)
    counts = total.to_counts(st)
    floor, same_group = None, no_pairs()
    k = threshold_index(counts.non_mated_total(), keep.fmr) if keep.fmr is not None else None
    if k is not None:
        floor, same_group = k, _second_round(client, st_remote, tiles, st, k, n_blas, n_threads, tasks)
    return counts, KeptPairs(floor, same_group, keep.score, join_pairs(found))


def _second_round(
    client: Any, st_remote: Any, tiles: list, st: SortedTemplates, k: int, n_blas: int, n_threads: int,
    tasks: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The same-group pairs at or above bin ``k``, from tasks over the same-group tiles, joined in tile order."""
    n_groups = len(st.groups)
    same = [(r, c) for r, c in tiles if st.code[r[0]] == st.code[c[0]] and st.code[r[0]] < n_groups]
    if not same:
        return no_pairs()
    runs = _task_runs(same, tasks or TASKS_PER_THREAD * n_threads)
    futures = [client.submit(_same_group_pairs, st_remote, run, k, n_blas, pure=False) for run in runs]
    index = {f.key: i for i, f in enumerate(futures)}
    parts: list[tuple[np.ndarray, ...]] = [no_pairs() for _ in runs]
    for future, part in completed(client, futures):
        parts[index[future.key]] = part
        future.release()
    return join_pairs(parts)


def _search_probes(
    gallery: np.ndarray, probes: np.ndarray, mate: np.ndarray, top: int, block: int, n_blas: int | None
) -> Searches:
    """One task of :func:`search_dask`: the in-process :func:`~faceaudit.audit.identification.search` on a run
    of whole probe blocks, its SGEMMs with ``n_blas`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_blas, user_api="blas"):
        return search(gallery, probes, mate, top=top, block=block)


def search_dask(
    gallery: np.ndarray,
    probes: np.ndarray,
    mate: np.ndarray,
    *,
    client: Any,
    top: int = DEFAULT_RANK,
    block: int = SEARCH_BLOCK,
    tasks: int | None = None,
    n_blas: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Searches:
    """The 1:N searches of the identification audit on a Dask cluster, equal to the in-process
    :func:`~faceaudit.audit.identification.search` bit for bit (same BLAS build and thread count).

    The gallery moves to every worker once (scatter); each task gets a run of whole ``block``-probe blocks, so
    every SGEMM has the shape it has in process, and returns its candidate lists; they are joined in order.
    """
    n = len(probes)
    n_blocks = -(-n // block)
    if n_blocks <= 1:
        return search(gallery, probes, mate, top=top, block=block, progress=progress)
    n_threads = sum(client.nthreads().values()) or 1
    per_task = -(-n_blocks // min(n_blocks, tasks or TASKS_PER_THREAD * n_threads)) * block
    g_remote = scatter_once(client, np.asarray(gallery))
    n_blas = n_blas or blas_threads()
    starts = range(0, n, per_task)
    futures = [
        client.submit(
            _search_probes, g_remote, probes[a : a + per_task], mate[a : a + per_task], top, block, n_blas,
            pure=False,
        )
        for a in starts
    ]  # fmt: skip
    parts: dict[int, Searches] = {}
    index = {f.key: i for i, f in enumerate(futures)}
    for future, part in completed(client, futures):
        parts[index[future.key]] = part
        if progress:
            progress(len(part.mate_rank))
        future.release()
    done = [parts[i] for i in range(len(futures))]  # in probe order, whatever the arrival order
    return Searches(
        np.concatenate([p.candidates for p in done]),
        np.concatenate([p.scores for p in done]),
        np.concatenate([p.mate_score for p in done]),
        np.concatenate([p.mate_rank for p in done]),
    )


__all__ = [
    "blas_threads",
    "compare_sorted_dask",
    "compare_templates_dask",
    "dask_client",
    "search_dask",
    "worker_memory",
]
