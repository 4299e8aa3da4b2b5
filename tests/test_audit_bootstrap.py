"""The cheap subject-clustered bootstrap against a plain loop over the resampled images (same seeded draws)."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.audit.bootstrap import ClusteredBootstrap
from faceaudit.audit.comparator import compare_templates
from faceaudit.audit.grid import ScoreGrid
from faceaudit.audit.scores import sort_templates


def make_data(seed: int, n: int):
    """Templates with entries ±1/4 (exact scores, many ties), 3 groups, subjects of 1-4 images, some unlabelled,
    and one subject whose images carry two labels."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 2, (n, 16)) * 2 - 1).astype(np.float32) / 4.0
    subj = np.zeros(n, np.intp)
    gi = np.zeros(n, np.intp)
    i = s = 0
    while i < n:
        size = int(rng.integers(1, 5))
        subj[i : i + size], gi[i : i + size] = s, rng.integers(-1, 3)
        i, s = i + size, s + 1
    gi[n - 1] = (gi[n - 2] + 1) % 3
    perm = rng.permutation(n)
    return x[perm], gi[perm], subj[perm], ["a", "b", "c"]


def naive(x, gi, subj, n_groups, k, n_boot, seed, grid):
    """Resample subjects within each group with the same draws, list the resampled images, loop over pairs."""
    rng = np.random.default_rng(seed)
    bins = grid.quantise(x.astype(np.float64) @ x.T.astype(np.float64))
    out = {}
    for g in range(n_groups):
        subjects = np.unique(subj[gi == g])
        fmr, fnmr = [], []
        for _ in range(n_boot):
            draws = rng.integers(0, len(subjects), len(subjects))
            items = [
                (d, i) for d, s in enumerate(draws) for i in np.flatnonzero((subj == subjects[s]) & (gi == g))
            ]
            fm = nm = fn = m = 0
            for p in range(len(items)):
                for q in range(p + 1, len(items)):
                    (dp, i), (dq, j) = items[p], items[q]
                    same_subject = subj[i] == subj[j]
                    if dp == dq:  # the same draw: a mated pair of that subject
                        m += 1
                        fn += bins[i, j] < k
                    elif not same_subject:
                        nm += 1
                        fm += bins[i, j] >= k
            fmr.append(fm / nm if nm else np.nan)
            fnmr.append(fn / m if m else np.nan)
        out[g] = (np.array(fmr), np.array(fnmr))
    return out


@pytest.mark.parametrize(("seed", "n", "block"), [(0, 70, 16), (1, 45, 2048)])
def test_bootstrap_equals_a_naive_resampling_loop(seed, n, block):
    x, gi, subj, groups = make_data(seed, n)
    grid = ScoreGrid.cosine()
    counts = compare_templates(x, gi, subj, groups, grid=grid, block=block)
    k = int(grid.quantise(np.array([0.125]))[0])  # a score on a bin edge: ties at the threshold
    st = sort_templates(x, gi, subj, groups, grid)
    boot = ClusteredBootstrap.from_templates(st, counts, k - 3, n_boot=40, seed=5)
    ref = naive(x, gi, subj, len(groups), k, 40, 5, grid)
    for g in range(len(groups)):
        np.testing.assert_allclose(boot.fmr(g, k), ref[g][0], rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(boot.fnmr(g, k), ref[g][1], rtol=1e-12, equal_nan=True)


def test_intervals_bracket_the_rate_and_the_ratio_interval_exists():
    x, gi, subj, groups = make_data(2, 300)
    grid = ScoreGrid.cosine()
    counts = compare_templates(x, gi, subj, groups, grid=grid)
    k = int(grid.quantise(np.array([0.25]))[0])
    boot = ClusteredBootstrap.from_templates(sort_templates(x, gi, subj, groups, grid), counts, k, 200)
    iv = boot.interval(boot.fmr(0, k))
    h = counts.non_mated_within(0)
    rate = h[k:].sum() / h.sum()
    assert iv.low <= rate <= iv.high and "subject-clustered" in iv.method
    r = boot.ratio("fmr", 0, 1, k)
    assert r.low is not None and r.low <= r.high


def test_headline_for_a_policy_reader_with_clustered_intervals(tmp_path):
    """Default audit: clustered intervals, the ratio's interval, "about 1 in N", data set and label source,
    "not established" on overlap; the report shows groups as `sex` and says "1 image"."""
    import pandas as pd

    import faceaudit
    from faceaudit.pipeline.batch import EmbedResult

    rng = np.random.default_rng(9)
    n = 240
    paths = [f"i{i}.jpg" for i in range(n)]
    subj = np.repeat(np.arange(n // 4), 4)
    centre = rng.standard_normal((n // 4, 32))
    x = (centre[subj] + 0.9 * rng.standard_normal((n, 32))).astype(np.float32)
    nan = np.full(n, np.nan, np.float32)
    EmbedResult(paths, x, ["ok"] * n, np.ones(n, np.int32), nan, nan, nan, nan, "m", "central").save(
        tmp_path / "t.npz"
    )
    sex = np.where(subj % 2 == 0, "female", "male").astype(object)
    sex[5] = ""
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": sex, "sex_label_source": "test labels"}).to_csv(
        tmp_path / "faces.csv", index=False
    )
    r = faceaudit.run_audit(
        tmp_path / "faces.csv", group_by="sex", templates=tmp_path / "t.npz", target_fmr=0.05
    )
    h = r.headline
    assert h.startswith("Data: faces.csv; labels: sex_label_source: test labels (240).")
    assert "about 1 in " in h and "The ratio's 95 % subject-clustered interval is " in h
    assert "FMR [95% clustered]" in r.table().columns
    row = r.by_group.loc[(0.05, "female")]
    assert row["fmr_boot_low"] <= row["fmr"] <= row["fmr_boot_high"]
    assert "subject-clustered" in row["fnmr_boot_method"]
    # 60 subjects in two groups: the intervals overlap, and the headline says so
    assert "not established by this data" in h
    assert "1 image has an empty sex label" in r.warnings[0]
    html = r.to_html()
    assert '<td class="l">sex</td>' in html and "[&#39;sex&#39;]" not in html
