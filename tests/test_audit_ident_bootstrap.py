"""The 1:N subject-clustered bootstrap against a plain loop over the resampled searches (same draws)."""

from __future__ import annotations

import numpy as np

from faceaudit.audit import ident_bootstrap as ib
from faceaudit.audit.identification import fpir_threshold, identification_rates, search, split_subjects


def test_bootstrap_equals_a_loop_over_resampled_searches_with_tau_held_and_reset():
    rng = np.random.default_rng(4)
    subj = np.repeat(np.arange(70), rng.integers(1, 5, 70))
    x = rng.standard_normal((70, 16))[subj] + 0.9 * rng.standard_normal((len(subj), 16))
    group = np.where(subj % 3 == 0, 0, np.where(subj % 7 == 0, -1, 1))
    split = split_subjects(subj, seed=1)
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1)])
    s = search(x[split.gallery], x[probes], mate, top=3)
    groups = ["a", "b"]
    targets = identification_rates(
        s, group[probes], mate >= 0, group[split.gallery], groups, targets=(0.2,), rank=3
    )
    n_boot = 20
    got = ib.bootstrap_identification(
        s, subj[probes], group[probes], mate >= 0, groups, targets, rank=3, n_boot=n_boot, seed=7
    )["0.2"]

    # the same draws, then every resampled search repeated w_s times and counted in a loop
    _, cluster = np.unique(subj[probes], return_inverse=True)
    cg = np.zeros(cluster.max() + 1, np.intp)
    cg[cluster] = group[probes]
    draw = np.random.default_rng(7)
    ref = {"held": {g: [] for g in groups}, "reset": {g: [] for g in groups}}
    top, mated = s.scores[:, 0], mate >= 0
    for _ in range(n_boot):
        w = ib._draw(draw, cluster, cg)[cluster].astype(int)
        rows = np.repeat(np.arange(len(probes)), w)
        tau_reset = fpir_threshold(top[rows][~mated[rows]], 0.2)
        for mode, tau in (("held", targets[0].threshold), ("reset", tau_reset)):
            for g_i, g in enumerate(groups):
                r = rows[group[probes][rows] == g_i]
                m, nm = r[mated[r]], r[~mated[r]]
                miss1 = sum(not (s.mate_rank[i] == 1 and s.mate_score[i] >= tau) for i in m)
                fp = sum(top[i] >= tau for i in nm)
                ref[mode][g].append(
                    (miss1 / len(m) if len(m) else np.nan, fp / len(nm) if len(nm) else np.nan)
                )
    for mode, block in (("held", got), ("reset", got["reset"])):
        for g in groups:
            v = np.array(ref[mode][g])
            for k, col in (("fnir_rank1", 0), ("fpir", 1)):
                want = np.nanquantile(v[:, col], [0.025, 0.975])
                iv = block[g][k]
                rate = getattr(targets[0].rates[g], k)
                if rate.errors == 0 and want[1] < rate.ci_high:
                    assert iv["high"] == rate.ci_high  # never zero width
                else:
                    np.testing.assert_allclose([iv["low"], iv["high"]], want, rtol=1e-6)
    assert got["reset"]["ratios"]["fnir_rank1"]["pair"] == got["ratios"]["fnir_rank1"]["pair"]


def test_weighted_threshold_equals_the_threshold_of_the_repeated_scores():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top = np.round(rng.random(rng.integers(1, 40)), 2)  # ties
        w = rng.integers(0, 4, len(top))
        if w.sum() == 0:
            continue
        target = rng.choice([0.01, 0.1, 0.3])
        assert ib._weighted_threshold(top, w.astype(float), target) == fpir_threshold(
            np.repeat(top, w), target
        )
