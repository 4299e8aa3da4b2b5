"""The pairs the comparator keeps as it counts, and what the bootstrap and the label check make of them.

The reference for the bootstrap is the implementation it replaced (one draw call and one gather per resample,
false matches from a second pass over the tiles): same seed, the same resampled rates bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import faceaudit.audit.bootstrap as bootstrap_module
from faceaudit.audit.bootstrap import ClusteredBootstrap, high_scoring_pairs
from faceaudit.audit.comparator import Keep, compare_sorted
from faceaudit.audit.label_errors import suspects_1to1
from faceaudit.audit.metrics import threshold_index
from faceaudit.audit.run import audit_templates
from faceaudit.audit.scores import compare_block, fold_blocks, sort_templates


def templates(seed: int, n: int, dim: int = 24):
    """Random unit templates in 3 groups (some unlabelled), subjects of 1-5 images, a few near-duplicate pairs
    under two subjects (across groups too): the label check's targets."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    subj = np.repeat(np.arange(n), rng.integers(1, 6, n))[:n]
    gi = rng.integers(-1, 3, subj.max() + 1)[subj]
    for a, b in rng.integers(0, n, (6, 2)):
        x[b] = x[a] + 0.01 * rng.standard_normal(dim)
    return x, gi, subj, ["a", "b", "c"]


def old_weights(rng, size, n_boot):
    w = np.zeros((n_boot, size), np.uint8)
    for b in range(n_boot):
        w[b] = np.minimum(np.bincount(rng.integers(0, size, size), minlength=size), 255)
    return w


def old_rates(st, counts, k_min, ks, n_boot, seed):
    """The replaced implementation: FMR and FNMR per resample for each group and bin index in ``ks``."""
    rng = np.random.default_rng(seed)
    pair_group, pair_a, pair_b, pair_bin = high_scoring_pairs(st, k_min, block=64)
    out = {}
    for g in range(len(st.groups)):
        subjects, n_img = np.unique(st.subject[st.code == g], return_counts=True)
        n = n_img.astype(np.float64)
        w_all = old_weights(rng, len(subjects), n_boot).astype(np.float64)
        sel = pair_group == g
        a, b = np.searchsorted(subjects, pair_a[sel]), np.searchsorted(subjects, pair_b[sel])
        within = (counts.mated_group_a == g) & (counts.mated_group_b == g)
        cl = np.searchsorted(subjects, counts.mated_subject[within])
        for k in ks:
            hit = pair_bin[sel] >= k
            errors = (w_all[:, a[hit]] * w_all[:, b[hit]]).sum(axis=1)
            trials = ((w_all @ n) ** 2 - (w_all**2) @ (n**2)) / 2
            mated = np.bincount(cl, minlength=len(subjects)).astype(np.float64)
            fn = np.bincount(cl, weights=(counts.mated_bins[within] < k), minlength=len(subjects))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[g, k] = (
                    np.where(trials > 0, errors / trials, np.nan),
                    np.where(w_all @ mated > 0, (w_all @ fn) / (w_all @ mated), np.nan),
                )
    return out


@pytest.mark.parametrize("threads", [1, 2])
def test_kept_pairs_are_every_pair_above_the_floor_and_the_counts_are_the_tiles(threads):
    x, gi, subj, groups = templates(0, 700)
    st = sort_templates(x, gi, subj, groups)
    counts, kept = compare_sorted(st, keep=Keep(fmr=1e-3, score=0.5), block=96, threads=threads)
    want = fold_blocks(st, (compare_block(st, r, c) for r, c in st.tiles(96)))
    np.testing.assert_array_equal(counts.non_mated, want.non_mated)
    np.testing.assert_array_equal(counts.mated_bins, want.mated_bins)
    np.testing.assert_array_equal(counts.mated_subject, want.mated_subject)
    # exhaustive: every pair's bin coordinate, as the tiles compute it
    coord = st.rows @ st.cols.T
    i, j = np.triu_indices(st.n, 1)
    non_mated = st.subject[i] != st.subject[j]
    same = non_mated & (st.code[i] == st.code[j]) & (st.code[i] < len(groups))
    k_min = threshold_index(counts.non_mated_total(), 1e-3)
    assert 0 < kept.floor <= k_min  # the floor rose, and never past the threshold
    want_same = {(a, b) for a, b in zip(i[same], j[same], strict=True) if coord[a, b] >= kept.floor}
    assert set(zip(*kept.same_group[:2], strict=True)) == want_same and len(want_same) > 20
    high = non_mated & (coord[i, j] >= 0.5 / st.grid.width - st.grid.lo / st.grid.width - 1e-6)
    assert set(zip(*kept.above[:2], strict=True)) == set(zip(i[high], j[high], strict=True))
    assert high.sum() >= 6  # the planted near-duplicates


@pytest.mark.parametrize("seed", [1, 2])
def test_the_bootstrap_from_kept_pairs_gives_the_replaced_implementations_rates_bit_for_bit(seed):
    x, gi, subj, groups = templates(seed, 900)
    st = sort_templates(x, gi, subj, groups)
    targets = (1e-2, 1e-3)
    counts, kept = compare_sorted(st, keep=Keep(fmr=max(targets)), block=128, threads=2)
    ks = [threshold_index(counts.non_mated_total(), t) for t in targets]
    new = ClusteredBootstrap.from_templates(st, counts, min(ks), 300, seed=seed, kept=kept)
    ref = old_rates(st, counts, min(ks), ks, 300, seed)
    for (g, k), (fmr, fnmr) in ref.items():
        np.testing.assert_array_equal(new.fmr(g, k), fmr)
        np.testing.assert_array_equal(new.fnmr(g, k), fnmr)
        assert new.interval(new.fmr(g, k)) == new.interval(fmr)
    assert any(np.nanmax(fmr) > 0 for fmr, _ in ref.values())


def test_an_audit_in_process_takes_no_second_pass_and_reports_what_the_second_pass_did(monkeypatch):
    x, gi, subj, groups = templates(3, 800, dim=128)  # the bulk narrow enough for 6 robust SD below 1
    paths = [f"img{i}.jpg" for i in range(len(x))]
    ids = [str(s) for s in subj]
    with monkeypatch.context() as m:  # nothing kept: the second passes (the replaced path) do the work
        m.setattr("faceaudit.audit.run.Keep", lambda **kwargs: Keep())
        want = audit_templates(x, gi, subj, groups, bootstrap=200, label_check=(paths, ids))

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the comparator kept these pairs: no second pass")

    with monkeypatch.context() as m:
        m.setattr(bootstrap_module, "high_scoring_pairs", no_second_pass)
        m.setattr("faceaudit.audit.label_errors._candidates", no_second_pass)
        got = audit_templates(x, gi, subj, groups, bootstrap=200, label_check=(paths, ids))
    assert got.to_dict() == want.to_dict()
    assert got.label_check == want.label_check == suspects_1to1(x, subj, paths, ids)
    assert got.label_check["count"] >= 6
    assert "subject-clustered" in got.by_group["fmr_boot_method"].iloc[0]


def test_the_comparator_reports_every_pair_once_and_leaves_blas_as_it_found_it():
    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]

    x, gi, subj, groups = templates(4, 500)
    before = blas()
    done: list[int] = []
    counts, _ = compare_sorted(sort_templates(x, gi, subj, groups), block=64, threads=3, progress=done.append)
    assert blas() == before
    assert sum(done) == 500 * 499 // 2 == counts.non_mated_total().sum() + len(counts.mated_bins)
