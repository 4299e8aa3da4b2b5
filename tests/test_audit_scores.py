"""The streaming comparator against a naive reference that loops over every pair."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.audit.analysis import analyse
from faceaudit.audit.comparator import compare_templates
from faceaudit.audit.metrics import threshold_index
from faceaudit.audit.scores import ScoreGrid, count_scores


def grid_templates(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    """Unit vectors with entries ±1/4: every score is a multiple of 1/16, exact in any summation order.

    So scores fall exactly on bin edges and tie often: the hardest case for threshold semantics.
    """
    return (rng.integers(0, 2, (n, d)) * 2 - 1).astype(np.float32) / 4.0


def make_data(seed: int, n: int, n_groups: int = 4):
    rng = np.random.default_rng(seed)
    x = grid_templates(rng, n)
    # group n_groups - 1 is left empty; some templates have no label (-1)
    gi = rng.integers(-1, n_groups - 1, n)
    subj = np.arange(n)
    # subjects with 2-4 images, mostly inside one group, one across groups
    k = 0
    for s in range(n // 5):
        size = int(rng.integers(2, 5))
        subj[k : k + size] = 10_000 + s
        gi[k : k + size] = gi[k]
        k += size
    gi[k - 1] = (gi[k - 2] + 1) % (n_groups - 1)  # a subject whose images carry different labels
    perm = rng.permutation(n)
    return x[perm], gi[perm], subj[perm], [f"g{i}" for i in range(n_groups)]


def naive(x, gi, subj, n_groups, grid):
    """Explicit loops over pairs: histograms per (a, b) cell, mated scores kept per pair."""
    n = len(x)
    unl = n_groups
    hist = np.zeros((n_groups + 1, n_groups + 1, grid.n_bins), np.int64)
    mated = []
    raw_non_mated = {}
    for i in range(n):
        for j in range(i + 1, n):
            s = float(np.dot(x[i].astype(np.float64), x[j].astype(np.float64)))
            a = unl if gi[i] < 0 else gi[i]
            b = unl if gi[j] < 0 else gi[j]
            a, b = min(a, b), max(a, b)
            if subj[i] == subj[j]:
                mated.append((s, a, b))
            else:
                hist[a, b, grid.quantise(np.array([s]))[0]] += 1
                raw_non_mated.setdefault((a, b), []).append(s)
    return hist, mated, raw_non_mated


@pytest.mark.parametrize(("seed", "n", "block"), [(0, 60, 7), (1, 97, 16), (2, 40, 2048)])
def test_streaming_equals_naive_reference(seed, n, block):
    x, gi, subj, groups = make_data(seed, n)
    grid = ScoreGrid.cosine()
    c = compare_templates(x, gi, subj, groups, grid=grid, block=block, threads=2)
    hist, mated, raw = naive(x, gi, subj, len(groups), grid)
    g = len(groups)
    np.testing.assert_array_equal(c.non_mated, hist[:g, :g])
    assert c.non_mated[g - 1].sum() == 0 and c.non_mated[:, g - 1].sum() == 0  # the empty group
    unl_ref = hist[:, g].sum(axis=0)
    np.testing.assert_array_equal(c.non_mated_unlabelled, unl_ref)
    assert sorted(np.round(c.mated_scores.astype(float), 6)) == sorted(round(m[0], 6) for m in mated)
    assert len(c.mated_scores) + c.non_mated_total().sum() == n * (n - 1) // 2

    # rates at thresholds that fall on ties: FMR and FNMR by direct comparison with score >= tau
    result = analyse(c, targets=(0.3, 0.05, 1e-3))
    all_non_mated = [s for v in raw.values() for s in v]
    for key, t in result.thresholds.items():
        tau = t["threshold"]
        assert t["false_matches"] == sum(s >= tau for s in all_non_mated)
        # the threshold is the lowest bin edge meeting the target: one bin lower would exceed it
        assert sum(s >= tau - grid.width for s in all_non_mated) > t["target_fmr"] * len(all_non_mated)
        tab = result.by_group.xs(t["target_fmr"], level="target_fmr")
        for gi_, name in enumerate(groups):
            same = raw.get((gi_, gi_), [])
            row = tab.loc[name]
            assert row["fmr_trials"] == len(same)
            assert row["fmr_errors"] == sum(s >= tau for s in same)
            m = [s for s, a, b in mated if a == b == gi_]
            assert row["n_mated"] == len(m)
            assert row["fnmr_errors"] == sum(s < tau for s in m)
            if m:
                assert row["fnmr"] == pytest.approx(sum(s < tau for s in m) / len(m))
            else:
                assert row["fnmr"] is None or np.isnan(row["fnmr"])
        for a in range(g):
            for b in range(g):
                cell = raw.get((min(a, b), max(a, b)), [])
                v = result.cross_fmr[key].iloc[a, b]
                if cell:
                    assert v == sum(s >= tau for s in cell) / len(cell)
                else:
                    assert np.isnan(v)


def test_threshold_semantics_at_a_tie():
    # 10 non-mated scores; 3 at or above 0.5 (two tied exactly at 0.5)
    grid = ScoreGrid.cosine()
    scores = np.array([0.5, 0.5, 0.75, 0.25, 0.0, -0.25, 0.125, 0.375, 0.4375, 0.3125])
    bins = grid.quantise(scores)
    hist = np.bincount(bins, minlength=grid.n_bins)
    k = threshold_index(hist, 0.3)
    assert grid.edge(k) == 0.4376  # the lowest edge with FMR <= 0.3: just above 0.4375
    k = threshold_index(hist, 0.2)
    assert grid.edge(k) == 0.5001  # 0.5 counts as a match, so two tied scores push tau above them
    k = threshold_index(hist, 0.1)
    assert grid.edge(k) == 0.5001
    assert hist[grid.quantise(np.array([0.5]))[0] :].sum() == 3


def test_count_scores_matches_loops_and_lower_is_better():
    rng = np.random.default_rng(5)
    n = 500
    dist = np.round(rng.uniform(0, 2, n), 2)  # distances with many ties
    mated = rng.random(n) < 0.2
    ga = rng.integers(-1, 3, n)
    gb = np.where(rng.random(n) < 0.7, ga, rng.integers(0, 3, n))
    grid = ScoreGrid.from_scores(dist, n_bins=1000, higher_is_better=False)
    c = count_scores(dist, mated, ga, gb, ["a", "b", "c"], grid)
    res = analyse(c, targets=(0.1,))
    tau = res.thresholds["0.1"]["threshold"]
    nm = ~mated
    # lower is better: a match is distance <= tau
    assert res.thresholds["0.1"]["false_matches"] == int((dist[nm] <= tau + 1e-12).sum())
    for g, name in enumerate(["a", "b", "c"]):
        same = (ga == g) & (gb == g)
        row = res.by_group.loc[(0.1, name)]
        assert row["fmr_trials"] == int((same & nm).sum())
        assert row["fmr_errors"] == int((dist[same & nm] <= tau + 1e-12).sum())
        assert row["fnmr_errors"] == int((dist[same & mated] > tau + 1e-12).sum())


def test_zero_template_is_refused():
    x = np.zeros((3, 4), np.float32)
    x[0, 0] = x[1, 1] = 1
    with pytest.raises(Exception, match="all zeros"):
        compare_templates(x, [0, 0, 0], [0, 1, 2], ["a"])


def test_memory_is_flat_in_n():
    """The comparator allocates O(block²) per tile, not O(N²): tracemalloc peak at two N."""
    import tracemalloc

    peaks = []
    rng = np.random.default_rng(0)
    for n in (600, 2400):
        x = rng.standard_normal((n, 32)).astype(np.float32)
        tracemalloc.start()
        compare_templates(x, np.zeros(n, int), np.arange(n), ["a"], block=256, threads=1)
        peaks.append(tracemalloc.get_traced_memory()[1] - x.nbytes * 3)
        tracemalloc.stop()
    # 16× the pairs; the peak (beyond template copies) stays within a few MB
    assert peaks[1] < peaks[0] + 4 * 2**20
