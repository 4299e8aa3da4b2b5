"""Calibrate a model's default cosine threshold on LFW at a target FMR.

Uses every image of the LFW folder's manifest (9,866 images, 4,283 subjects): all non-mated pairs (~48.6 M)
set the threshold, so an FMR of 1e-3 rests on tens of thousands of false matches rather than the 3 that
View-2's 3,000 non-mated pairs would give. All mated pairs give the FNMR at that threshold. Scores are
binned at 1e-4; the threshold is the lower edge of the first bin at or above which FMR ≤ target.

    faceaudit embed ../shared/datasets/lfw/manifest.csv --root ../shared/datasets/lfw --out lfw-sface.npz
    python benchmarks/calibrate_threshold.py --lfw ../shared/datasets/lfw --templates lfw-sface.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import print_table, read_csv, subset

from faceaudit.pipeline.batch import load_templates

BIN = 1e-4
EDGES = np.round(np.arange(-1.0, 1.0 + BIN, BIN), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument(
        "--templates", type=Path, required=True, help="npz from `faceaudit embed` over the manifest"
    )
    ap.add_argument("--target-fmr", type=float, nargs="+", default=[1e-3, 1e-4])
    args = ap.parse_args()

    manifest = read_csv(args.lfw / "manifest.csv")
    res = subset(load_templates(args.templates), [r["path"] for r in manifest])
    ok = res.ok
    subj = np.array([r["subject_id"] for r in manifest])[ok]
    _, sid = np.unique(subj, return_inverse=True)
    t = res.templates[ok]
    n = len(t)
    hist = np.zeros(len(EDGES), np.int64)
    mated = []
    for i0 in range(0, n, 1024):
        s = t[i0 : i0 + 1024] @ t.T
        rows = np.arange(i0, min(n, i0 + 1024))[:, None]
        upper = np.arange(n)[None, :] > rows
        same = sid[rows] == sid[None, :]
        mated.append(s[upper & same])
        q = np.clip(np.floor((s[upper & ~same] + 1.0) / BIN + 1e-9).astype(np.int64), 0, len(EDGES) - 1)
        hist += np.bincount(q, minlength=len(EDGES))
    mated = np.concatenate(mated)
    n_non = int(hist.sum())
    at_or_above = np.cumsum(hist[::-1])[::-1]  # non-mated scores in bin ≥ k
    print(
        f"{res.model_id} ({res.policy}): {n} templates ({(~ok).sum()} failed), {n_non:,} non-mated and "
        f"{len(mated):,} mated pairs; bin width {BIN}"
    )
    rows = []
    for target in args.target_fmr:
        k = int(np.argmax(at_or_above / n_non <= target))
        thr = float(EDGES[k])
        fmr = at_or_above[k] / n_non
        fnmr = float((mated < thr).mean())
        rows.append([f"{target:g}", f"{thr:.4f}", f"{fmr:.2e}", int(at_or_above[k]), f"{fnmr * 100:.2f}"])
    print_table(["target FMR", "threshold τ", "FMR(τ)", "false matches", "FNMR(τ) %"], rows)


if __name__ == "__main__":
    main()
