"""Service load benchmark: ``POST /v1/identify`` under locust (headless, time-bounded) at 1, 4 and 16 users, against
a gallery of 100k templates (real LFW subjects mixed with synthetic templates), with the same request through the
CLI side by side.

Each request uploads a real LFW probe JPEG (a third image of an enrolled identity), so every timing includes
upload, image decode, face detection, alignment, embedding, the index search, the SQLite lookups and the ledger
append committed with fsync. 503s are the backpressure of the bounded inference pool and are counted apart.

    PYTHONPATH=src python benchmarks/service_load.py --workdir /tmp/sbench --seconds 30

The CLI column runs ``faceaudit identify`` with ``--no-index-file`` (the index rebuilt on every call, the
baseline), then without it: a first call that builds and writes the index file ``gallery.db.index``, and
``--cli-runs`` calls after it that load the file. ``--cli-only`` runs only that column (no server, no locust).

The gallery is built once in ``--workdir`` and reused (delete the folder to rebuild it). Needs locust
(``pip install -e .[bench]``) and ../shared/datasets/lfw.
"""

from __future__ import annotations

import os

if os.environ.get("FACEAUDIT_LOCUST") == "1":  # imported by locust: only the user class (gevent patches)
    import random
    import time
    from pathlib import Path

    from locust import HttpUser, constant, task

    class Searcher(HttpUser):
        """A searcher sending identify requests back to back."""

        wait_time = constant(0)

        def on_start(self) -> None:
            self.client.headers["Authorization"] = f"Bearer {os.environ['FACEAUDIT_BENCH_KEY']}"
            folder = Path(os.environ["FACEAUDIT_BENCH_PROBES"])
            self.probes = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.jpg"))]

        @task
        def identify(self) -> None:
            name, data = random.choice(self.probes)
            retry = 0.0
            with self.client.post(
                "/v1/identify",
                files={"image": (name, data, "image/jpeg")},
                data={"purpose": "load test", "case": "BENCH-1"},
                name="identify",
                catch_response=True,
            ) as r:
                if r.status_code == 503:  # backpressure: counted apart, and honoured like a real client
                    r.request_meta["name"] = "identify 503"
                    r.success()
                    retry = float(r.headers.get("Retry-After", "1"))
                elif r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}: {r.text[:120]}")
                elif not r.json()["candidates"]:
                    r.failure("no candidates")
            if retry:
                time.sleep(retry)  # gevent-patched under locust


def _main() -> None:
    import argparse
    import csv
    import json
    import shutil
    import statistics
    import sys
    import time
    from pathlib import Path

    import numpy as np

    lfw_default = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/faceaudit-service-bench")
    ap.add_argument("--lfw", default=str(lfw_default))
    ap.add_argument("--templates", type=int, default=100_000, help="gallery size in templates (default 100k)")
    ap.add_argument(
        "--lfw-ids", type=int, default=300, help="real LFW identities enrolled (2 references each)"
    )
    ap.add_argument("--users", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=int, default=30, help="locust run time per user count")
    ap.add_argument("--cli-runs", type=int, default=3, help="identify calls through the CLI (each way)")
    ap.add_argument("--cli-only", action="store_true", help="only the CLI column: no server, no locust")
    ap.add_argument(
        "--before-src",
        default=None,
        help="also time the CLI of another source tree (its src folder, e.g. main exported by git archive)",
    )
    ap.add_argument("--workers", type=int, default=None, help="server inference workers (default: cores)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    from faceaudit.gallery import Consent, Gallery
    from faceaudit.gallery.crypto import generate_key, write_key_file
    from faceaudit.pipeline.batch import embed_paths

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    db, probes_dir = work / "gallery.db", work / "probes"
    lfw = Path(args.lfw)
    if not (lfw / "manifest.csv").is_file():
        sys.exit(f"LFW not found at {lfw} (--lfw)")
    ready = work / "ready.json"
    if not ready.is_file() or json.loads(ready.read_text()).get("templates") != args.templates:
        for p in work.glob("gallery.db*"):
            p.unlink()
        shutil.rmtree(probes_dir, ignore_errors=True)
        probes_dir.mkdir()
        by_id: dict[str, list[str]] = {}
        with open(lfw / "manifest.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("in_min5_subset") == "1":
                    by_id.setdefault(row["subject_id"], []).append(row["path"])
        ids = sorted(by_id)[: args.lfw_ids]
        paths = [p for i in ids for p in sorted(by_id[i])[:3]]
        t0 = time.perf_counter()
        res = embed_paths(paths, lfw, workers=os.cpu_count() or 1)
        print(f"embedded {len(paths)} LFW images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        write_key_file(Path(f"{db}.key"), generate_key())
        consent = Consent("benchmark", "benchmark")
        t0 = time.perf_counter()
        n_real = 0
        with Gallery(db, create=True, operator="benchmark") as g:
            records = []
            for k, ident in enumerate(ids):
                rows = [3 * k, 3 * k + 1, 3 * k + 2]
                if all(res.status[r] == "ok" for r in rows):
                    records.append((f"lfw-{ident}", ident.replace("_", " "), res.templates[rows[:2]]))
                    shutil.copy(lfw / paths[rows[2]], probes_dir / f"{ident}.jpg")
                    n_real += 2
            rng = np.random.default_rng(0)
            n_syn = (args.templates - n_real) // 2
            for i in range(n_syn):
                v = rng.standard_normal((2, 128)).astype(np.float32)
                records.append(
                    (f"syn-{i:06d}", f"Synthetic {i}", v / np.linalg.norm(v, axis=1, keepdims=True))
                )
            g.enroll_many(
                records, consent=consent, operator="benchmark", model_id=res.model_id, batch_size=2000
            )
        print(
            f"enrolled {n_real + 2 * n_syn:,} templates in {time.perf_counter() - t0:.1f} s", file=sys.stderr
        )
        ready.write_text(
            json.dumps({"templates": args.templates, "real": n_real, "total": n_real + 2 * n_syn})
        )
    info = json.loads(ready.read_text())
    probes = sorted(probes_dir.glob("*.jpg"))

    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src")}
    env.pop("FACEAUDIT_KEY", None)
    load_rows: list = []
    results: list = []
    startup = float("nan")
    if not args.cli_only:
        startup, load_rows, results = _serve_and_load(args, work, db, probes, env)
    cli = _cli_column(args, db, probes, env)

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import print_table

    print(
        f"\ngallery: {info['total']:,} templates ({info['real']} real LFW), {len(probes)} LFW probe images; "
        f"{os.cpu_count()} cores; server start-up {startup:.1f} s (models + index rebuild)\n"
    )
    if load_rows:
        print_table(
            [
                "users",
                "requests",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "req/s",
                "errors",
                "503 (backpressure)",
                "load avg (1 min)",
            ],
            load_rows,
        )
        print()

    def ms(values: list[float]) -> str:
        return (
            f"{statistics.median(values) * 1e3:,.0f} (runs: {', '.join(f'{v * 1e3:,.0f}' for v in values)})"
        )

    n = args.cli_runs
    print_table(
        ["the same identify request", "median wall ms", "what it includes"],
        [
            [
                "service, 1 user (p50)",
                results[0]["p50_ms"] if results else "-",
                "upload, decode, detect, embed, search, ledger",
            ],
            *(
                [
                    [
                        f"CLI `faceaudit identify` of {args.before_src} ({n} runs)",
                        ms(cli["before_s"]),
                        "process start, model load, index rebuild, then the same",
                    ]
                ]  # fmt: skip
                if cli["before_s"]
                else []
            ),
            [
                f"CLI `faceaudit identify --no-index-file` ({n} runs)",
                ms(cli["no_index_file_s"]),
                "process start, model load, index rebuild, then the same",
            ],
            [
                "CLI `faceaudit identify`, first run",
                ms([cli["first_s"]]),
                "the same, and writing the index file",
            ],
            [
                f"CLI `faceaudit identify`, {n} runs after the first",
                ms(cli["after_first_s"]),
                "process start, model load, index file loaded, then the same",
            ],
        ],
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"gallery": info, "startup_s": startup, "locust": results, "cli_s": cli}, indent=2)
        )


def _serve_and_load(args, work, db, probes: list, env: dict) -> tuple[float, list, list]:
    """Start ``faceaudit serve`` on the gallery, warm it up and run locust; (start-up s, table rows, results)."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    from faceaudit.gallery.values import Actor, utc_today
    from faceaudit.operations.keys import KeyHasher
    from faceaudit.operations.records import ServiceStore

    store = ServiceStore(db)
    key = (
        KeyHasher.for_gallery(db)
        .create(
            store,
            principal="bench",
            roles="searcher",
            actor=Actor.local("benchmark"),
            rate_limit="1000000/min",
            today=utc_today(),
        )
        .key
    )
    store.close()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "faceaudit",
        "serve",
        "--db",
        str(db),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    t0 = time.perf_counter()
    log = open(work / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    import httpx

    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if server.poll() is not None or time.perf_counter() - t0 > 300:
                    sys.exit(f"the server did not start; see {work / 'server.log'}")
                time.sleep(0.2)
        startup = time.perf_counter() - t0
        rows, results = _run_load(args, work, url, key, probes, env)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    return startup, rows, results


def _cli_column(args, db, probes: list, env: dict) -> dict:
    """``faceaudit identify`` in a new process each call: ``--cli-runs`` calls with ``--no-index-file`` (the
    baseline), then a first call that writes the index file and ``--cli-runs`` calls that load it (seconds each).
    Probes that the quality gate refuses (exit 3) are skipped, untimed."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    for p in Path(db).parent.glob(Path(db).name + ".index*"):
        p.unlink()
    queue = list(probes)

    def one(extra: list[str], run_env: dict = env) -> float:
        while queue:
            probe = queue.pop(0)
            t0 = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "faceaudit",
                    "identify",
                    str(probe),
                    "--db",
                    str(db),
                    "--purpose",
                    "load test",
                    "--case",
                    "BENCH-CLI",
                    "--operator",
                    "bench",
                    "--json",
                    *extra,
                ],
                env=run_env,
                capture_output=True,
                text=True,
            )
            took = time.perf_counter() - t0
            if done.returncode == 3:
                continue  # no face or below the quality gate
            if done.returncode != 0:
                sys.exit(f"CLI identify failed: {done.stderr}")
            return took
        sys.exit("ran out of probes that pass the quality gate")

    before = []
    if args.before_src:
        before_env = {**env, "PYTHONPATH": args.before_src, "PYTHONDONTWRITEBYTECODE": "1"}
        before = [one([], before_env) for _ in range(args.cli_runs)]
    baseline = [one(["--no-index-file"]) for _ in range(args.cli_runs)]
    first = one([])
    after = [one([]) for _ in range(args.cli_runs)]
    return {"before_s": before, "no_index_file_s": baseline, "first_s": first, "after_first_s": after}


def _run_load(args, work, url: str, key: str, probes: list, env: dict) -> tuple[list, list]:
    """Warm up (keeping the probes the quality gate accepts), then one locust run per user count."""
    import csv
    import subprocess
    import sys

    import httpx

    usable = work / "probes-usable"
    usable.mkdir(exist_ok=True)
    headers = {"Authorization": f"Bearer {key}"}
    hits = n_ok = 0
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        for p in probes:
            r = c.post(
                "/v1/identify",
                files={"image": (p.name, p.read_bytes(), "image/jpeg")},
                data={"purpose": "warm-up", "case": "BENCH-0"},
            )
            if r.status_code == 422:
                continue  # no face or below the quality gate: not a load-test probe
            r.raise_for_status()
            n_ok += 1
            hits += r.json()["candidates"][0]["subject_ref"] == f"lfw-{p.stem}"
            (usable / p.name).write_bytes(p.read_bytes())
    print(
        f"warm-up: {n_ok}/{len(probes)} probes pass the quality gate; rank-1 hits {hits}/{n_ok}",
        file=sys.stderr,
    )
    rows, results = [], []
    for users in args.users:
        prefix = work / f"locust_{users}"
        load_before = os.getloadavg()[0]
        lenv = {
            **env,
            "FACEAUDIT_LOCUST": "1",
            "FACEAUDIT_BENCH_KEY": key,
            "FACEAUDIT_BENCH_PROBES": str(usable),
        }
        subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                __file__,
                "--headless",
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                f"{args.seconds}s",
                "--host",
                url,
                "--csv",
                str(prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
                "--stop-timeout",
                "10",
            ],
            env=lenv,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"locust_{users}.log", "w"),  # noqa: SIM115
        )
        load_after = os.getloadavg()[0]
        failures = list(csv.DictReader(open(f"{prefix}_failures.csv")))  # noqa: SIM115
        with open(f"{prefix}_stats.csv") as fh:
            table = list(csv.DictReader(fh))
        busy = sum(int(r["Request Count"]) for r in table if r["Name"] == "identify 503")
        stats = next(r for r in table if r["Name"] == "identify")
        errors = sum(int(f["Occurrences"]) for f in failures)
        n = int(stats["Request Count"])
        row = {
            "users": users,
            "requests": n,
            "ok": n - int(stats["Failure Count"]),
            "p50_ms": float(stats["50%"]),
            "p95_ms": float(stats["95%"]),
            "p99_ms": float(stats["99%"]),
            "req_per_s": float(stats["Requests/s"]),
            "errors": errors,
            "busy_503": busy,
            "load_avg": f"{load_before:.2f} → {load_after:.2f}",
        }
        results.append(row)
        rows.append(
            [
                users,
                n,
                row["p50_ms"],
                row["p95_ms"],
                row["p99_ms"],
                f"{row['req_per_s']:.1f}",
                errors,
                busy,
                row["load_avg"],
            ]
        )
        print(f"  {users} user(s): p50 {row['p50_ms']} ms, {row['req_per_s']:.1f} req/s", file=sys.stderr)

    return rows, results


if __name__ == "__main__":
    _main()
