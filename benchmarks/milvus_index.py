"""The Milvus index beside the exact index: recall@10 against exact search, p50/p99 latency, build time.

Used by benchmarks/identify_latency.py (``--milvus URI``) on the gallery's own templates, and runnable on its
own on N random unit templates (d = 128):

    PYTHONPATH=src python benchmarks/milvus_index.py --n 1000000 --uri /tmp/bench-milvus.db
    PYTHONPATH=src python benchmarks/milvus_index.py --n 100000 --uri /tmp/m.db --index-type IVF_FLAT

``--uri`` is a milvus-lite file or a server (``http://host:19530``). The collection is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from faceaudit.gallery.index import TemplateIndex
from faceaudit.gallery.milvus_index import MilvusIndex


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1e3, q)), 2)


def compare(
    X: np.ndarray,
    ids: np.ndarray,
    queries: list[np.ndarray],
    uri: str,
    index_type: str | None = None,
    k: int = 10,
    near: np.ndarray | None = None,
) -> dict:
    """Build a Milvus collection of ``X``, search ``queries``; recall@k against the exact index, latencies.

    ``near`` marks the queries that lie close to a stored template (as a mated search does); recall is then
    also given separately for them and for the others. ``top1_agreement`` is the share of queries whose best
    candidate is the exact index's best (for a mated probe, whether rank-1 identification is unchanged)."""
    kind = f"milvus:{uri}" + (f"?index_type={index_type}" if index_type else "")
    exact = TemplateIndex(X.shape[1])
    t0 = time.perf_counter()
    exact.build(ids, X)
    t_exact = time.perf_counter() - t0
    index = MilvusIndex(X.shape[1], kind, "faceaudit_bench")
    try:
        index.drop()
        t0 = time.perf_counter()
        index.build(ids, X)
        t_build = time.perf_counter() - t0
        for q in queries[:5]:  # warm-up (loads the collection's index)
            index.search(q, k)
        lat_m, lat_e, hits, top1 = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            got, _ = index.search(q, k)
            lat_m.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            want, _ = exact.search(q, k)
            lat_e.append(time.perf_counter() - t0)
            hits.append(len(set(got.tolist()) & set(want.tolist())))
            top1.append(len(got) > 0 and got[0] == want[0])
        h = np.array(hits, np.float64)
        t1 = np.array(top1, bool)
        near = np.zeros(len(h), bool) if near is None else np.asarray(near, bool)
        return {
            "n": len(ids),
            "milvus": kind,
            "index_type": index.target.index_type,
            "recall_at_k": round(h.sum() / (k * len(queries)), 4),
            "recall_at_k_near": round(h[near].mean() / k, 4) if near.any() else None,
            "recall_at_k_random": round(h[~near].mean() / k, 4) if (~near).any() else None,
            "top1_agreement": round(float(t1.mean()), 4),
            "top1_agreement_near": round(float(t1[near].mean()), 4) if near.any() else None,
            "k": k,
            "queries": len(queries),
            "milvus_p50_ms": _pct(lat_m, 50),
            "milvus_p99_ms": _pct(lat_m, 99),
            "exact_p50_ms": _pct(lat_e, 50),
            "exact_p99_ms": _pct(lat_e, 99),
            "milvus_build_s": round(t_build, 1),
            "exact_build_s": round(t_exact, 1),
        }
    finally:
        index.drop()
        index.close()
        exact.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--uri", required=True, help="milvus-lite file (.db) or http://host:19530")
    ap.add_argument(
        "--index-type", default=None, help="FLAT, IVF_FLAT, HNSW... (default: FLAT lite, HNSW server)"
    )
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, 128), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # half the queries lie near a stored template (mated-like), half are random
    near = X[rng.integers(0, args.n, args.queries // 2)] + 0.05 * rng.standard_normal(
        (args.queries // 2, 128)
    )
    qs = np.vstack([near, rng.standard_normal((args.queries - len(near), 128))]).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    load = os.getloadavg()
    near_mask = np.arange(len(qs)) < len(near)
    out = compare(X, np.arange(args.n, dtype=np.int64), list(qs), args.uri, args.index_type, near=near_mask)
    out["load_avg"] = [load, os.getloadavg()]
    print(json.dumps(out))
    print(
        "| templates | index | recall@10 all / near / random | Milvus p50 / p99 ms | exact p50 / p99 ms "
        "| top-1 agreement all / near | Milvus build s |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {out['n']:,} | {out['index_type']} | {out['recall_at_k']} / {out['recall_at_k_near']} / "
        f"{out['recall_at_k_random']} | {out['milvus_p50_ms']} / {out['milvus_p99_ms']} | "
        f"{out['exact_p50_ms']} / {out['exact_p99_ms']} | {out['top1_agreement']} / {out['top1_agreement_near']} | "
        f"{out['milvus_build_s']} |"
    )


if __name__ == "__main__":
    main()
