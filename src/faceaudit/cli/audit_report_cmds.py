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
        _print_spread(ident, t, file)


def _iv(iv: dict | None, percent: bool) -> str:
    if not iv or iv.get("low") is None:
        return "-"
    one = (lambda v: f"{100 * v:.2f}") if percent else (lambda v: f"{v:.2e}")
    return f"[{one(iv['low'])}, {one(iv['high'])}]"


def _print_spread(ident, t, file) -> None:
    """The clustered intervals (τ held / τ re-set) and, with --splits, the median and range across splits."""
    boot = (ident.bootstrap or {}).get(str(t.target_fpir))
    if boot:
        print("95 % subject-clustered intervals, τ held | τ re-set per resample (FNIR %, FPIR):", file=file)
        for g in t.rates:
            held, reset = boot.get(g, {}), boot["reset"].get(g, {})
            cells = [f"{_iv(held.get(k), k != 'fpir')} | {_iv(reset.get(k), k != 'fpir')}" for k in
                     ("fnir_rank1", "fpir")]  # fmt: skip
            print(f"  {g:<14} FNIR rank 1 {cells[0]:<34} FPIR {cells[1]}", file=file)
    sp = (ident.splits or {}).get("targets", {}).get(str(t.target_fpir))
    if sp:
        n = ident.splits["n_splits"]
        print(f"Across {n} splits (median [min, max]):", file=file)
        for g, by in sp["by_group"].items():
            f1, fp = by["fnir_rank1"], by["fpir"]
            a = (
                "-"
                if f1["median"] is None
                else f"{100 * f1['median']:.2f} % [{100 * f1['min']:.2f}, {100 * f1['max']:.2f}]"
            )
            b = "-" if fp["median"] is None else f"{fp['median']:.2e} [{fp['min']:.2e}, {fp['max']:.2e}]"
            print(f"  {g:<14} FNIR rank 1 {a:<28} FPIR {b}", file=file)
        for key in ("fpir", "fnir_rank1"):
            r = sp.get(f"{key}_ratio")
            if r and r["median"] is not None:
                hi, lo = r["pair"]
                name = "FPIR" if key == "fpir" else "FNIR rank 1"
                print(f"  {name} {hi}/{lo}: median {r['median']:.2f}× [{r['min']:.2f}, {r['max']:.2f}]; "
                      f"{hi} higher in {r['direction_holds']} of {r['n_splits']} splits", file=file)  # fmt: skip


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
