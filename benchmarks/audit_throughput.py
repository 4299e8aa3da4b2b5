"""Throughput and memory of the comparator and of the whole audit, against bare SGEMM.

For each N, in a fresh process: N random unit templates (d = 128) in 4 groups, subjects of 4 images; time
compare_templates over all N(N-1)/2 pairs ("engine"), the audit with `faceaudit audit`'s defaults on the same
templates ("audit": the comparison, the 1,000-resample subject-clustered bootstrap, the label check and the
analysis, i.e. audit_templates as `faceaudit audit --templates` runs it, without reading files or writing the
report), and raw numpy SGEMM over the same tiles (scores only, thrown away), each after a small warm-up call;
peak RSS of the process. Then fairlearn's MetricFrame on materialised pairs at one N.

``--baseline-src DIR`` adds the audit of another checkout's ``src`` (e.g. the commit before) in the same run.

    PYTHONPATH=src python benchmarks/audit_throughput.py                # N = 5k, 20k, 50k; fairlearn at 5k
    PYTHONPATH=src python benchmarks/audit_throughput.py --sizes 5000 --fairlearn-n 2000
    PYTHONPATH=src python benchmarks/audit_throughput.py --sizes 50000 --fairlearn-n 0 --baseline-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

BLOCK = 2048


def _templates(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)  # no float64 temporary: a clean RSS baseline
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    groups = rng.integers(0, 4, n)
    subject = np.arange(n) // 4
    groups = groups[subject * 4]  # a subject's images share a group
    return x, groups, subject


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _compare_templates():
    try:
        from faceaudit.audit.comparator import compare_templates
    except ImportError:  # a baseline checkout from before the comparator module
        from faceaudit.audit.scores import compare_templates
    return compare_templates


def _audit(x, groups, subject, n_boot: int = 1000):
    """`faceaudit audit`'s computation with its defaults: bootstrap, label check, analysis."""
    import inspect

    from faceaudit.audit.run import audit_templates

    names = ["g0", "g1", "g2", "g3"]
    paths, ids = [f"{i}.jpg" for i in range(len(x))], [str(s) for s in subject]
    if "label_check" in inspect.signature(audit_templates).parameters:
        return audit_templates(x, groups, subject, names, bootstrap=n_boot, label_check=(paths, ids))
    from faceaudit.audit.label_errors import suspects_1to1  # before: the label check was a pass of its own

    result = audit_templates(x, groups, subject, names, bootstrap=n_boot)
    result.label_check = suspects_1to1(x, subject, paths, ids)
    return result


def child(n: int, d: int, mode: str) -> dict:
    compare_templates = _compare_templates()  # imported in every mode: same RSS baseline

    x, groups, subject = _templates(n, d)
    pairs = n * (n - 1) // 2
    # warm-up on 3,000 templates (BLAS threads, page faults of the tile buffers) so that both modes time
    # steady-state throughput
    w = 3000
    if mode == "engine":
        compare_templates(x[:w], groups[:w], subject[:w], ["g0", "g1", "g2", "g3"], block=BLOCK)
    elif mode == "audit":
        _audit(x[:w], groups[:w], subject[:w], n_boot=50)
    else:
        np.matmul(x[:BLOCK], x[:BLOCK].T)
    base = _rss_mib()
    t0 = time.perf_counter()
    if mode == "engine":
        counts = compare_templates(x, groups, subject, ["g0", "g1", "g2", "g3"], block=BLOCK)
        assert counts.non_mated_total().sum() + len(counts.mated_scores) == pairs
    elif mode == "audit":
        result = _audit(x, groups, subject)
        assert result.by_group["n_non_mated"].sum() > 0
    else:
        buf = np.empty((BLOCK, BLOCK), np.float32)
        for r0 in range(0, n, BLOCK):
            r1 = min(n, r0 + BLOCK)
            for c0 in range(r0, n, BLOCK):
                c1 = min(n, c0 + BLOCK)
                np.matmul(x[r0:r1], x[c0:c1].T, out=buf[: r1 - r0, : c1 - c0])
    dt = time.perf_counter() - t0
    return {
        "n": n,
        "mode": mode,
        "pairs": pairs,
        "seconds": dt,
        "pairs_per_s": pairs / dt,
        "templates_mib": x.nbytes / 2**20,
        "rss_before_mib": base,
        "peak_rss_mib": _rss_mib(),
    }


def fairlearn_child(n: int, d: int) -> dict:
    import pandas as pd
    from fairlearn.metrics import MetricFrame, false_negative_rate, false_positive_rate

    x, groups, subject = _templates(n, d)
    t0 = time.perf_counter()
    iu, ju = np.triu_indices(n, 1)
    scores = np.einsum("ij,ij->i", x[iu], x[ju]) if n <= 2000 else (x @ x.T)[iu, ju]
    same_group = groups[iu] == groups[ju]
    y_true = (subject[iu] == subject[ju])[same_group].astype(np.int8)
    tau = np.quantile(scores, 1 - 1e-3)
    y_pred = (scores[same_group] >= tau).astype(np.int8)
    sens = pd.Series(groups[iu][same_group].astype(str), name="group")
    mf = MetricFrame(
        metrics={"fmr": false_positive_rate, "fnmr": false_negative_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sens,
    )
    _ = mf.by_group
    dt = time.perf_counter() - t0
    pairs = n * (n - 1) // 2
    return {"n": n, "mode": "fairlearn", "pairs": pairs, "seconds": dt, "pairs_per_s": pairs / dt,
            "templates_mib": x.nbytes / 2**20, "peak_rss_mib": _rss_mib()}  # fmt: skip


def run(args: list[str], src: str = "src") -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--fairlearn-n", type=int, default=5000, help="N for the MetricFrame baseline (0: skip)")
    ap.add_argument(
        "--baseline-src", help="also time the audit of this checkout's src folder (e.g. the commit before)"
    )
    ap.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        mode, n = a.child[0], int(a.child[1])
        res = fairlearn_child(n, a.dim) if mode == "fairlearn" else child(n, a.dim, mode)
        print(json.dumps(res))
        return
    print(f"# audit_throughput: d = {a.dim}, tile {BLOCK}², {os.cpu_count()} CPUs, numpy {np.__version__}\n")
    cols = ["engine", "audit", *(["audit (baseline)"] if a.baseline_src else [])]
    print("| N | pairs | SGEMM s | " + " | ".join(f"{c} s | {c} / SGEMM" for c in cols)
          + " | SGEMM peak RSS (MiB) | " + " | ".join(f"{c} peak RSS (MiB)" for c in cols) + " |")  # fmt: skip
    print("|---" * (3 + 3 * len(cols) + 1) + "|")
    for n in [int(s) for s in a.sizes.split(",") if s]:
        base = ["--child", "sgemm", str(n), "--dim", str(a.dim)]
        s = run(base)
        res = [
            run(["--child", "engine", str(n), "--dim", str(a.dim)]),
            run(["--child", "audit", str(n), "--dim", str(a.dim)]),
        ]
        if a.baseline_src:
            res.append(run(["--child", "audit", str(n), "--dim", str(a.dim)], src=a.baseline_src))
        bad = [r["error"] for r in [s, *res] if "error" in r]
        if bad:
            print(f"| {n} | error: {bad[0]} |")
            continue
        speeds = " | ".join(f"{r['seconds']:.2f} | {s['seconds'] / r['seconds']:.2f}" for r in res)
        rss = " | ".join(f"{r['peak_rss_mib']:.0f}" for r in res)
        print(
            f"| {n:,} | {s['pairs']:.3g} | {s['seconds']:.2f} | {speeds} | {s['peak_rss_mib']:.0f} | {rss} |",
            flush=True,
        )
    if a.fairlearn_n:
        f = run(["--child", "fairlearn", str(a.fairlearn_n), "--dim", str(a.dim)])
        e = run(["--child", "engine", str(a.fairlearn_n), "--dim", str(a.dim)])
        if "error" in f:
            print(f"\nfairlearn MetricFrame at N = {a.fairlearn_n}: {f['error']}")
        else:
            print(f"\n| N = {a.fairlearn_n:,} | pairs/s | seconds | peak RSS (MiB) |\n|---|---|---|---|")
            print(f"| fairlearn MetricFrame (materialised pairs, one threshold) | {f['pairs_per_s'] / 1e6:.2f} M "
                  f"| {f['seconds']:.1f} | {f['peak_rss_mib']:.0f} |")  # fmt: skip
            print(f"| faceaudit streaming (every threshold) | {e['pairs_per_s'] / 1e6:.2f} M | {e['seconds']:.1f} "
                  f"| {e['peak_rss_mib']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
