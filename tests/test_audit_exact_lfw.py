"""Exact boundary on real templates: a small LFW subset (SFace, default runtime), 100 splits, every 1:N count and
τ against a float64 brute force, and the 1:1 histograms bin by bin. Skips without ../shared/datasets/lfw;
all of LFW and min5 over 100 splits are in benchmarks/exact_boundary.py (numbers in docs/benchmarks.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from test_audit_exact import brute_1n

from faceaudit.audit.comparator import compare_templates
from faceaudit.audit.exact import unit64
from faceaudit.audit.grid import ScoreGrid
from faceaudit.audit.identification import identification_rates, search, split_subjects

LFW = SHARED / "lfw"
pytestmark = pytest.mark.skipif(not (LFW / "manifest.csv").is_file(), reason="needs ../shared/datasets/lfw")


@pytest.fixture(scope="module")
def lfw_small():
    """Up to 6 images of each of the first 50 min5 identities (sorted by name): about 300 real templates."""
    from faceaudit.pipeline.batch import embed_paths

    m = pd.read_csv(LFW / "manifest.csv", dtype=str, keep_default_na=False)
    m = m[m.in_min5_subset == "1"]
    m = m[m.subject_id.isin(sorted(m.subject_id.unique())[:50])].groupby("subject_id").head(6)
    er = embed_paths(list(m.path), LFW, workers=1)
    ok = np.array([s == "ok" for s in er.status], bool)
    subj = pd.factorize(m.subject_id)[0][ok]
    group = np.where(m.sex.to_numpy()[ok] == "female", 0, np.where(m.sex.to_numpy()[ok] == "male", 1, -1))
    return er.templates[ok], subj, group


def test_1n_on_real_templates_equals_a_float64_brute_force_over_100_splits(lfw_small):
    x, subj, group = lfw_small
    targets = (0.1, 0.05, 0.02)
    for seed in range(100):
        split = split_subjects(subj, seed=seed)
        probes = np.concatenate([split.mated, split.non_mated])
        mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1)])
        s = search(x[split.gallery], x[probes], mate, top=3, block=64)
        got = identification_rates(
            s, group[probes], mate >= 0, group[split.gallery], ["f", "m"], targets=targets, rank=3
        )
        for t, (tau, counts, fp, n_nm) in zip(got, brute_1n(x, group, split, targets, 3), strict=True):
            assert abs(t.threshold - tau) <= 1e-12 and fp <= math.floor(t.target_fpir * n_nm + 1e-9)
            for g_i, g in enumerate(("f", "m")):
                r = t.rates[g]
                assert (
                    r.fnir_rank1.errors,
                    r.fnir_rank_r.errors,
                    r.fnir_rank1.trials,
                    r.fpir.errors,
                    r.fpir.trials,
                ) == counts[g_i]


def test_1to1_on_real_templates_equals_float64_scores_bin_by_bin(lfw_small):
    x, subj, group = lfw_small
    grid = ScoreGrid.cosine()
    c = compare_templates(x, group, subj, ["f", "m"], grid=grid, block=64)
    u = unit64(x)
    i, j = np.triu_indices(len(x), 1)
    b = grid.quantise((u @ u.T)[i, j])
    mated = subj[i] == subj[j]
    assert (c.non_mated_total() == np.bincount(b[~mated], minlength=grid.n_bins)).all()
    assert sorted(c.mated_bins.tolist()) == sorted(b[mated].tolist())
