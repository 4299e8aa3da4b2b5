"""Commands around the audit's outputs: verify-report, fairness, and the 1:N terminal tables."""

from __future__ import annotations

import argparse
import json
import sys

from faceaudit.errors import UsageError


def print_identification(ident, *, file=sys.stdout) -> None:
    """The 1:N tables for the terminal: FNIR (%) and FPIR (scientific notation) per probe group."""
    if ident is None:
        return
    sp = ident.split
    where = f"gallery {sp['gallery_size']:,}, " if "gallery_size" in sp else "given candidate lists: "
    seed = f" (seed {sp['seed']})" if "seed" in sp else ""
    print(
        f"\n== 1:N identification: {where}mated searches {sp['mated_searches']:,}, "
        f"non-mated searches {sp['non_mated_searches']:,}{seed}",
        file=file,
    )

    def pct(r):
        return "not measurable" if r.value is None else f"{100 * r.value:.2f} % ({r.errors}/{r.trials})"

    def sci(r):
        return "not measurable" if r.value is None else f"{r.value:.2e} ({r.errors}/{r.trials})"

    for t in ident.targets:
        if t.threshold is None:
            print(f"\nAt FPIR {t.target_fpir:g}: no threshold (no non-mated searches)", file=file)
            continue
        note = "" if t.measurable else " (too few non-mated searches to support it)"
        print(f"\nAt FPIR {t.target_fpir:g} overall: threshold {t.threshold:.4f}{note}", file=file)
        print(f"{'group':<16} {'FNIR rank 1':>22} {f'FNIR rank {ident.rank}':>22} {'FPIR':>24}", file=file)
        for g, r in t.rates.items():
            print(f"{g:<16} {pct(r.fnir_rank1):>22} {pct(r.fnir_rank_r):>22} {sci(r.fpir):>24}", file=file)


def cmd_verify_report(args: argparse.Namespace) -> int:
    from faceaudit.audit.verify import verify_report

    if args.public_key is None and not args.reproduce:
        raise UsageError("give --public-key FILE (check the signature), --reproduce, or both")
    inputs = {"templates": args.templates, "scores": args.scores, "manifest": args.manifest}
    v = verify_report(
        args.report, public_key=args.public_key, reproduce_from=inputs if args.reproduce else None
    )
    if v.key_fingerprint:
        print(f"signature: valid (Ed25519 key {v.key_fingerprint[:16]}…)")
    if v.reproduced:
        if v.ok:
            print("reproduced: every number is the same")
        else:
            print(f"reproduced: {len(v.differences)} values differ:")
            for where, old, new in v.differences[:200]:
                print(f"  {where}: report {old!r}, recomputed {new!r}")
    return 0 if v.ok else 1


def cmd_fairness(args: argparse.Namespace) -> int:
    from faceaudit.audit.fairness import read_rates_csv, summarise

    rows = []
    for name, fmr, fnmr in read_rates_csv(args.rates):
        rows.append(
            {"name": name, "groups": sorted(set(fmr) | set(fnmr)), **summarise(fmr, fnmr, args.alpha)}
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def f(v):
        return "—" if v is None else f"{v:.4g}"

    width = max([len(r["name"]) for r in rows] + [6])
    print(
        f"{'system':<{width}}  {'FMR max/min':>11}  {'FNMR max/min':>12}  {'FDR':>7}  {'GARBE':>7}  {'IR':>8}"
    )
    for r in rows:
        print(
            f"{r['name']:<{width}}  {f(r['fmr_max_min_ratio']):>11}  {f(r['fnmr_max_min_ratio']):>12}  "
            f"{f(r['fdr']):>7}  {f(r['garbe']):>7}  {f(r['ir']):>8}"
        )
    print(f"(alpha = {args.alpha}; FDR: de Freitas Pereira & Marcel 2021; GARBE, IR: Howard et al. 2022)")
    return 0
