"""1:N search speed: N probes against an N-entry gallery, blocked top-k GEMM (faceaudit) beside FAISS.

    PYTHONPATH=src python benchmarks/identification_speed.py [--n 50000] [--dim 128] [--top 10] [--threads 2]

Synthetic unit templates (seeded); the two searches must return the same top-1 candidate for (almost) every
probe. Prints a table: seconds, searches per second, peak RSS. Report `uptime` beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-faiss", action="store_true")
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    import numpy as np

    from faceaudit.audit.identification import search

    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((a.n, a.dim)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    probes = gallery + 0.9 * rng.standard_normal((a.n, a.dim)).astype(np.float32) / np.sqrt(a.dim)
    mate = np.arange(a.n)
    rows = []
    t0 = time.perf_counter()
    s = search(gallery, probes, mate, top=a.top)
    dt = time.perf_counter() - t0
    rows.append(("faceaudit blocked top-k GEMM (+ mate rank)", dt))
    try:
        import faiss
    except ImportError:
        print("faiss not installed here: FAISS row skipped", file=sys.stderr)
        a.no_faiss = True
    if not a.no_faiss:
        faiss.omp_set_num_threads(a.threads)
        index = faiss.IndexFlatIP(a.dim)
        index.add(gallery)
        p = probes / np.linalg.norm(probes, axis=1, keepdims=True)
        t0 = time.perf_counter()
        _, ids = index.search(p, a.top)
        rows.append(("FAISS IndexFlatIP search (top-k only)", time.perf_counter() - t0))
        agree = float((ids[:, 0] == s.candidates[:, 0]).mean())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"N = {a.n:,} probes × {a.n:,} gallery, dim {a.dim}, top {a.top}, {a.threads} threads")
    print("| search | seconds | searches/s |\n|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.1f} | {a.n / sec:,.0f} |")
    print(f"peak RSS {rss:.0f} MiB" + ("" if a.no_faiss else f"; top-1 agreement {agree:.4%}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
