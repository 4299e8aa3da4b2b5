"""How fast a second replica's index follows a change made through the first, and what each catch-up costs.

Two ``Gallery`` objects on one store stand for two service replicas. Replica A enrols one subject at a time
(and erases some); replica B runs an ``IndexFollower`` and is never searched. For each change the benchmark
records the time from A's call returning to B's index reflecting the new version (polled every 0.5 ms), on
PostgreSQL (LISTEN/NOTIFY) and on SQLite (a half-second poll), in the same run, on galleries of SIZE
templates. Beside it: what one catch-up costs (the difference of template ids, opening only the new templates)
against the full rebuild that a replica did before on every foreign change (the baseline).

    PYTHONPATH=src python benchmarks/replica_follow.py                    # SIZE 20,000; a throwaway cluster
    PYTHONPATH=src python benchmarks/replica_follow.py --size 100000 --db postgresql://user@host/db

Without ``--db`` it starts a throwaway PostgreSQL cluster (tests/pg_cluster.py: Debian's postgresql package).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import postgres_url

from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.crypto import generate_key
from faceaudit.gallery.follower import IndexFollower

MODEL = "bench-model"
CONSENT = Consent("benchmark", "benchmark")


class FakeEngine:
    model_id, threshold, policy, dim = MODEL, 0.5, "central", 128


def units(n: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def bench(db: str, size: int, changes: int) -> dict:
    key = generate_key()
    a = Gallery(db, key=key, engine=FakeEngine())
    X = units(size + changes, 1)
    t0 = time.perf_counter()
    a.enroll_many(
        ((f"s{i}", f"n{i}", X[i : i + 1]) for i in range(size)),
        consent=CONSENT,
        operator="bench",
        model_id=MODEL,
        batch_size=2000,
    )
    fill_s = time.perf_counter() - t0
    b = Gallery(db, key=key, engine=FakeEngine(), create=False)
    t0 = time.perf_counter()
    b.rebuild_index(MODEL)
    rebuild_s = time.perf_counter() - t0
    follower = IndexFollower(b).start()
    time.sleep(1.0)  # let the listener connect
    lags, catch_ups = [], []
    original = b.sync_index

    def timed_sync() -> tuple[int, int]:
        t = time.perf_counter()
        out = original()
        if out != (0, 0):
            catch_ups.append(time.perf_counter() - t)
        return out

    b.sync_index = timed_sync  # type: ignore[method-assign]
    for i in range(changes):
        if i % 5 == 4:
            a.erase(f"s{i}", reason="benchmark", operator="bench")
        else:
            a.enroll_templates(
                f"c{i}",
                X[size + i : size + i + 1],
                name="c",
                consent=CONSENT,
                operator="bench",
                model_id=MODEL,
            )
        t = time.perf_counter()
        version = a.version
        while b.index_version < version:
            if time.perf_counter() - t > 30:
                raise RuntimeError("replica B did not follow within 30 s")
            time.sleep(0.0005)
        lags.append(time.perf_counter() - t)
        time.sleep(0.05)
    follower.stop()
    a.close()
    b.close()
    ms = np.array(lags) * 1e3
    return {
        "size": size,
        "fill_s": fill_s,
        "lag_p50_ms": float(np.percentile(ms, 50)),
        "lag_p99_ms": float(np.percentile(ms, 99)),
        "catch_up_ms": float(np.median(catch_ups) * 1e3) if catch_ups else float("nan"),
        "rebuild_ms": rebuild_s * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20_000, help="templates in the gallery before the changes")
    ap.add_argument("--changes", type=int, default=40, help="enrolments and erasures through replica A")
    ap.add_argument("--db", default=None, help="a PostgreSQL URL (default: a throwaway cluster)")
    args = ap.parse_args()
    load = os.getloadavg()
    rows = []
    with postgres_url(args.db, "replica_follow") as url, tempfile.TemporaryDirectory() as tmp:
        for name, db in (("PostgreSQL (LISTEN/NOTIFY)", url), ("SQLite (0.5 s poll)", f"{tmp}/g.db")):
            rows.append((name, bench(db, args.size, args.changes)))
    print(f"\n{args.changes} changes through replica A (1 in 5 an erasure); load average {load[0]:.1f}\n")
    print("| store | templates | fill (enroll_many) subjects/s | B follows A: p50 / p99 ms | one catch-up ms "
          "| full rebuild ms (before) |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['size']:,} | {r['size'] / r['fill_s']:,.0f} | {r['lag_p50_ms']:.1f} / "
            f"{r['lag_p99_ms']:.1f} | {r['catch_up_ms']:.1f} | {r['rebuild_ms']:.0f} |"
        )


if __name__ == "__main__":
    main()
