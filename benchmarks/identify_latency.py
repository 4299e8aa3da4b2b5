"""Gallery benchmark: 1:N top-10 latency (index vs numpy brute force vs FAISS flat), open + rebuild time, and
enrolment throughput into SQLite with AES-GCM sealing and one ledger entry per subject.

Galleries hold random unit vectors (d = 128) with real LFW SFace templates mixed in (two references for each of
a few hundred identities; a third image of each is a mated probe). Without /work/shared/datasets/lfw it runs on
random vectors only.

    PYTHONPATH=src python benchmarks/identify_latency.py --sizes 100000 1000000 --out /tmp/gallery-bench.json
    PYTHONPATH=src python benchmarks/identify_latency.py --sizes 1000000 --milvus /tmp/bench-milvus.db --milvus-index-type HNSW
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.index import TemplateIndex

LFW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw"
KEY = bytes(range(32))
CONSENT = Consent("benchmark (synthetic subjects)", "benchmark")


def lfw_templates(
    n_ids: int, root: Path
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(references: (identity, 2×128), probes: (identity, 128)) from the LFW min5 subset; empty when absent."""
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        print(f"LFW not found at {root}: random templates only")
        return [], []
    from faceaudit.pipeline.batch import embed_paths

    by_id: dict[str, list[str]] = {}
    with open(manifest, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("in_min5_subset") == "1":
                by_id.setdefault(row["subject_id"], []).append(row["path"])
    ids = sorted(by_id)[:n_ids]
    paths = [p for i in ids for p in sorted(by_id[i])[:3]]
    t0 = time.perf_counter()
    res = embed_paths(paths, root, workers=2)
    print(f"embedded {len(paths)} LFW images in {time.perf_counter() - t0:.1f} s")
    refs, probes = [], []
    for k, ident in enumerate(ids):
        rows = list(range(3 * k, 3 * k + 3))
        if all(res.status[r] == "ok" for r in rows):
            refs.append((ident, res.templates[rows[:2]]))
            probes.append((ident, res.templates[rows[2]]))
    return refs, probes


def random_units(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1e3, q))


def bench_size(n_total: int, refs, probes, args, engine) -> dict:
    rng = np.random.default_rng(n_total)
    work = Path(args.workdir)
    db = work / f"gallery_{n_total}.db"
    for p in work.glob(f"gallery_{n_total}.db*"):
        if p.suffix != ".key":
            p.unlink()
    n_real = 2 * len(refs)
    n_random = n_total - n_real

    def records():
        for ident, t in refs:
            yield f"lfw:{ident}", ident.replace("_", " "), t
        for a in range(0, n_random, 50_000):
            block = random_units(rng, min(50_000, n_random - a))
            for i, v in enumerate(block):
                yield f"rnd:{a + i}", f"random {a + i}", v[None]

    g = Gallery(db, key=KEY, engine=engine, operator="benchmark")
    t0 = time.perf_counter()
    g.enroll_many(
        records(), consent=CONSENT, operator="benchmark", model_id=engine.model_id, batch_size=args.batch
    )
    t_enrol = time.perf_counter() - t0
    g.close()
    size_mb = sum(p.stat().st_size for p in work.glob(f"gallery_{n_total}.db*")) / 2**20

    t0 = time.perf_counter()
    g = Gallery(db, key=KEY, engine=engine, create=False)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_loaded = g.rebuild_index()
    t_rebuild = time.perf_counter() - t0
    index = g._live.index
    X = index._X[: index._n]
    ids = index._ids[: index._n]
    t0 = time.perf_counter()
    TemplateIndex(X.shape[1]).build(ids, X)
    t_index_only = time.perf_counter() - t0

    import faiss

    flat = faiss.IndexFlatIP(X.shape[1])
    flat.add(X)
    queries = [v for _, v in probes][: args.queries // 2]
    queries += list(random_units(rng, args.queries - len(queries)))
    lat_index, lat_numpy, lat_flat, agree = [], [], [], 0
    for q in queries:
        t0 = time.perf_counter()
        got, _ = index.search(q, 10)
        lat_index.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s = X @ q
        top = np.argpartition(-s, 10)[:10]
        want = ids[top[np.argsort(-s[top])]]
        lat_numpy.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        flat.search(q[None], 10)
        lat_flat.append(time.perf_counter() - t0)
        agree += int(set(got.tolist()) == set(want.tolist()))
    del flat
    milvus = None
    if args.milvus:  # the Milvus index beside the exact one, on the same templates and queries
        from milvus_index import compare

        lfw = np.arange(len(queries)) < min(len(probes), args.queries // 2)  # the LFW probes: mated searches
        milvus = compare(X, ids, queries, args.milvus, args.milvus_index_type, near=lfw)

    lat_e2e, rank1 = [], 0
    for ident, q in probes[: args.e2e]:
        t0 = time.perf_counter()
        res = g.identify_template(
            q, probe_sha256="0" * 64, purpose="benchmark", case="BENCH", operator="benchmark"
        )
        lat_e2e.append(time.perf_counter() - t0)
        rank1 += int(bool(res.candidates) and res.candidates[0].subject_ref == f"lfw:{ident}")
    g.close()
    out = {
        "n_templates": int(n_loaded),
        "n_lfw_templates": n_real,
        "db_mb": round(size_mb, 1),
        "enrol_s": round(t_enrol, 1),
        "enrol_templates_per_s": round(n_total / t_enrol),
        "open_s": round(t_open, 3),
        "rebuild_s": round(t_rebuild, 2),
        "index_build_only_s": round(t_index_only, 2),
        "index_p50_ms": round(pct(lat_index, 50), 2),
        "index_p99_ms": round(pct(lat_index, 99), 2),
        "numpy_p50_ms": round(pct(lat_numpy, 50), 2),
        "numpy_p99_ms": round(pct(lat_numpy, 99), 2),
        "faiss_flat_p50_ms": round(pct(lat_flat, 50), 2),
        "faiss_flat_p99_ms": round(pct(lat_flat, 99), 2),
        "exact_agreement": f"{agree}/{len(queries)}",
        "identify_e2e_p50_ms": round(pct(lat_e2e, 50), 2) if lat_e2e else None,
        "identify_e2e_p99_ms": round(pct(lat_e2e, 99), 2) if lat_e2e else None,
        "lfw_rank1": f"{rank1}/{len(lat_e2e)}" if lat_e2e else None,
        "milvus": milvus,
    }
    print(json.dumps(out), flush=True)
    if not args.keep:
        for p in work.glob(f"gallery_{n_total}.db*"):
            p.unlink()
    return out


def bench_ledger(n: int, workdir: Path) -> dict:
    """Append ``n`` identify-shaped entries (10 candidates each) in one transaction, then verify the chain."""
    import sqlite3

    from faceaudit.ledger import Ledger
    from faceaudit.ledger.sqlite_store import SQLiteLedgerStore, create_schema

    path = workdir / "ledger_bench.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    create_schema(conn)
    ledger = Ledger(SQLiteLedgerStore(conn))
    candidates = [
        {"subject": f"subj:{i:032x}", "similarity": 0.5, "above_threshold": False} for i in range(10)
    ]
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for i in range(n):
        ledger.append(
            "identify",
            "operator",
            purpose="benchmark",
            case_ref="BENCH",
            gallery_id="g",
            gallery_version=i,
            probe_sha256="a" * 64,
            params={"model": "m", "threshold": 0.363, "top_k": 10},
            result={"n_candidates": 10, "candidates": candidates},
        )
    conn.execute("COMMIT")
    t_append = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = ledger.verify()
    t_verify = time.perf_counter() - t0
    conn.close()
    path.unlink()
    out = {
        "entries": report.n_entries,
        "append_per_s": round(n / t_append),
        "verify_s": round(t_verify, 2),
        "verify_entries_per_s": round(n / t_verify),
    }
    print(json.dumps({"ledger": out}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200, help="search queries per size (half LFW probes)")
    ap.add_argument(
        "--e2e", type=int, default=50, help="end-to-end identify calls (search + lookup + ledger)"
    )
    ap.add_argument("--lfw-ids", type=int, default=150, help="LFW identities mixed in (3 images each)")
    ap.add_argument("--batch", type=int, default=2000, help="subjects per enrolment transaction")
    ap.add_argument("--workdir", default=None, help="where the gallery files go (default a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the gallery files")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument(
        "--ledger-entries",
        type=int,
        default=0,
        help="also time appending and verifying this many ledger entries (0: skip)",
    )
    ap.add_argument(
        "--milvus", default=None, metavar="URI", help="also a Milvus index (milvus-lite .db or URL)"
    )
    ap.add_argument(
        "--milvus-index-type", default=None, help="FLAT, IVF_FLAT, HNSW... (default: Milvus index's)"
    )
    args = ap.parse_args()
    tmp = None
    if args.workdir is None:
        tmp = args.workdir = tempfile.mkdtemp(prefix="faceaudit-bench-")
    from faceaudit.pipeline.engine import Engine

    engine = Engine("sface")
    refs, probes = lfw_templates(args.lfw_ids, LFW)
    env = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "load_avg_start": os.getloadavg(),
    }
    import faiss

    env["faiss"] = faiss.__version__
    results = {"env": env, "sizes": {}}
    try:
        if args.ledger_entries:
            results["ledger"] = bench_ledger(args.ledger_entries, Path(args.workdir))
        for n in args.sizes:
            results["sizes"][str(n)] = bench_size(n, refs, probes, args, engine)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    results["env"]["load_avg_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        "| templates | index p50 / p99 ms | numpy brute force p50 / p99 ms | FAISS flat p50 / p99 ms | exact agreement "
        "| identify e2e p50 / p99 ms | open + rebuild s | enrol templates/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, r in results["sizes"].items():
        print(
            f"| {int(n):,} | {r['index_p50_ms']} / {r['index_p99_ms']} | {r['numpy_p50_ms']} / {r['numpy_p99_ms']} | "
            f"{r['faiss_flat_p50_ms']} / {r['faiss_flat_p99_ms']} | {r['exact_agreement']} | "
            f"{r['identify_e2e_p50_ms']} / {r['identify_e2e_p99_ms']} | {r['open_s'] + r['rebuild_s']:.1f} | "
            f"{r['enrol_templates_per_s']:,} |"
        )
    if any(r.get("milvus") for r in results["sizes"].values()):
        print(
            "\n| templates | Milvus index | recall@10 vs exact: all / LFW probes / random | top-1 agreement: all / "
            "LFW probes | Milvus p50 / p99 ms | exact p50 / p99 ms | Milvus build s |"
        )
        print("|---|---|---|---|---|---|---|")
        for n, r in results["sizes"].items():
            m = r.get("milvus")
            if m:
                print(
                    f"| {int(n):,} | {m['index_type']} | {m['recall_at_k']} / {m['recall_at_k_near']} / "
                    f"{m['recall_at_k_random']} | {m['top1_agreement']} / {m['top1_agreement_near']} | "
                    f"{m['milvus_p50_ms']} / {m['milvus_p99_ms']} | {m['exact_p50_ms']} / {m['exact_p99_ms']} | "
                    f"{m['milvus_build_s']} |"
                )


if __name__ == "__main__":
    main()
