"""LFW View-2 verification: 10 folds, threshold chosen on 9 and applied to the 10th; TAR at FAR 1e-3.

Runs faceaudit's backends side by side and reports detection failures. An image in which no face is found
cannot be compared, so every pair that uses it is scored -inf: it counts as a non-match (a false non-match
for a mated pair, a correct rejection for a non-mated one). That is the strict handling; nothing is dropped.

Each model's row also gives its shipped threshold (calibrated at FMR 1e-3 over all LFW non-mated pairs by
benchmarks/calibrate_threshold.py) and ms per image: decode + detect + align + embed of ``--time-images``
View-2 images through a warm pool of ``--workers`` processes, the median of three passes, measured in every
run (templates may come from the cache, timings never do).

    python benchmarks/lfw_verification.py --lfw ../shared/datasets/lfw --models sface,dlib
    python benchmarks/lfw_verification.py --lfw ../shared/datasets/lfw --models sface,arcface-mbf,dlib \
        --accept-model-license research
    python benchmarks/lfw_verification.py --lfw ../shared/datasets/lfw --models sface --policies central,largest,best
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import cached_embed, print_table, read_csv, scores_for_pairs

from faceaudit.models.registry import resolve
from faceaudit.pipeline.batch import WorkerPool, embed_paths


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


def ms_per_image(paths: list[str], root: Path, model: str, workers: int, options: dict) -> tuple[float, str]:
    """Median of three timed passes over ``paths`` through a warm pool (ms per image) and the runtime used."""
    import time

    with WorkerPool(workers, model=model, **options) as pool:
        pool.warm([root / p for p in paths[:2]])
        passes = []
        for _ in range(3):
            t0 = time.perf_counter()
            embed_paths(paths, root, pool=pool)
            passes.append((time.perf_counter() - t0) / len(paths) * 1000)
        return float(np.median(passes)), pool.info()[2]


def cpu_ms_per_image(paths: list[str], root: Path, model: str, options: dict) -> float:
    """CPU milliseconds per image in this process, one thread (after a warm-up pass): the cost of an image,
    much less sensitive than wall time to other jobs on a shared machine."""
    import contextlib
    import time

    from faceaudit.errors import FaceAuditError
    from faceaudit.pipeline.engine import Engine

    engine = Engine(model, threads=1, **options)
    files = [str(root / p) for p in paths]
    for f in files[:2]:
        engine.template(f)
    t0 = time.process_time()
    for f in files:
        with contextlib.suppress(FaceAuditError):  # a detection failure costs time too: counted, not apart
            engine.template(f)
    return (time.process_time() - t0) / len(files) * 1000


def model_threshold(model: str, options: dict) -> float:
    from faceaudit.models import load_backend

    return float(load_backend(model, **options).embedder.default_threshold)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--models", default="sface,dlib")
    ap.add_argument("--policies", default="central")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("bench-out"))
    ap.add_argument("--time-images", type=int, default=200, help="images timed per model (0: no timing)")
    ap.add_argument("--accept-model-license", default=None, help="'research' to include arcface-mbf")
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
        options = {}
        if resolve(model)[0].licence_gate and args.accept_model_license:
            options["accept_license"] = args.accept_model_license
        thr = model_threshold(model, options)
        if args.time_images:
            sample = paths[: args.time_images]
            ms, runtime = ms_per_image(sample, args.lfw, model, args.workers, options)
            cpu = cpu_ms_per_image(sample, args.lfw, model, options)
            timing, cpu_timing = f"{ms:.1f}", f"{cpu:.1f}"
            print(f"  {model}: {ms:.1f} ms/image wall, {cpu:.1f} CPU ms/image ({runtime})")
        else:
            timing = cpu_timing = "-"
        for policy in args.policies.split(","):
            res, secs = cached_embed(
                paths,
                args.lfw,
                args.cache / f"lfw-view2-{model}-{policy}.npz",
                model,
                policy,
                args.workers,
                **options,
            )
            scores, failed = scores_for_pairs(res, a, b)
            accs = ten_fold(scores, same, fold)
            tar, tar_thr = tar_at_far(scores, same, 1e-3)
            n_noface = sum(s == "no_face" for s in res.status)
            n_err = sum(s.startswith("error") for s in res.status)
            rows.append(
                [
                    model,
                    policy,
                    f"{accs.mean() * 100:.2f} ± {accs.std() * 100:.2f}",
                    f"{tar * 100:.2f}",
                    f"{tar_thr:.4f}",
                    f"{thr:.4f}",
                    timing,
                    cpu_timing,
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
            "τ@FAR=1e-3 (View-2)",
            "shipped τ (FMR 1e-3, all LFW)",
            f"ms/image ({args.workers} workers)",
            "CPU ms/image (1 thread)",
            "no face / unreadable images",
            "pairs scored -inf",
            "multi-face images",
            "embed s",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
