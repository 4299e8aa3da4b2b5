"""The all-pairs comparison in process and on a Dask LocalCluster, in the same run, on the same templates.

N random unit templates (d = 128) in 4 groups, subjects of 4 images (as benchmarks/audit_throughput.py). Each
mode runs in a fresh process so that its peak memory is its own: in process, compare_templates; on Dask, a
LocalCluster of W worker processes (one thread each, on 127.0.0.1) fed by a client that scatters the templates
once. Prints time, pairs/s, peak RSS of the process (in process) or of each worker and of the client (Dask),
whether the counts are identical, and the load average.

``--audit`` times the whole default audit instead (``audit_templates`` with the 1,000-resample bootstrap and the
label check, as ``faceaudit audit --templates`` computes it), in process and with ``dask=client``, checks that both
give the same ``to_dict()``, and adds the client process's CPU seconds: the work that stayed in the client.

    PYTHONPATH=src python benchmarks/audit_dask.py                      # N = 100,000 (5e9 pairs), 2 workers
    PYTHONPATH=src python benchmarks/audit_dask.py --n 20000 --workers 2
    PYTHONPATH=src python benchmarks/audit_dask.py --n 20000 --audit    # the whole default audit
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

GROUPS = ["g0", "g1", "g2", "g3"]


def _templates(n: int, d: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    subject = np.arange(n) // 4
    groups = rng.integers(0, 4, n)[subject * 4]  # a subject's images share a group
    return x, groups, subject


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _save(path: str, counts) -> None:
    np.savez(
        path,
        non_mated=counts.non_mated,
        unlabelled=counts.non_mated_unlabelled,
        mated_scores=counts.mated_scores,
        mated_bins=counts.mated_bins,
        mated_group_a=counts.mated_group_a,
        mated_group_b=counts.mated_group_b,
        mated_subject=counts.mated_subject,
    )


def _audit(x, groups, subject, client=None, n_boot: int = 1000):
    """`faceaudit audit`'s computation with its defaults: bootstrap, label check, analysis."""
    from faceaudit.audit.run import audit_templates

    paths, ids = [f"{i}.jpg" for i in range(len(x))], [str(s) for s in subject]
    return audit_templates(
        x, groups, subject, GROUPS, bootstrap=n_boot, label_check=(paths, ids), dask=client
    )


def child(mode: str, n: int, workers: int, out: str, whole_audit: bool = False) -> dict:
    from faceaudit.audit.comparator import compare_templates

    x, groups, subject = _templates(n)
    w = 3000  # warm-up (BLAS threads, page faults of the tile buffers), as in audit_throughput.py
    compare_templates(x[:w], groups[:w], subject[:w], GROUPS)
    info: dict = {"mode": mode}
    if mode == "in-process":
        t0, c0 = time.perf_counter(), time.process_time()
        result = _audit(x, groups, subject) if whole_audit else compare_templates(x, groups, subject, GROUPS)
        info["seconds"], info["client_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        info["peak_rss"] = {"process": _peak_rss()}
    else:
        from faceaudit.audit.distributed import compare_templates_dask, dask_client, worker_memory

        t_start = time.perf_counter()
        with dask_client(f"local:{workers}") as client:
            info["cluster_start_s"] = time.perf_counter() - t_start
            compare_templates_dask(x[:w], groups[:w], subject[:w], GROUPS, client=client)
            t0, c0 = time.perf_counter(), time.process_time()
            if whole_audit:
                result = _audit(x, groups, subject, client)
            else:
                result = compare_templates_dask(x, groups, subject, GROUPS, client=client)
            info["seconds"], info["client_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
            mem = worker_memory(client)
            info["peak_rss"] = {f"worker {i}": m["VmHWM"] for i, (_, m) in enumerate(sorted(mem.items()))}
            info["peak_rss"]["client"] = _peak_rss()
    if whole_audit:
        d = result.to_dict()
        d["config"].pop("comparison_on", None)
        with open(out, "w") as f:
            json.dump(d, f, sort_keys=True, default=str)
    else:
        _save(out, result)
    return info


def _identical(a: str, b: str) -> bool:
    if a.endswith(".json"):
        with open(a) as fa, open(b) as fb:
            return fa.read() == fb.read()
    za, zb = np.load(a), np.load(b)
    return all(za[k].dtype == zb[k].dtype and np.array_equal(za[k], zb[k]) for k in za.files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="templates (default 100,000: 5e9 pairs)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    ap.add_argument("--audit", action="store_true", help="the whole default audit, not the comparison alone")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.n, args.workers, args.child[1], args.audit)))
        return 0
    pairs = args.n * (args.n - 1) // 2
    print(f"N = {args.n:,} templates, {pairs:,} pairs; {os.cpu_count()} CPUs; load before: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for mode in ("in-process", "dask"):
            out = os.path.join(tmp, f"{mode}.json" if args.audit else f"{mode}.npz")
            cmd = [
                sys.executable,
                __file__,
                "--n",
                str(args.n),
                "--workers",
                str(args.workers),
                "--child",
                mode,
                out,
            ]
            cmd += ["--audit"] if args.audit else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            outs[mode] = out
            print(f"  {mode}: done, load {os.getloadavg()}", file=sys.stderr)
        same = _identical(outs["in-process"], outs["dask"])
    label = {"in-process": "in process", "dask": f"Dask LocalCluster, {args.workers} workers x 1 thread"}
    what = "the whole default audit" if args.audit else "the comparison"
    print(
        f"\n{what}\n\n| mode | seconds | pairs/s | client CPU s | peak RSS (MiB) |\n|---|---:|---:|---:|---|"
    )
    for r in rows:
        mem = ", ".join(f"{k} {v / 2**20:,.0f}" for k, v in r["peak_rss"].items())
        cpu = r["client_cpu_s"]
        print(f"| {label[r['mode']]} | {r['seconds']:.1f} | {pairs / r['seconds']:.3g} | {cpu:.1f} | {mem} |")
    if "cluster_start_s" in rows[1]:
        print(f"\nLocalCluster start-up (not in the time above): {rows[1]['cluster_start_s']:.1f} s")
    if args.audit:
        print(f"audits identical (to_dict(), every rate, interval and suspect): {same}")
    else:
        print(f"counts identical (histograms and mated scores, bit for bit): {same}")
    print(f"load average after: {os.getloadavg()}")
    return 0 if same else 2


if __name__ == "__main__":
    sys.exit(main())
