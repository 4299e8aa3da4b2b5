"""Bulk enrolment speed (``Gallery.enroll_many``) into PostgreSQL and SQLite, side by side in one run.

Enrols SIZE synthetic subjects (one 128-d template each) in batches of BATCH, on a throwaway PostgreSQL
cluster (tests/pg_cluster.py: Debian's postgresql package) or ``--db URL``, and into a SQLite file, and prints
subjects per second for each store. ``--profile`` prints the top of a cProfile of the PostgreSQL run.

    PYTHONPATH=src python benchmarks/bulk_enrol.py --size 20000
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time

import numpy as np
from _common import postgres_url

from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.crypto import generate_key

MODEL = "bench-model"
CONSENT = Consent("benchmark", "benchmark")


class FakeEngine:
    model_id, threshold, policy, dim = MODEL, 0.5, "central", 128


def bench(db: str, size: int, batch: int, profile: bool = False) -> float:
    """Subjects per second enrolling ``size`` subjects into ``db``."""
    X = np.random.default_rng(1).standard_normal((size, 128)).astype(np.float32)
    gallery = Gallery(db, key=generate_key(), engine=FakeEngine())
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    gallery.enroll_many(
        ((f"s{i}", f"n{i}", X[i : i + 1]) for i in range(size)),
        consent=CONSENT,
        operator="bench",
        model_id=MODEL,
        batch_size=batch,
    )
    if prof is not None:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    rate = size / (time.perf_counter() - t0)
    gallery.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20_000, help="subjects to enrol into each store")
    ap.add_argument("--batch", type=int, default=2000, help="subjects per transaction")
    ap.add_argument("--db", default=None, help="a PostgreSQL URL (default: a throwaway cluster)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the PostgreSQL run")
    args = ap.parse_args()
    load = os.getloadavg()
    with postgres_url(args.db, "bulk_enrol") as url, tempfile.TemporaryDirectory() as tmp:
        rows = [
            ("PostgreSQL", bench(url, args.size, args.batch, args.profile)),
            ("SQLite", bench(f"{tmp}/g.db", args.size, args.batch)),
        ]
    print(f"\n{args.size:,} subjects, batches of {args.batch:,}; load average {load[0]:.1f}\n")
    print("| store | subjects/s |")
    print("|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
