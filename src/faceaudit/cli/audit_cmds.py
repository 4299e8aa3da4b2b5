"""Audit commands: audit, audit-scores, fairness, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceaudit.cli.audit_report_cmds import cmd_fairness, cmd_verify_report, print_identification
from faceaudit.cli.engine_cmds import add_model_options, model_options
from faceaudit.errors import InputError, UsageError

DEMO_SAMPLE = Path("examples") / "fairface-sample"


def _target_list(values: list[str] | None, option: str = "--target-fmr", default=(1e-3, 1e-4)) -> list[float]:
    if not values:
        return list(default)
    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(float(part))
            except ValueError:
                raise UsageError(f"{option} {part!r} is not a number (e.g. 1e-3)") from None
    return out


def _alphas(args: argparse.Namespace) -> dict[str, float]:
    from faceaudit.audit.fairness import alphas

    return alphas(args.alpha, fdr=args.alpha_fdr, garbe=args.alpha_garbe, ir=args.alpha_ir)


def _model_options(args: argparse.Namespace) -> dict:
    """The embedder's options of ``--model`` (none when it is left out: the templates' own model)."""
    return model_options(args) if args.model else {}


def _audit_options(args: argparse.Namespace) -> dict:
    """The options every manifest audit takes from the command line (progress bars included)."""
    from faceaudit.cli.progress import progress_bar

    return {
        "policy": args.policy,
        "workers": args.workers,
        "target_fmr": _target_list(args.target_fmr),
        "alpha": _alphas(args),
        "bootstrap": args.bootstrap,
        "label_source": args.label_source,
        "dataset": args.dataset,
        "progress": progress_bar,
        "exclude": args.exclude,
    }


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target-fmr",
        action="append",
        metavar="FMR",
        help="target overall FMR(s) for the global threshold; repeat or comma-separate (default 1e-3,1e-4)",
    )
    p.add_argument(
        "--alpha", type=float, default=0.5, help="weight of FMR in FDR, GARBE and IR (default 0.5)"
    )
    for m in ("fdr", "garbe", "ir"):
        p.add_argument(
            f"--alpha-{m}", type=float, default=None, help=f"weight of FMR in {m.upper()} (default: --alpha)"
        )
    p.add_argument("--sign-key", default=None, help="Ed25519 private key (PEM): sign audit.json")
    p.add_argument(
        "--label-source",
        default=None,
        help="where the demographic labels came from (shown in the report; default: *_label_source "
        "columns, else 'label columns of the input, source not stated')",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="the data set's name, for the headline (default: the input file's name)",
    )
    p.add_argument("--out", required=True, help="output folder for audit.json, by_group.csv and report.html")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="demographic differential audit of a labelled manifest")
    p.add_argument("manifest", help="CSV with path, subject_id and label columns")
    p.add_argument("--root", default=None, help="folder the manifest's paths are relative to")
    p.add_argument("--group-by", required=True, help="label column(s), comma-separated, e.g. sex or sex,race")
    p.add_argument(
        "--templates",
        default=None,
        help="reuse the .npz written by `faceaudit embed` (with --model a,b: one per model, comma-separated)",
    )
    p.add_argument("--workers", type=int, default=1, help="embedding processes (default 1)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="subject-clustered bootstrap resamples for the FMR, FNMR and ratio intervals (default 1000; "
        "0: Clopper–Pearson only)",
    )
    p.add_argument(
        "--compare-policies",
        action="store_true",
        help="rerun with every face-selection policy and show the differences side by side",
    )
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="embed and compare on a Dask cluster: a scheduler address (tcp://host:8786) or local:N "
        "(N local worker processes); the counts are those of the in-process run",
    )
    _add_metric_options(p)
    add_model_options(p)
    p.add_argument(
        "--exclude",
        default=None,
        metavar="FILE",
        help="CSV of images to leave out (columns path, reason), e.g. confirmed label errors from label_check; "
        "the report states what was excluded and why",
    )
    p.set_defaults(func=cmd_audit, model=None)  # None: the templates' own model, else sface

    p = sub.add_parser(
        "audit-identification",
        help="1:N identification audit (FNIR, FPIR per probe group; FRVT Part 3) beside the 1:1 audit",
    )
    p.add_argument("manifest", help="CSV with path, subject_id and label columns (needs repeat identities)")
    p.add_argument("--root", default=None, help="folder the manifest's paths are relative to")
    p.add_argument("--group-by", required=True, help="label column(s), comma-separated, e.g. sex")
    p.add_argument("--templates", default=None, help="reuse the .npz written by `faceaudit embed`")
    p.add_argument("--workers", type=int, default=1, help="embedding processes (default 1)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="1:1 bootstrap resamples")
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="embed, compare and search on a Dask cluster: a scheduler address (tcp://host:8786) or local:N; "
        "the result is that of the in-process run",
    )
    p.add_argument(
        "--target-fpir",
        action="append",
        metavar="FPIR",
        help="target FPIR(s) for the 1:N global threshold (default 1e-2,1e-3)",
    )
    p.add_argument("--rank", type=int, default=10, help="FNIR is also given at this rank (default 10)")
    p.add_argument(
        "--enrolled-fraction", type=float, default=0.5, help="share of subjects enrolled (default 0.5)"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the enrolled/never-enrolled split (default 0)"
    )
    p.add_argument(
        "--split",
        default=None,
        metavar="FILE",
        help="reuse a recorded split: an audit.json (its identification.split.gallery) or a JSON file "
        '{"gallery": [[subject_id, path], ...]}; --seed and --enrolled-fraction are then not used',
    )
    p.add_argument(
        "--splits",
        type=int,
        default=1,
        metavar="K",
        help="repeat the split with K seeds (seed … seed+K-1) and report each rate's median, range and how often "
        "the direction holds; with K >= 2 the headline uses it (default 1)",
    )
    _add_metric_options(p)
    add_model_options(p)
    p.add_argument(
        "--exclude",
        default=None,
        metavar="FILE",
        help="CSV of images to leave out (columns path, reason), e.g. confirmed label errors from label_check; "
        "the report states what was excluded and why",
    )
    p.set_defaults(func=cmd_audit_identification, model=None)  # None: the templates' own model, else sface

    p = sub.add_parser("audit-scores", help="audit another system's comparison scores (CSV)")
    p.add_argument("scores", help="CSV with score, mated (1/0), and group_a/group_b or <label>_a/<label>_b")
    p.add_argument("--group-by", default=None, help="label column(s) whose _a/_b columns give the groups")
    p.add_argument(
        "--lower-is-better", action="store_true", help="scores are distances (a match is score <= τ)"
    )
    p.add_argument(
        "--dedupe",
        action="store_true",
        help="keep the first row of each repeated (image_a, image_b) pair instead of refusing the file",
    )
    p.add_argument(
        "--target-fpir", action="append", metavar="FPIR", help="candidate lists: target FPIR(s) (1e-2,1e-3)"
    )
    p.add_argument("--rank", type=int, default=10, help="candidate lists: FNIR also at this rank (10)")
    _add_metric_options(p)
    p.set_defaults(func=cmd_audit_scores)

    p = sub.add_parser(
        "verify-report",
        help="check a signed audit.json (or monitor.json); --reproduce recomputes every number",
    )
    p.add_argument("report", help="the audit.json to check")
    p.add_argument("--public-key", default=None, help="Ed25519 public key (PEM) that must have signed it")
    p.add_argument("--reproduce", action="store_true", help="recompute every number from the inputs")
    p.add_argument(
        "--templates", default=None, help="with --reproduce: the templates npz of a manifest audit"
    )
    p.add_argument("--scores", default=None, help="with --reproduce: the scores CSV of an audit-scores run")
    p.add_argument("--manifest", default=None, help="with --reproduce: the manifest (default: as recorded)")
    p.set_defaults(func=cmd_verify_report)

    p = sub.add_parser("fairness", help="summary measures (FDR, GARBE, IR, ratios) of per-group rates (CSV)")
    p.add_argument("rates", help="CSV, one row per system, columns FMR.<group> and FNMR.<group>")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of FMR (default 0.5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_fairness)

    p = sub.add_parser("demo", help="audit the bundled FairFace sample by race × sex and by sex")
    p.add_argument("--out", default="demo-report", help="output folder (default demo-report)")
    p.add_argument("--workers", type=int, default=1, help="embedding processes (default 1)")
    p.add_argument("--sample", default=None, help=f"sample folder (default {DEMO_SAMPLE})")
    p.set_defaults(func=cmd_demo)


def _print_result(result, paths: dict | None = None, *, file=sys.stdout) -> None:
    import pandas as pd

    print(result.headline, file=file)
    for key in result.summary:
        target = result.summary[key]["target_fmr"]
        s = result.summary[key]
        print(f"\nAt FMR {target:g} overall: threshold {s['threshold']:.4f}", file=file)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(result.table(target).to_string(), file=file)

        def f(v):
            return "undefined" if v is None else f"{v:.4g}"

        print(
            f"FMR max/min {f(s['fmr_max_min_ratio'])}  FNMR max/min {f(s['fnmr_max_min_ratio'])}  "
            f"FDR {f(s['fdr'])}  GARBE {f(s['garbe'])}  IR {f(s['ir'])}",
            file=file,
        )
    for w in result.warnings:
        print(f"faceaudit: warning: {w}", file=sys.stderr)
    if paths:
        print(f"\nwrote {', '.join(str(p) for p in paths.values())}", file=file)


def cmd_compare_models(args: argparse.Namespace, **identification) -> int:
    from faceaudit.audit.compare_models import compare_models

    templates = args.templates.split(",") if args.templates else None
    if identification:
        from faceaudit.audit.run_identification import audit_identification

        identification["runner"] = audit_identification
    first, results = compare_models(
        args.manifest,
        args.root,
        args.group_by,
        args.model.split(","),
        templates=templates,
        **identification,
        **_audit_options(args),
    )
    for i, (model, r) in enumerate(results.items()):
        if i:
            r.save(Path(args.out) / f"model-{i + 1}")
        print(f"\n==== model {model} ({r.config['model_id']})")
        _print_result(r, None)
    paths = first.save(args.out, sign_key=args.sign_key)
    print("\nModels compared (each at its own global threshold):")
    print(
        first.model_comparison[["threshold", "fmr_max_min_ratio", "fnmr_max_min_ratio", "fdr", "garbe", "ir"]]
    )
    for v in first.model_verdicts:
        yes = "established" if v["established"] else "not established"
        print(
            f"at FMR {v['target_fmr']:g}, {v['rate']}: smaller differential {v['smaller']} ({yes}: {v['why']})"
        )
    if first.identification_comparison is not None:
        print("\n1:N, models compared (each at its own global threshold):")
        cols = ["threshold", "fpir_max_min_ratio", "fnir_rank1_max_min_ratio"]
        print(first.identification_comparison[cols].to_string())
    print(f"\nwrote {', '.join(str(p) for p in paths.values())} (other models under model-N/)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    if args.model and "," in args.model:
        return cmd_compare_models(args)
    from faceaudit.audit.run import audit

    result = audit(
        args.manifest,
        args.root,
        args.group_by,
        templates=args.templates,
        model=args.model,
        compare_policies=args.compare_policies,
        model_options=_model_options(args),
        dask=args.dask,
        **_audit_options(args),
    )
    paths = result.save(args.out, sign_key=args.sign_key)
    _print_result(result, paths)
    if result.policy_comparison is not None:
        print("\nFace-selection policies compared:")
        print(result.policy_comparison[["threshold", "n_multi_face", "fmr", "fnmr"]].to_string())
    return 0


def cmd_audit_identification(args: argparse.Namespace) -> int:
    from faceaudit.audit.run_identification import audit_identification

    fpirs = _target_list(args.target_fpir, "--target-fpir", (1e-2, 1e-3))
    if args.model and "," in args.model:
        return cmd_compare_models(
            args, out=args.out, target_fpir=fpirs, rank=args.rank, enrolled_fraction=args.enrolled_fraction,
            seed=args.seed, dask=args.dask, splits=args.splits,
        )  # fmt: skip
    result = audit_identification(
        args.manifest,
        args.root,
        args.group_by,
        templates=args.templates,
        out=args.out,
        target_fpir=fpirs,
        rank=args.rank,
        enrolled_fraction=args.enrolled_fraction,
        seed=args.seed,
        split=args.split,
        splits=args.splits,
        model=args.model,
        model_options=_model_options(args),
        dask=args.dask,
        **_audit_options(args),
    )
    paths = result.save(args.out, sign_key=args.sign_key)
    _print_result(result, None)
    print_identification(result.identification)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def cmd_audit_scores(args: argparse.Namespace) -> int:
    from faceaudit.audit.given_scores import audit_scores

    result = audit_scores(
        args.scores,
        group_by=args.group_by,
        lower_is_better=args.lower_is_better,
        target_fmr=_target_list(args.target_fmr),
        alpha=_alphas(args),
        label_source=args.label_source,
        dataset=args.dataset,
        dedupe=args.dedupe,
        target_fpir=_target_list(args.target_fpir, "--target-fpir", (1e-2, 1e-3)),
        rank=args.rank,
    )
    paths = result.save(args.out, sign_key=args.sign_key)
    _print_result(result, None)
    print_identification(result.identification)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def find_demo_sample(given: str | None) -> Path:
    """The FairFace sample folder: ``given``, ./examples/fairface-sample, or the one beside the source tree."""
    candidates = [Path(given)] if given else [DEMO_SAMPLE, Path(__file__).resolve().parents[3] / DEMO_SAMPLE]
    for c in candidates:
        if (c / "manifest.csv").is_file():
            return c
    raise InputError(
        candidates[0], "demo sample not found (run from the faceaudit checkout, or give --sample)"
    )


def _repeat_subjects(manifest: Path) -> bool:
    """True when some non-empty subject_id comes twice (a 1:N audit needs mated searches)."""
    from faceaudit.csvfile import read_csv_table

    table = read_csv_table(manifest, what="manifest")
    if "subject_id" not in table.columns:
        return False
    ids = [v.strip() for v in table.column("subject_id") if v.strip()]
    return len(ids) != len(set(ids))


def cmd_demo(args: argparse.Namespace) -> int:
    from faceaudit.audit.run import audit
    from faceaudit.cli.progress import progress_bar
    from faceaudit.pipeline.batch import embed_paths, read_manifest_paths

    sample = find_demo_sample(args.sample)
    out = Path(args.out)
    manifest = sample / "manifest.csv"
    paths = read_manifest_paths(manifest)
    with progress_bar(len(paths), "embedding") as advance:
        er = embed_paths(paths, sample, workers=args.workers, progress=advance)
    npz = out / "templates.npz"
    er.save(npz)
    caveat = (
        "FairFace has no repeat identities, so this demo measures the non-mated side (FMR) only; FNMR needs "
        "mated pairs. For a full audit run `faceaudit audit` on a data set with identities, e.g. LFW: "
        "faceaudit audit lfw/manifest.csv --root lfw --group-by sex --out lfw-audit"
    )
    label_src = (
        "FairFace labels (Kärkkäinen & Joo, WACV 2021), annotated by crowd workers; see ATTRIBUTION.md"
    )
    print("== faceaudit demo: 540 FairFace images (CC BY 4.0), model and policy defaults\n")
    print(f"NOTE: {caveat}\n")
    by_sex = audit(manifest, sample, "sex", templates=npz, label_source=label_src)
    print("-- by sex --")
    _print_result(by_sex, by_sex.save(out / "by-sex"))
    by_race_sex = audit(manifest, sample, "race,sex", templates=npz, label_source=label_src)
    print("\n-- by race × sex --")
    _print_result(by_race_sex, by_race_sex.save(out))
    print("\n-- 1:N identification --")
    if _repeat_subjects(manifest):
        from faceaudit.audit.run_identification import audit_identification

        ident = audit_identification(manifest, sample, "sex", templates=npz, label_source=label_src)
        print_identification(ident.identification)
        ident.save(out / "identification")
    else:
        print(
            "This sample cannot support a 1:N audit: FairFace has no repeat identities, so no enrolled subject has a "
            "second image to search with (no mated searches, no FNIR). Run it on a data set with identities, e.g. "
            "LFW:\n  faceaudit audit-identification lfw/manifest.csv --root lfw --group-by sex --out lfw-1n"
        )
    print(
        f"\nOpen {out / 'report.html'} (race × sex) and {out / 'by-sex' / 'report.html'} (sex) in a browser."
    )
    return 0
