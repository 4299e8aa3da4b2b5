"""Where the comparator's time goes: SGEMM, the float → integer bin cast, and np.bincount, per pair.

One BLAS thread, off-diagonal 2048² tiles of N = 8,192 random templates (4 groups), each step timed on its own
(the masking and mated-pair step is timed as score_tile minus its SGEMM). Prints ns per pair and shares.

    PYTHONPATH=src python benchmarks/comparator_profile.py
"""

from __future__ import annotations

import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from faceaudit.audit.scores import score_tile, sort_templates


def main() -> None:
    rng = np.random.default_rng(0)
    n = 8192
    x = rng.standard_normal((n, 128), dtype=np.float32)
    subject = np.arange(n) // 4
    groups = rng.integers(0, 4, n)[subject * 4]
    st = sort_templates(x, groups, subject, ["a", "b", "c", "d"])
    tiles = [t for t in st.tiles(2048) if t[0] != t[1]][:6] * 3
    buf = np.empty((2048, 2048), np.float32)
    spent = {"SGEMM": 0.0, "mask + mated pairs": 0.0, "float -> int cast": 0.0, "np.bincount": 0.0}
    load = os.getloadavg()
    with threadpool_limits(1):
        for rows, cols in tiles:
            (r0, r1), (c0, c1) = rows, cols
            v = buf[: r1 - r0, : c1 - c0]
            t = time.perf_counter()
            np.matmul(st.rows[r0:r1], st.cols[c0:c1].T, out=v)
            sgemm = time.perf_counter() - t
            spent["SGEMM"] += sgemm
            t = time.perf_counter()
            score_tile(st, rows, cols, buf)
            spent["mask + mated pairs"] += max(0.0, time.perf_counter() - t - sgemm)
            t = time.perf_counter()
            idx = v.astype(np.intp)
            spent["float -> int cast"] += time.perf_counter() - t
            t = time.perf_counter()
            np.bincount(idx.ravel(), minlength=st.grid.n_bins + 1)
            spent["np.bincount"] += time.perf_counter() - t
    pairs = sum((r[1] - r[0]) * (c[1] - c[0]) for r, c in tiles)
    total = sum(spent.values())
    print(f"{pairs:,} pairs, one BLAS thread; load average {load} -> {os.getloadavg()}")
    print("| step | ns per pair | share |\n|---|---:|---:|")
    for step, s in spent.items():
        print(f"| {step} | {s / pairs * 1e9:.2f} | {100 * s / total:.0f} % |")


if __name__ == "__main__":
    main()
