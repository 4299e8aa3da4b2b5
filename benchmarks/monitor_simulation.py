"""Post-market monitoring, proved by simulation through the real ``faceaudit serve`` (SQLite and PostgreSQL).

An LFW gallery is enrolled through ``POST /v1/subjects`` with each person's sex *declared* from the manifest's
labels (LFW sex labels of Afifi & Abdelhamed 2017, see /work/shared/datasets/lfw/SOURCE.txt); every probe of the
split goes through ``POST /v1/identify``; two scripted reviewers who know the truth decide each search (both
confirm the mate when it is among the candidates, else both reject). Then:

* period 1: the monitor's counts (``faceaudit monitor``) must equal the counts computed offline from the same
  search answers and decisions, exactly, per group;
* period 2: one group's probes are degraded (JPEG quality 4) and the monitor, given the signed pre-deployment
  ``audit.json`` of ``faceaudit audit-identification`` on the same people as ``--baseline``, must raise an alert
  for that group and for no other.

    PYTHONPATH=src python benchmarks/monitor_simulation.py               # 25 + 25 identities, both stores
    PYTHONPATH=src python benchmarks/monitor_simulation.py --full        # every LFW identity with 2+ images

Without ``--pg-url`` a throwaway PostgreSQL cluster is started (tests/pg_cluster.py). Exit status 0 when every
check holds.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _common import postgres_url  # noqa: E402
from service_fixtures import make_gallery, make_key, start_server  # noqa: E402
from stores import GalleryStore, postgres_store, sqlite_store  # noqa: E402

LFW = Path("/work/shared/datasets/lfw")
CONSENT = {"consent_basis": "simulation", "consent_by": "benchmark",
           "declared_consent_basis": "simulation: declared for bias monitoring", "declared_consent_by": "benchmark"}  # fmt: skip


@dataclass(frozen=True)
class Person:
    ref: str
    group: str
    enrol_image: Path
    probe_image: Path | None  # None: not enrolled, probe is enrol_image (a non-mated search)


@dataclass
class Period:
    searches: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0


def lfw_people(
    n_per_group: int | None, n_nonmated: int | None, root: Path = LFW
) -> tuple[list[Person], list[Person]]:
    """Enrolled people (first image enrolled, second probed) and non-mated people (one probe, never enrolled),
    balanced per sex label, deterministic (manifest order)."""
    by: dict[str, list[dict[str, str]]] = {}
    with open(root / "manifest.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["sex"] in ("female", "male"):
                by.setdefault(r["subject_id"], []).append(r)
    two = {g: [s for s in by if len(by[s]) >= 2 and by[s][0]["sex"] == g] for g in ("female", "male")}
    one = {g: [s for s in by if len(by[s]) == 1 and by[s][0]["sex"] == g] for g in ("female", "male")}
    n = n_per_group or min(len(v) for v in two.values())
    enrolled, nonmated = [], []
    for g in ("female", "male"):
        for s in two[g][:n]:
            enrolled.append(Person(s, g, root / by[s][0]["path"], root / by[s][1]["path"]))
        for s in one[g][: (n_nonmated or n) // 2]:
            nonmated.append(Person(s, g, root / by[s][0]["path"], None))
    return enrolled, nonmated


def jpeg4(data: bytes) -> bytes:
    """The degradation: re-encoded as JPEG at quality 4 (passes the quality gate, loses identity detail)."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    ok, out = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 4])
    assert ok
    return out.tobytes()


def run_period(server, people: list[Person], nonmated: list[Person], degrade: str | None) -> Period:
    """Every probe through ``POST /v1/identify`` and two truthful reviews; the answers, kept for the offline count."""
    period = Period()
    probes = [(p.probe_image, p.ref, p.group) for p in people] + [
        (p.enrol_image, None, p.group) for p in nonmated
    ]
    with server.client("searcher") as s, server.client("rev-1") as r1, server.client("rev-2") as r2:
        for path, mate, group in probes:
            data = path.read_bytes()
            if degrade is not None and group == degrade:
                data = jpeg4(data)
            r = s.post("/v1/identify", files={"image": (path.name, data, "image/jpeg")},
                       data={"purpose": "monitoring simulation", "case": "SIM", "top_k": "10"})  # fmt: skip
            if r.status_code == 422:
                period.refused += 1
                continue
            r.raise_for_status()
            answer = r.json()
            found = mate is not None and any(c["subject_ref"] == mate for c in answer["candidates"])
            review = {"decision": "confirm", "subject_ref": mate} if found else {"decision": "reject"}
            for c in (r1, r2):
                c.post(
                    f"/v1/searches/{answer['search_id']}/reviews", json={**review, "reason": "truth"}
                ).raise_for_status()
            period.searches.append({"answer": answer, "confirmed": mate if found else None})
    return period


def offline_counts(period: Period, group_of: dict[str, str]) -> dict[str, Any]:
    """The monitor's counts, computed here from the search answers and the decisions (not from the store)."""
    out: dict[str, Any] = {"searches": len(period.searches), "false_total": 0, "by_group": {}}
    cell = lambda g: out["by_group"].setdefault(g, {"miss_errors": 0, "miss_trials": 0, "false": 0})  # noqa: E731
    for s in period.searches:
        for c in s["answer"]["candidates"]:
            if c["above_threshold"] and c["subject_ref"] != s["confirmed"]:
                out["false_total"] += 1
                cell(group_of.get(c["subject_ref"], "(undeclared)"))["false"] += 1
            if c["subject_ref"] == s["confirmed"]:
                g = cell(group_of[s["confirmed"]])
                g["miss_trials"] += 1
                g["miss_errors"] += int(c["rank"] != 1 or not c["above_threshold"])
    return out


def monitor_counts(doc: dict[str, Any]) -> dict[str, Any]:
    """The same counts out of monitor.json (one window covers the period; only groups shown)."""
    (w,) = doc["windows"]
    out: dict[str, Any] = {
        "searches": w["volume"]["searches"],
        "false_total": w["false_candidates"]["total"],
        "by_group": {},
    }
    for g, c in w["misses"]["by_group"].items():
        if not c.get("suppressed"):
            out["by_group"].setdefault(g, {})["miss_errors"] = c["errors"]
            out["by_group"][g]["miss_trials"] = c["trials"]
    for g, c in w["false_candidates"]["by_group"].items():
        if not c.get("suppressed"):
            out["by_group"].setdefault(g, {})["false"] = c["errors"]
    return out


def agree(offline: dict[str, Any], monitor: dict[str, Any]) -> bool:
    """Every count the monitor shows equals the offline count."""
    if (offline["searches"], offline["false_total"]) != (monitor["searches"], monitor["false_total"]):
        return False
    for g, cells in monitor["by_group"].items():
        for key, value in cells.items():
            if offline["by_group"].get(g, {}).get(key, 0) != value:
                return False
    return True


def run_monitor(store: GalleryStore, out: Path, *args: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "faceaudit", "monitor", *store.args(), "--operator", "auditor",
                        "--out", str(out), *args], capture_output=True, text=True)  # fmt: skip
    if r.returncode not in (0, 1):
        raise RuntimeError(f"faceaudit monitor failed:\n{r.stderr}")
    return json.loads(out.read_text())


def simulate(
    store: GalleryStore,
    people: list[Person],
    nonmated: list[Person],
    *,
    degrade: str,
    k: int,
    baseline: Path | None = None,
    baseline_key: Path | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Both periods through a real server on ``store`` (at ``threshold``: the audited operating point); the
    comparison and the alerts."""
    make_gallery(store, n_synthetic=0)
    keys = {p: make_key(store, p, r, rate_limit="1000000/min") for p, r in (("enroller", "enroller"), ("searcher", "searcher"),
            ("rev-1", "reviewer"), ("rev-2", "reviewer"))}  # fmt: skip
    server = start_server(store, *(("--threshold", repr(threshold)) if threshold is not None else ()))
    server.keys = keys
    try:
        t0 = time.perf_counter()
        enrolled = []
        with server.client("enroller") as c:
            for p in people:
                image = (p.enrol_image.name, p.enrol_image.read_bytes(), "image/jpeg")
                data = {"subject_ref": p.ref, "name": p.ref, "declared": [f"sex={p.group}"], **CONSENT}
                r = c.post("/v1/subjects", files=[("images", image)], data=data)
                if r.status_code == 422:  # the image fails the quality gate: this person is not enrolled
                    continue
                r.raise_for_status()
                enrolled.append(p)
        people = enrolled
        group_of = {p.ref: p.group for p in people}
        one = run_period(server, people, nonmated, None)
        time.sleep(0.01)
        boundary = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
        time.sleep(1.1)
        two = run_period(server, people, nonmated, degrade)
        elapsed = time.perf_counter() - t0
    finally:
        server.stop()
    base = [
        *(("--baseline", str(baseline)) if baseline else ()),
        *(("--baseline-key", str(baseline_key)) if baseline_key else ()),
    ]
    common = ("--k", str(k), "--window-days", "3660")
    doc1 = run_monitor(store, store.folder / "monitor1.json", "--until", boundary, *common, *base)
    doc2 = run_monitor(store, store.folder / "monitor2.json", "--since", boundary, *common, *base)
    result = {"store": store.kind, "seconds": elapsed, "enrolled": len(people), "periods": []}
    for name, period, doc in (("1 (as audited)", one, doc1), (f"2 ({degrade} probes JPEG q4)", two, doc2)):
        off, mon = offline_counts(period, group_of), monitor_counts(doc)
        result["periods"].append({"name": name, "offline": off, "monitor": mon, "equal": agree(off, mon),
                                  "refused": period.refused, "alerts": doc["alerts"],
                                  "misses": {g: c for g, c in doc["windows"][0]["misses"]["by_group"].items()}})  # fmt: skip
    alerted = {a["group"] for a in doc2["alerts"]}
    result["alert_only_degraded"] = alerted == {degrade}
    result["period1_alerts"] = sorted({a["group"] for a in doc1["alerts"]})
    result["baseline"] = {
        k: doc2.get("baseline", {}).get(k) for k in ("threshold", "target_fpir", "comparable")
    }
    result["threshold"] = doc2["thresholds"]
    return result


def baseline_audit(
    people: list[Person], nonmated: list[Person], folder: Path, root: Path = LFW
) -> tuple[Path, Path]:
    """The signed pre-deployment audit: ``faceaudit audit-identification`` on the same people's images."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    priv, pub = folder / "audit.pem", folder / "audit.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    manifest = folder / "baseline_manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject_id", "sex"])
        for p in people:
            w.writerow([p.enrol_image.relative_to(root), p.ref, p.group])
            w.writerow([Path(str(p.probe_image)).relative_to(root), p.ref, p.group])
        for p in nonmated:
            w.writerow([p.enrol_image.relative_to(root), p.ref, p.group])
    out = folder / "baseline"
    r = subprocess.run([sys.executable, "-m", "faceaudit", "audit-identification", str(manifest), "--group-by", "sex",
                        "--target-fpir", "0.1", "--root", str(root), "--sign-key", str(priv), "--out", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"the baseline audit failed:\n{r.stderr}")
    return out / "audit.json", pub


def _cell(c: dict[str, Any]) -> str:
    if not c or c.get("suppressed"):
        return "suppressed"
    return f"{c['errors']}/{c['trials']} [{c['ci_low']:.2f}, {c['ci_high']:.2f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-group", type=int, default=25, help="enrolled identities per sex label (25)")
    ap.add_argument(
        "--full", action="store_true", help="every LFW identity with 2+ images (balanced per sex)"
    )
    ap.add_argument("--degrade", default="female", help="the group whose probes are degraded in period 2")
    ap.add_argument("--k", type=int, default=10, help="the monitor's smallest group (10)")
    ap.add_argument("--stores", default="sqlite,postgresql", help="sqlite, postgresql or both (default)")
    ap.add_argument("--pg-url", default=None, help="a PostgreSQL database URL (default: a throwaway cluster)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    people, nonmated = lfw_people(None if args.full else args.per_group, None)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audit, pub = baseline_audit(people, nonmated, folder)
        # deploy at the audited operating point: the service's threshold is the audit's tau for FPIR 0.1
        tau = json.loads(audit.read_text())["identification"]["targets"][0]["threshold"]
        for kind in args.stores.split(","):
            with contextlib.ExitStack() as stack:
                if kind == "sqlite":
                    store = sqlite_store(folder / "sqlite")
                else:
                    url = stack.enter_context(postgres_url(args.pg_url, "monitor_simulation"))
                    store = postgres_store(url, folder / "pg")
                results.append(
                    simulate(
                        store,
                        people,
                        nonmated,
                        degrade=args.degrade,
                        k=args.k,
                        baseline=audit,
                        baseline_key=pub,
                        threshold=tau,
                    )
                )
    ok = True
    print(f"\n{len(people)} enrolled identities ({args.per_group if not args.full else 'all'} per sex), "
          f"{len(nonmated)} non-mated probes per period; k={args.k}; degraded in period 2: {args.degrade}\n")  # fmt: skip
    print(
        "| store | period | searches | false candidates | misses F (errors/trials) | misses M | equal to offline | alerts |"
    )
    print("|---|---|---:|---:|---|---|---|---|")
    for r in results:
        for p in r["periods"]:
            m = p["misses"]
            alerts = ", ".join(sorted({f"{a['group']} ({a['measure']})" for a in p["alerts"]})) or "none"
            print(f"| {r['store']} | {p['name']} | {p['monitor']['searches']} | {p['monitor']['false_total']} | "
                  f"{_cell(m.get('female', {}))} | {_cell(m.get('male', {}))} | {'yes' if p['equal'] else 'NO'} | {alerts} |")  # fmt: skip
            ok &= p["equal"]
        ok &= r["alert_only_degraded"]
        print(
            f"| {r['store']} | enrolled | {r['enrolled']} of {len(people)} (the rest fail the quality gate); "
            f"threshold {r['threshold']} = the audit's for FPIR {r['baseline']['target_fpir']}; "
            f"compared: {r['baseline']['comparable']} | | | | | |"
        )
        print(f"| {r['store']} | time | {r['seconds']:.0f} s through the server | | | | | alert for {args.degrade} only: "
              f"{'yes' if r['alert_only_degraded'] else 'NO'} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
