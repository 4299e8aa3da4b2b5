"""Decode + detect + embed throughput over 200 LFW images: faceaudit's default against face_recognition.

The baseline is the face_recognition library's own default calls (``load_image_file``, ``face_locations``,
``face_encodings``: dlib HOG, upsample 1, 5-point, 1 jitter). Each configuration runs in its own process so its
peak RSS is its own; with 2 workers both sides use a pool of 2 processes, each single-threaded. Start-up
(model loading, starting the pool, and two warm-up images per worker) is timed apart, on both sides, and
printed in its own column: the throughput is that of a long-running process. Each configuration then makes
``--repeat`` timed passes over the same images (default 3); the table reports the median and every pass.

    python benchmarks/throughput.py --lfw ../shared/datasets/lfw
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import print_table, read_csv

N_IMAGES = 200


def _fr_one(path: str) -> int:
    import face_recognition

    image = face_recognition.load_image_file(path)
    return len(face_recognition.face_encodings(image, face_recognition.face_locations(image)))


def face_recognition_runner(paths: list[str], workers: int):
    """Start-up done (models loaded, pool started and warmed); returns the timed call."""
    import face_recognition  # noqa: F401  (loads dlib's models in this process; forked workers inherit them)

    if workers == 1:
        _fr_one(paths[0])
        _fr_one(paths[1])
        return lambda: sum(_fr_one(p) for p in paths), lambda: None
    from multiprocessing import get_context

    pool = get_context("fork").Pool(workers)
    pool.map(_fr_one, paths[: 2 * workers], chunksize=1)
    return lambda: sum(pool.map(_fr_one, paths, chunksize=8)), lambda: (pool.close(), pool.join())


def faceaudit_runner(paths: list[str], root: str, workers: int):
    """Start-up done (models loaded, pool started and warmed); returns the timed call."""
    from faceaudit.pipeline.batch import WorkerPool, embed_paths

    rel = [os.path.relpath(p, root) for p in paths]
    if workers == 1:
        embed_paths(rel[:2], root, workers=1, threads=1)
        return lambda: int(embed_paths(rel, root, workers=1, threads=1).ok.sum()), lambda: None
    pool = WorkerPool(workers, threads=1).warm(paths[:2])
    return lambda: int(embed_paths(rel, root, pool=pool).ok.sum()), pool.close


def child(which: str, workers: int, root: str, paths: list[str], repeat: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    # start-up (model loading, worker pool start and two warm-up images per worker) is timed apart from the
    # throughput, on both sides, as a long-running service would pay it once
    t0 = time.perf_counter()
    run, close = (
        faceaudit_runner(paths, root, workers)
        if which == "faceaudit"
        else face_recognition_runner(paths, workers)
    )
    startup = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        faces = run()
        runs.append(time.perf_counter() - t0)
    close()
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "runs": runs,
                "startup": startup,
                "faces": faces,
                "rss_mb": rss_self,
                "rss_worker_mb": rss_children,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--n", type=int, default=N_IMAGES)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed passes over the images per configuration (both libraries); the median is reported",
    )
    ap.add_argument("--child", nargs=2, metavar=("WHICH", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    rows = read_csv(args.lfw / "protocol" / "view2_pairs.csv")
    rel = sorted({r["path_a"] for r in rows} | {r["path_b"] for r in rows})[: args.n]
    paths = [str(args.lfw / p) for p in rel]
    if args.child:
        child(args.child[0], int(args.child[1]), str(args.lfw), paths, args.repeat)
        return
    results = {}
    for workers in (1, 2):
        for which in ("face_recognition", "faceaudit"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--lfw",
                    str(args.lfw),
                    "--n",
                    str(args.n),
                    "--repeat",
                    str(args.repeat),
                    "--child",
                    which,
                    str(workers),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["secs"] = statistics.median(r["runs"])
            results[(which, workers)] = r
            print(f"  {which} x{workers}: {r}", file=sys.stderr)
    table = []
    for workers in (1, 2):
        base = results[("face_recognition", workers)]
        for which in ("face_recognition", "faceaudit"):
            r = results[(which, workers)]
            ips = len(paths) / r["secs"]
            table.append(
                [
                    which,
                    workers,
                    f"{ips:.1f}",
                    f"{1000 * r['secs'] / len(paths):.1f}",
                    r["faces"],
                    f"{r['rss_mb']:.0f}",
                    f"{r['rss_worker_mb']:.0f}" if workers > 1 else "-",
                    f"{base['secs'] / r['secs']:.2f}×",
                    " / ".join(f"{1000 * t / len(paths):.1f}" for t in r["runs"]),
                    f"{r['startup']:.2f}",
                ]
            )
    print(
        f"\n{len(paths)} LFW images (250×250), decode + detect + embed, {os.cpu_count()} cores; "
        f"median of {args.repeat} timed passes per configuration\n"
    )
    print_table(
        [
            "library",
            "workers",
            "images/s",
            "ms/image",
            "templates",
            "peak RSS MB (main)",
            "peak RSS MB (a worker)",
            "speed-up vs face_recognition",
            "each pass, ms/image",
            "start-up s (not in the timing)",
        ],
        table,
    )


if __name__ == "__main__":
    main()
