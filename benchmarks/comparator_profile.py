"""Where the comparator's time goes, per pair and core, against the SGEMM that the audit is measured by.

One BLAS thread, the off-diagonal 2048² tiles of N = 8,192 random templates (4 groups). Each step is timed on its
own, ``--repeat`` times (the table gives the median):

- SGEMM of the float32 templates, a tile at a time (the bare-SGEMM baseline of ``audit_throughput.py``);
- DGEMM of the augmented float64 templates, a slab of ``--slab-rows`` rows at a time (the comparator's
  arithmetic: it yields exact bin coordinates);
- the float64 → integer bin cast, and ``np.bincount`` into a cell's histogram (what counting costs).

It then prints the best ratio that any exact comparator built from these steps can reach, SGEMM ÷ (DGEMM +
cast + bincount), and the ratio with binning free, SGEMM ÷ DGEMM: an upper bound on ``audit / SGEMM`` in
``audit_throughput.py`` on this CPU, before the bootstrap, the label check and the analysis are counted.

    PYTHONPATH=src python benchmarks/comparator_profile.py
    PYTHONPATH=src python benchmarks/comparator_profile.py --slab-rows 256   # another slab height
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from faceaudit.audit.comparator import SLAB_ROWS
from faceaudit.audit.scores import BLOCK, sort_templates


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown CPU")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
    return f"{model}; " + " ".join(f for f in wanted if f in flags)


def _one_pass(st, x32: np.ndarray, tiles: list, rows: int) -> dict[str, float]:
    n_bins = st.grid.n_bins
    s32 = np.empty((BLOCK, BLOCK), np.float32)
    s64 = np.empty((rows, BLOCK), np.float64)
    idx = np.empty((rows, BLOCK), np.intp)
    spent = dict.fromkeys(
        ("SGEMM (float32, the baseline)", "DGEMM (augmented float64)", "cast", "bincount"), 0.0
    )
    keys = list(spent)
    for (r0, r1), (c0, c1) in tiles:
        t = time.perf_counter()
        np.matmul(x32[r0:r1], x32[c0:c1].T, out=s32[: r1 - r0, : c1 - c0])  # as audit_throughput.py: a tile
        spent[keys[0]] += time.perf_counter() - t
        for a in range(r0, r1, rows):  # as the comparator: slabs of the tile
            b = min(r1, a + rows)
            t0 = time.perf_counter()
            np.matmul(st.rows[a:b], st.cols[c0:c1].T, out=s64[: b - a, : c1 - c0])
            t1 = time.perf_counter()
            np.copyto(idx[: b - a, : c1 - c0], s64[: b - a, : c1 - c0], casting="unsafe")
            t2 = time.perf_counter()
            np.bincount(idx[: b - a, : c1 - c0].ravel(), minlength=n_bins + 1)
            t3 = time.perf_counter()
            for k, dt in zip(keys[1:], (t1 - t0, t2 - t1, t3 - t2), strict=True):
                spent[k] += dt
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--slab-rows", type=int, default=SLAB_ROWS, help="rows of a slab (the comparator's: %(default)s)"
    )
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n, 128), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    subject = np.arange(a.n) // 4
    groups = rng.integers(0, 4, a.n)[subject * 4]
    st = sort_templates(x, groups, subject, ["a", "b", "c", "d"])
    x32 = st.cols[:, :-1].astype(np.float32)  # the same sorted unit templates, in float32
    tiles = [t for t in st.tiles(BLOCK) if t[0] != t[1]]  # off-diagonal: every entry is a pair
    pairs = sum((r1 - r0) * (c1 - c0) for (r0, r1), (c0, c1) in tiles)
    load = os.getloadavg()
    with threadpool_limits(1, user_api="blas"):
        _one_pass(st, x32, tiles[:2], a.slab_rows)  # warm-up
        runs = [_one_pass(st, x32, tiles, a.slab_rows) for _ in range(a.repeat)]
    ns = {k: statistics.median(r[k] for r in runs) / pairs * 1e9 for k in runs[0]}
    print(
        f"{pairs:,} pairs in {len(tiles)} tiles of {BLOCK}², slabs of {a.slab_rows} rows, one BLAS thread, "
        f"median of {a.repeat}; {_cpu()}"
    )
    print(f"load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| step | ns per pair and core | each pass |\n|---|---:|---|")
    for k, v in ns.items():
        each = " / ".join(f"{r[k] / pairs * 1e9:.2f}" for r in runs)
        print(f"| {k} | {v:.2f} | {each} |")
    sgemm, dgemm = ns["SGEMM (float32, the baseline)"], ns["DGEMM (augmented float64)"]
    exact = dgemm + ns["cast"] + ns["bincount"]
    print(f"\nDGEMM / SGEMM: {dgemm / sgemm:.2f}")
    print(f"best exact comparator / SGEMM (SGEMM ÷ (DGEMM + cast + bincount)): {sgemm / exact:.2f}")
    print(f"with binning free (SGEMM ÷ DGEMM): {sgemm / dgemm:.2f}")


if __name__ == "__main__":
    main()
