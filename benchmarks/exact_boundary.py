"""Exact boundary on real templates: every 1:N count and τ, and the 1:1 histograms, against a float64 brute
force, over many seeds; beside them, how often the former float32 arithmetic would have differed.

    PYTHONPATH=src python benchmarks/exact_boundary.py --templates T.npz --manifest M.csv [--seeds 100]
        [--targets 1e-2,1e-3] [--rank 10] [--skip-1to1]

1:N, per seed (half the subjects enrolled): faceaudit's search + rates vs the full float64 score matrix
(τ = next float64 above the (⌊target·n⌋+1)-th best non-mated top score; FNIR: mate at rank ≤ R with score ≥ τ,
ties against the mate; FPIR: best candidate ≥ τ), per sex; and the float32 rule of the earlier version (τ the
next float32 above a float32 GEMM score, counts on float32 scores) against the same brute force.
1:1 (once; it has no seed): the comparator's histograms vs float64 scores of every pair binned by
``ScoreGrid.quantise``. Prints a table; timings are for this machine (report ``uptime`` beside them).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np


def _tau(top: np.ndarray, target: float, dtype) -> float:
    t = np.sort(top.astype(dtype))[::-1]
    allowed = math.floor(target * len(t) + 1e-9)
    return float(t[-1]) if allowed >= len(t) else float(np.nextafter(t[allowed], dtype(np.inf)))


def brute(s: np.ndarray, mate: np.ndarray, group: np.ndarray, targets, rank: int, dtype, taus=None) -> list:
    """Counts per target and group from a full score matrix ``s`` (probes × gallery); τ set in ``dtype``, or
    given (``taus``)."""
    top = s.max(axis=1)
    nm = mate < 0
    m = np.flatnonzero(~nm)
    ms = s[m, mate[m]]
    r = (s[m] >= ms[:, None]).sum(axis=1)
    out = []
    for t_i, target in enumerate(targets):
        tau = _tau(top[nm], target, dtype) if taus is None else taus[t_i]
        row = [tau, int((top[nm] >= tau).sum()), int(nm.sum())]
        for g in (0, 1):
            gm = group[m] == g
            row += [int((~((r == 1) & (ms >= tau)))[gm].sum()), int((~((r <= rank) & (ms >= tau)))[gm].sum())]
            row += [int((top[nm & (group == g)] >= tau).sum())]
        out.append(row)
    return out


def old32(x: np.ndarray) -> np.ndarray:
    """The earlier version's unit templates: normalised in float32."""
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--targets", default="1e-2,1e-3")
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--skip-1to1", action="store_true")
    a = ap.parse_args()
    from faceaudit.audit.exact import unit64
    from faceaudit.audit.identification import identification_rates, search, split_subjects
    from faceaudit.audit.pairs import load_manifest
    from faceaudit.audit.run import templates_for_manifest

    targets = [float(t) for t in a.targets.split(",")]
    m = load_manifest(a.manifest, "sex")
    _, er = templates_for_manifest(a.templates, [p.strip() for p in m.frame["path"]])
    ok = np.array([s == "ok" for s in er.status], bool)
    x, subj, gi = er.templates[ok], m.subject[ok], m.group_index[ok]
    female, male = m.groups.index("female"), m.groups.index("male")
    group = np.where(gi == female, 0, np.where(gi == male, 1, -1))
    agree = f32_wrong = f32_over = over = 0
    t_fa = t_bf = 0.0
    for seed in range(a.seeds):
        sp = split_subjects(subj, seed=seed)
        probes = np.concatenate([sp.mated, sp.non_mated])
        mate = np.concatenate([sp.mate, np.full(len(sp.non_mated), -1)])
        pg = group[probes]
        t0 = time.perf_counter()
        s = search(x[sp.gallery], x[probes], mate, top=a.rank)
        got = identification_rates(
            s, pg, mate >= 0, group[sp.gallery], ["f", "m"], targets=targets, rank=a.rank
        )
        t_fa += time.perf_counter() - t0
        t0 = time.perf_counter()
        s64 = unit64(x[probes]) @ unit64(x[sp.gallery]).T
        ref = brute(s64, mate, pg, targets, a.rank, np.float64)
        t_bf += time.perf_counter() - t0
        # the earlier float32 rule: τ the next float32 above a float32 score; its counts in exact arithmetic
        s32 = old32(x[probes]) @ old32(x[sp.gallery]).T
        taus32 = [row[0] for row in brute(s32, mate, pg, targets, a.rank, np.float32)]
        f32 = brute(s64, mate, pg, targets, a.rank, np.float64, taus=taus32)
        mine = []
        for t in got:
            row = [t.threshold, None, None]
            for g in ("f", "m"):
                r = t.rates[g]
                row += [r.fnir_rank1.errors, r.fnir_rank_r.errors, r.fpir.errors]
            mine.append(row)
        agree += all(abs(p[0] - q[0]) <= 1e-12 and p[3:] == q[3:] for p, q in zip(mine, ref, strict=True))
        over += any(q[1] > math.floor(tg * q[2] + 1e-9) for q, tg in zip(ref, targets, strict=True))
        f32_wrong += any(p[1:] != q[1:] for p, q in zip(f32, ref, strict=True))
        f32_over += any(p[1] > math.floor(tg * p[2] + 1e-9) for p, tg in zip(f32, targets, strict=True))
    n = a.seeds
    print("| templates | splits | exact 1:N = float64 brute force | achieved FPIR > target "
          "| float32 rule: a count differs | float32 rule: exact FPIR > target |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(x):,} ({a.manifest}) | {n} | {agree}/{n} | {over}/{n} | {f32_wrong}/{n} | {f32_over}/{n} |"
    )
    print(f"1:N time: faceaudit {t_fa:.1f} s, brute force {t_bf:.1f} s over {n} splits", file=sys.stderr)
    if a.skip_1to1:
        return 0
    from faceaudit.audit.comparator import compare_templates
    from faceaudit.audit.grid import ScoreGrid

    grid = ScoreGrid.cosine()
    t0 = time.perf_counter()
    c = compare_templates(x, gi, subj, m.groups, grid=grid)
    t_cmp = time.perf_counter() - t0
    u = unit64(x)
    hist = np.zeros(grid.n_bins, np.int64)
    mated_bins = []
    for r0 in range(0, len(u), 2048):
        s = u[r0 : r0 + 2048] @ u.T
        i, j = np.nonzero(np.triu(np.ones(s.shape, bool), k=r0 + 1))
        b = grid.quantise(s[i, j])
        same = subj[i + r0] == subj[j]
        hist += np.bincount(b[~same], minlength=grid.n_bins)
        mated_bins.append(b[same])
    mb = np.sort(np.concatenate(mated_bins))
    equal = (c.non_mated_total() == hist).all() and (np.sort(c.mated_bins) == mb).all()
    print(f"\n1:1: {len(x):,} templates, {int(hist.sum()):,} non-mated and {len(mb):,} mated comparisons; "
          f"histograms equal the float64 brute force: {bool(equal)} (comparator {t_cmp:.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
