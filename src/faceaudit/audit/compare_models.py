"""Model comparison: the same manifest audited with each model, each at its own global threshold per target.

A model has the smaller differential at a target when its max/min ratio is the smallest; the data establish
it when that model's ratio interval (subject-clustered bootstrap) lies wholly below every other model's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from faceaudit.audit.result import AuditResult
from faceaudit.audit.run import audit
from faceaudit.errors import UsageError

__all__ = ["compare_models", "model_table", "verdicts"]


def compare_models(
    manifest: str | os.PathLike,
    root: str | os.PathLike | None,
    group_by: str | Sequence[str],
    models: Sequence[str],
    *,
    templates: Sequence[str | os.PathLike | None] | None = None,
    runner: Callable[..., AuditResult] = audit,
    **options,
) -> tuple[AuditResult, dict[str, AuditResult]]:
    """Audit ``manifest`` with each of ``models`` (templates per model, or embedding from ``root``); the first
    model's result carries the side-by-side table (``model_comparison``) and the verdicts. ``runner`` is
    :func:`~faceaudit.audit.run.audit` or ``audit_identification`` (then the 1:N rates are set side by side
    too, ``identification_comparison``)."""
    models = [m.strip() for m in models if m.strip()]
    if len(models) < 2:
        raise UsageError("--model with a comparison needs two or more models, e.g. --model sface,dlib")
    templates = list(templates) if templates else [None] * len(models)
    if len(templates) != len(models):
        raise UsageError(f"give one --templates file per model ({len(models)}), not {len(templates)}")
    results = {
        m: runner(manifest, root, group_by, model=m, templates=t, **_options_for(i, options))
        for i, (m, t) in enumerate(zip(models, templates, strict=True))
    }
    first = results[models[0]]
    first.model_comparison = model_table(results)
    first.model_verdicts = verdicts(results)
    if first.identification is not None:
        first.identification_comparison = identification_table(results)
    return first, results


def _options_for(i: int, options: dict) -> dict:
    """Model i's options: its own ``out`` folder (``model-N/`` after the first), where it embeds its templates."""
    if options.get("out") is None:
        return options
    out = Path(options["out"]) / (f"model-{i + 1}" if i else "")
    out.mkdir(parents=True, exist_ok=True)
    return {**options, "out": out}


def identification_table(results: dict[str, AuditResult]) -> pd.DataFrame:
    """One row per (target FPIR, model): τ, and the max/min ratios of FPIR and FNIR at rank 1 over the probe
    groups whose rate is measurable (None where the smaller is 0), with the groups named."""
    rows = []
    for model, r in results.items():
        for t in r.identification.targets:
            row = {"target_fpir": t.target_fpir, "model": r.config.get("model_id", model),
                   "threshold": t.threshold, "measurable": t.measurable}  # fmt: skip
            for key in ("fpir", "fnir_rank1"):
                vals = {
                    g: getattr(x, key).value for g, x in t.rates.items() if getattr(x, key).value is not None
                }
                hi = max(vals, key=vals.get) if len(vals) >= 2 else None
                lo = min(vals, key=vals.get) if len(vals) >= 2 else None
                ok = hi is not None and t.measurable and vals[lo] > 0
                row[f"{key}_max_min_ratio"] = vals[hi] / vals[lo] if ok else None
                row[f"{key}_max_group"], row[f"{key}_min_group"] = hi, lo
            rows.append(row)
    return pd.DataFrame(rows).set_index(["target_fpir", "model"]) if rows else pd.DataFrame()


def model_table(results: dict[str, AuditResult]) -> pd.DataFrame:
    """One row per (target, model): τ, max/min ratios with their intervals, FDR, GARBE, IR."""
    rows = []
    for model, r in results.items():
        for t in r.measured:
            d = t.differentials
            rows.append(
                {
                    "target_fmr": t.target_fmr,
                    "model": r.config.get("model_id", model),
                    "threshold": t.threshold.threshold,
                    **{
                        f"{rate}_{k}": d.get(f"{rate}_{k}")
                        for rate in ("fmr", "fnmr")
                        for k in ("max_min_ratio", "ratio_ci_low", "ratio_ci_high", "max_group", "min_group")
                    },
                    "fdr": d.get("fdr"),
                    "garbe": d.get("garbe"),
                    "ir": d.get("ir"),
                }
            )
    return pd.DataFrame(rows).set_index(["target_fmr", "model"]) if rows else pd.DataFrame()


def verdicts(results: dict[str, AuditResult]) -> list[dict]:
    """Per target and rate: the model with the smaller differential, and whether the data establish it."""
    table = model_table(results)
    out = []
    if not len(table):
        return out
    for target in dict.fromkeys(table.index.get_level_values(0)):
        t = table.xs(target, level="target_fmr")
        for rate in ("fmr", "fnmr"):
            ratio = t[f"{rate}_max_min_ratio"].astype(float).dropna()
            if len(ratio) < 2:
                out.append({"target_fmr": target, "rate": rate.upper(), "smaller": None,
                            "established": False, "why": "fewer than two models have this ratio"})  # fmt: skip
                continue
            best = ratio.idxmin()
            high = t.loc[best, f"{rate}_ratio_ci_high"]
            lows = [t.loc[m, f"{rate}_ratio_ci_low"] for m in ratio.index if m != best]
            known = (
                high is not None and not pd.isna(high) and all(v is not None and not pd.isna(v) for v in lows)
            )
            established = bool(known and all(high < v for v in lows))
            why = (
                "its ratio interval lies below every other model's"
                if established
                else ("the ratio intervals overlap" if known else "no bootstrap interval (use --bootstrap)")
            )
            out.append({"target_fmr": target, "rate": rate.upper(), "smaller": best,
                        "established": established, "why": why})  # fmt: skip
    return out
