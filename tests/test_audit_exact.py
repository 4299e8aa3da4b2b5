"""Exact boundary: every 1:N and 1:1 count and threshold equals a float64 brute force, on continuous scores.

Templates are clustered tightly (spread 1e-4 … 1e-2 around a few centres), so that many scores lie within
float32 rounding of each other and of the thresholds: a float32 comparator gets some of these seeds wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceaudit.audit.exact import score_bound, unit32, unit64
from faceaudit.audit.identification import fpir_threshold, identification_rates, search, split_subjects

SEEDS = range(100)


def clustered(seed: int, n: int = 160, dim: int = 32):
    """Continuous templates in a few tight clusters; subjects of 1-4 images; groups 0-1 and unlabelled."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n), rng.integers(1, 5, n))[:n]
    n_subj = subj.max() + 1
    centre = rng.standard_normal((3, dim))[rng.integers(0, 3, n_subj)]
    spread = 10.0 ** rng.uniform(-4, -2)
    person = centre + spread * rng.standard_normal((n_subj, dim))
    x = person[subj] + 0.3 * spread * rng.standard_normal((n, dim))
    group = rng.integers(-1, 2, n_subj)[subj]
    return x.astype(np.float32), subj, group, ["a", "b"]


def brute_1n(x, group, split, targets, rank):
    """FNIR/FPIR counts per group from the full float64 score matrix (no shortcut, no float32)."""
    g64 = unit64(x[split.gallery])
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1)])
    s = unit64(x[probes]) @ g64.T
    top = s.max(axis=1)
    nm = mate < 0
    out = []
    for target in targets:
        t = np.sort(top[nm])[::-1]
        allowed = math.floor(target * len(t) + 1e-9)
        tau = t[-1] if allowed >= len(t) else np.nextafter(t[allowed], np.inf)
        counts = {}
        for g in (0, 1):
            sel = group[probes] == g
            m = np.flatnonzero(sel & ~nm)
            ms = s[m, mate[m]]
            r = (s[m] >= ms[:, None]).sum(axis=1)  # the mate itself counts once: rank 1 + non-mates >= it
            counts[g] = (
                int((~((r == 1) & (ms >= tau))).sum()),
                int((~((r <= rank) & (ms >= tau))).sum()),
                len(m),
                int((top[sel & nm] >= tau).sum()),
                int((sel & nm).sum()),
            )
        out.append((tau, counts, int((top[nm] >= tau).sum()), int(nm.sum())))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_1n_counts_and_threshold_equal_a_float64_brute_force(seed):
    x, subj, group, groups = clustered(seed)
    rank = 1 + seed % 3
    split = split_subjects(subj, seed=seed)
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1)])
    s = search(x[split.gallery], x[probes], mate, top=rank, block=17)
    targets = (0.2, 0.05, 0.01)
    got = identification_rates(
        s, group[probes], mate >= 0, group[split.gallery], groups, targets=targets, rank=rank
    )
    for t, (tau, counts, fp, n_nm) in zip(got, brute_1n(x, group, split, targets, rank), strict=True):
        assert abs(t.threshold - tau) <= 1e-12  # the same float64 score (summation order: ~1e-16)
        assert fp <= math.floor(t.target_fpir * n_nm)  # achieved overall FPIR never over the target
        for g_i, g in enumerate(groups):
            r = t.rates[g]
            fn1, fnr, n_m, fp_g, n_nm_g = counts[g_i]
            assert (r.fnir_rank1.errors, r.fnir_rank_r.errors, r.fnir_rank1.trials) == (fn1, fnr, n_m)
            assert (r.fpir.errors, r.fpir.trials) == (fp_g, n_nm_g)


def test_the_clustered_data_do_defeat_float32():
    """Without the float64 re-scoring (plain float32 scores) some seeds give another top-score order: the
    tests above would fail for a float32 comparator."""
    wrong = 0
    for seed in SEEDS:
        x, subj, _, _ = clustered(seed)
        split = split_subjects(subj, seed=seed)
        s32 = unit32(x[split.non_mated]) @ unit32(x[split.gallery]).T
        s64 = unit64(x[split.non_mated]) @ unit64(x[split.gallery]).T
        t32 = np.sort(s32.max(axis=1))[::-1].astype(np.float64)
        t64 = np.sort(s64.max(axis=1))[::-1]
        wrong += (
            fpir_threshold(t32, 0.05) != fpir_threshold(t64, 0.05)
            or (
                np.argsort(-s32.max(axis=1), kind="stable") != np.argsort(-s64.max(axis=1), kind="stable")
            ).any()
        )
    assert wrong >= 10


def test_score_bound_holds_and_is_tight_enough():
    rng = np.random.default_rng(0)
    for dim in (8, 128, 512):
        a, b = rng.standard_normal((2, 400, dim))
        err = np.abs(
            (unit32(a) * unit32(b)).sum(axis=1, dtype=np.float32) - (unit64(a) * unit64(b)).sum(axis=1)
        )
        assert err.max() <= score_bound(dim) / 2
    assert 1e-5 < score_bound(128) < 2e-5


@pytest.mark.parametrize("seed", SEEDS)
def test_1to1_histograms_and_thresholds_equal_a_float64_brute_force(seed):
    from faceaudit.audit.comparator import compare_templates
    from faceaudit.audit.grid import ScoreGrid
    from faceaudit.audit.metrics import threshold_index

    x, subj, group, groups = clustered(seed, n=150)
    grid = ScoreGrid.cosine()
    c = compare_templates(x, group, subj, groups, grid=grid, block=37)
    u = unit64(x)
    i, j = np.triu_indices(len(x), 1)
    b = grid.quantise((u @ u.T)[i, j])  # every pair, float64 scores, the documented binning
    mated = subj[i] == subj[j]
    code = np.where(group < 0, 2, group)
    lo, hi = np.minimum(code[i], code[j]), np.maximum(code[i], code[j])
    for a in (0, 1):
        for bb in (a, 1):
            want = np.bincount(b[~mated & (lo == a) & (hi == bb)], minlength=grid.n_bins)
            assert (c.non_mated[a, bb] == want).all()
    assert (c.non_mated_total() == np.bincount(b[~mated], minlength=grid.n_bins)).all()
    assert sorted(c.mated_bins.tolist()) == sorted(b[mated].tolist())
    total = c.non_mated_total()
    for target in (1e-2, 1e-3):
        k = threshold_index(total, target)
        fm = int((b[~mated] >= k).sum())
        assert fm <= math.floor(target * (~mated).sum() + 1e-9)  # achieved FMR never over the target
        assert k == 0 or int((b[~mated] >= k - 1).sum()) > math.floor(target * (~mated).sum() + 1e-9)
