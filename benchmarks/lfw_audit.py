"""LFW by sex: the 1:1 audit, the 1:N identification audit and (optionally) a model comparison.

    PYTHONPATH=src python benchmarks/lfw_audit.py [--lfw ../shared/datasets/lfw] [--work /tmp] [--workers 1]
        [--subset min5|all] [--models sface[,dlib]] [--bootstrap 1000]

Writes WORK/audit-lfw-<subset>.csv (the manifest), embeds it once per model into
WORK/audit-lfw-<subset>[-<model>].npz (reused when present; the sface file keeps the name
audit-lfw-min5.npz of earlier runs), audits by sex with the clustered bootstrap, runs the FRVT-style 1:N audit
(seed 0, half the subjects enrolled, FPIR 1e-2 and 1e-3, rank 10), and with two or more models compares them.
Prints the headlines and tables, with the time of each step; report `uptime` beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw"))
    ap.add_argument("--work", default="/tmp")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--subset", choices=("min5", "all"), default="min5")
    ap.add_argument("--models", default="sface", help="comma-separated; two or more add the comparison")
    a = ap.parse_args()
    lfw, work = Path(a.lfw), Path(a.work)
    if not (lfw / "manifest.csv").is_file():
        print(f"LFW not found at {lfw}; give --lfw", file=sys.stderr)
        return 2
    import faceaudit
    from faceaudit.audit.compare_models import compare_models
    from faceaudit.audit.run_identification import identify
    from faceaudit.cli.audit_cmds import print_identification
    from faceaudit.pipeline.batch import embed_paths

    m = pd.read_csv(lfw / "manifest.csv", dtype=str, keep_default_na=False)
    if a.subset == "min5":
        m = m[m.in_min5_subset == "1"]
    manifest = work / f"audit-lfw-{a.subset}.csv"
    m.to_csv(manifest, index=False)
    models = [s.strip() for s in a.models.split(",") if s.strip()]
    npzs = []
    for model in models:
        suffix = "" if model == "sface" else "-" + model.replace(":", "_").replace("/", "_")
        npz = work / f"audit-lfw-{a.subset}{suffix}.npz"
        if not npz.is_file():
            t0 = time.perf_counter()
            embed_paths(list(m.path), lfw, model=model, workers=a.workers).save(npz)
            print(f"{model}: embedded {len(m)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        npzs.append(npz)
    dataset = f"LFW ({'in_min5_subset' if a.subset == 'min5' else 'all images'})"
    t0 = time.perf_counter()
    r = faceaudit.run_audit(manifest, lfw, "sex", templates=npzs[0], bootstrap=a.bootstrap, dataset=dataset)
    print(f"1:1 audit ({models[0]}): {time.perf_counter() - t0:.1f} s\n\n{r.headline}\n")
    cols = [
        "n_images",
        "n_multi_face",
        "n_non_mated",
        "fmr",
        "fmr_boot_low",
        "fmr_boot_high",
        "n_mated",
        "fnmr",
    ]
    cols += ["fnmr_boot_low", "fnmr_boot_high", "tau_g", "eer"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(r.by_group[cols].to_string())
        summary = pd.DataFrame(r.summary).T
        print(summary[["threshold", "fmr_max_min_ratio", "fmr_ratio_ci_low", "fmr_ratio_ci_high",
                       "fnmr_max_min_ratio", "fnmr_ratio_ci_low", "fnmr_ratio_ci_high", "fdr", "garbe", "ir"]])  # fmt: skip
    from faceaudit.audit.pairs import load_manifest
    from faceaudit.audit.run import templates_for_manifest

    man = load_manifest(manifest, "sex")
    _, er = templates_for_manifest(npzs[0], [p.strip() for p in man.frame["path"]])
    ok = er.ok
    t0 = time.perf_counter()
    ident = identify(er.templates[ok], man.subject[ok], man.group_index[ok], man.groups)
    print(f"\n1:N audit ({models[0]}): {time.perf_counter() - t0:.1f} s")
    print_identification(ident)
    if len(models) > 1:
        t0 = time.perf_counter()
        first, _ = compare_models(
            manifest, lfw, "sex", models, templates=npzs, bootstrap=a.bootstrap, dataset=dataset
        )
        print(f"\nmodel comparison: {time.perf_counter() - t0:.1f} s")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(first.model_comparison[["threshold", "fmr_max_min_ratio", "fmr_ratio_ci_low", "fmr_ratio_ci_high",
                                          "fnmr_max_min_ratio", "fnmr_ratio_ci_low", "fnmr_ratio_ci_high"]])  # fmt: skip
        for v in first.model_verdicts:
            print(
                f"FMR {v['target_fmr']:g} {v['rate']}: smaller {v['smaller']}; established: {v['established']} ({v['why']})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
