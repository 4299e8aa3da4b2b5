"""LFW View-2 verification: 10 folds, threshold chosen on 9 and applied to the 10th; TAR at FAR 1e-3.

Runs faceaudit's backends side by side and reports detection failures. An image in which no face is found
cannot be compared, so every pair that uses it is scored -inf: it counts as a non-match (a false non-match
for a mated pair, a correct rejection for a non-mated one). That is the strict handling; nothing is dropped.

    python benchmarks/lfw_verification.py --lfw ../shared/datasets/lfw --models sface,dlib
    python benchmarks/lfw_verification.py --lfw ../shared/datasets/lfw --models sface --policies central,largest,best
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import cached_embed, print_table, read_csv, scores_for_pairs


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy on (scores, same): midpoints between sorted finite scores."""
    finite = np.sort(np.unique(scores[np.isfinite(scores)]))
    cands = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    tp = len(pos) - np.searchsorted(pos, cands, side="left")
    tn = np.searchsorted(neg, cands, side="left")
    return float(cands[np.argmax(tp + tn)])


def ten_fold(scores: np.ndarray, same: np.ndarray, fold: np.ndarray) -> np.ndarray:
    accs = []
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        thr = best_threshold(scores[train], same[train])
        accs.append(float(((scores[test] >= thr) == same[test]).mean()))
    return np.array(accs)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """TAR at the lowest threshold whose FAR over all non-mated pairs is at most ``far``."""
    neg = np.sort(scores[~same])[::-1]
    k = int(np.floor(far * len(neg)))  # false accepts allowed
    thr = np.nextafter(neg[k], np.inf) if k < len(neg) else -np.inf
    return float((scores[same] >= thr).mean()), float(thr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--models", default="sface,dlib")
    ap.add_argument("--policies", default="central")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("bench-out"))
    args = ap.parse_args()

    pairs = read_csv(args.lfw / "protocol" / "view2_pairs.csv")
    a = [p["path_a"] for p in pairs]
    b = [p["path_b"] for p in pairs]
    same = np.array([p["same_identity"] == "1" for p in pairs])
    fold = np.array([int(p["fold"]) for p in pairs])
    paths = sorted(set(a) | set(b))
    print(
        f"LFW View-2: {len(pairs)} pairs ({same.sum()} mated), {len(paths)} images, {len(np.unique(fold))} folds"
    )

    rows = []
    for model in args.models.split(","):
        for policy in args.policies.split(","):
            res, secs = cached_embed(
                paths, args.lfw, args.cache / f"lfw-view2-{model}-{policy}.npz", model, policy, args.workers
            )
            scores, failed = scores_for_pairs(res, a, b)
            accs = ten_fold(scores, same, fold)
            tar, thr = tar_at_far(scores, same, 1e-3)
            n_noface = sum(s == "no_face" for s in res.status)
            n_err = sum(s.startswith("error") for s in res.status)
            rows.append(
                [
                    model,
                    policy,
                    f"{accs.mean() * 100:.2f} ± {accs.std() * 100:.2f}",
                    f"{tar * 100:.2f}",
                    f"{thr:.4f}",
                    f"{n_noface} / {n_err}",
                    int(failed.sum()),
                    int((res.n_faces > 1).sum()),
                    "cached" if np.isnan(secs) else f"{secs:.0f}",
                ]
            )
    print()
    print_table(
        [
            "model",
            "policy",
            "accuracy % (10-fold)",
            "TAR@FAR=1e-3 %",
            "τ@FAR=1e-3",
            "no face / unreadable images",
            "pairs scored -inf",
            "multi-face images",
            "embed s",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
