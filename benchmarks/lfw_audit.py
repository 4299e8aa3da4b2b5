"""LFW by sex: the audit of the in_min5_subset rows of ../shared/datasets/lfw (docs/benchmarks.md).

    PYTHONPATH=src python benchmarks/lfw_audit.py [--lfw ../shared/datasets/lfw] [--work /tmp] [--workers 1]

Writes WORK/audit-lfw-min5.csv (the filtered manifest), embeds it once into WORK/audit-lfw-min5.npz (reused
when present; ~2-4 minutes with 1 worker), audits by sex with the default 1000-resample clustered bootstrap, and prints the headline
and the per-group table.
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
    a = ap.parse_args()
    lfw, work = Path(a.lfw), Path(a.work)
    if not (lfw / "manifest.csv").is_file():
        print(f"LFW not found at {lfw}; give --lfw", file=sys.stderr)
        return 2
    import faceaudit
    from faceaudit.pipeline.batch import embed_paths

    m = pd.read_csv(lfw / "manifest.csv", dtype=str, keep_default_na=False)
    manifest = work / "audit-lfw-min5.csv"
    m[m.in_min5_subset == "1"].to_csv(manifest, index=False)
    npz = work / "audit-lfw-min5.npz"
    if not npz.is_file():
        t0 = time.perf_counter()
        paths = list(m[m.in_min5_subset == "1"].path)
        embed_paths(paths, lfw, workers=a.workers).save(npz)
        print(f"embedded {len(paths)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    t0 = time.perf_counter()
    r = faceaudit.audit(manifest, lfw, "sex", templates=npz, bootstrap=a.bootstrap)
    print(f"audit: {time.perf_counter() - t0:.1f} s\n\n{r.headline}\n")
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
        print(
            pd.DataFrame(r.summary).T[
                ["threshold", "fmr_max_min_ratio", "fnmr_max_min_ratio", "fdr", "garbe", "ir"]
            ]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
