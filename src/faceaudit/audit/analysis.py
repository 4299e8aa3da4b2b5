"""From comparison counts to the audit's tables: thresholds, per-group rates, differentials and warnings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from faceaudit.audit import fairness
from faceaudit.audit.intervals import BOOTSTRAP_METHOD, cluster_bootstrap_ratio
from faceaudit.audit.metrics import (
    NOT_MEASURABLE,
    Rate,
    det_curve,
    eer,
    exact_stats,
    fmr_rate,
    fnmr_rate,
    histogram_stats,
    min_comparisons,
    non_mated_errors,
    threshold_index,
)
from faceaudit.audit.result import AuditResult
from faceaudit.audit.scores import ComparisonCounts

DEFAULT_TARGETS = (1e-3, 1e-4)
CURVE_POINTS = 400


def pair_name(group: str) -> str:
    """``female`` → ``female–female`` (same-group comparisons)."""
    return f"{group}–{group}"


def _fmt_rate(r: float | None, percent: bool = False) -> str:
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return NOT_MEASURABLE
    return f"{100 * r:.2f} %" if percent else f"{r:.2e}"


def _rate_cols(prefix: str, rate: Rate) -> dict:
    return {
        prefix: rate.value,
        f"{prefix}_errors": rate.errors,
        f"{prefix}_trials": rate.trials,
        f"{prefix}_ci_low": rate.ci_low,
        f"{prefix}_ci_high": rate.ci_high,
        f"{prefix}_ci_method": rate.ci_method,
        f"{prefix}_note": rate.note,
    }


def analyse(
    counts: ComparisonCounts,
    *,
    targets: Sequence[float] = DEFAULT_TARGETS,
    alpha: float = 0.5,
    group_info: Mapping[str, Mapping] | None = None,
    config: Mapping | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    warnings: Sequence[str] = (),
    fmr_clusters: Mapping | None = None,
) -> AuditResult:
    """Every metric of the audit from ``counts``; ``group_info`` adds per-group image facts (FTE, faces).

    ``fmr_clusters`` (from :func:`~faceaudit.audit.scores.false_matches_by_subject`, keys ``targets``,
    ``group``, ``errors``, ``trials``) enables the subject-clustered bootstrap of FMR.
    """
    grid = counts.grid
    groups = counts.groups
    n_bins = grid.n_bins
    warn = list(warnings)
    group_info = group_info or {}
    total_nm = counts.non_mated_total()
    n_nm_total = int(total_nm.sum())
    if n_nm_total == 0:
        warn.append("there are no non-mated comparisons: no threshold can be set")
    mated_all = counts.mated_bins
    n_cross_mated = int(((counts.mated_group_a != counts.mated_group_b) | (counts.mated_group_a < 0)).sum())
    if n_cross_mated:
        warn.append(
            f"{n_cross_mated} mated comparisons join images with different or missing labels: "
            "they count in the overall FNMR only"
        )
    no_mated = [g for g_i, g in enumerate(groups) if len(counts.mated_within(g_i)) == 0]
    if len(no_mated) == 1:
        warn.append(
            f"group {no_mated[0]!r} has no mated pairs: its FNMR is {NOT_MEASURABLE} (the audit still runs)"
        )
    elif no_mated:
        which = (
            "every group"
            if len(no_mated) == len(groups)
            else f"{len(no_mated)} groups ({', '.join(no_mated)})"
        )
        warn.append(f"{which} has no mated pairs: FNMR is {NOT_MEASURABLE} (the audit still runs)")

    rows = []
    thresholds: dict[str, dict] = {}
    summary: dict[str, dict] = {}
    cross: dict[str, pd.DataFrame] = {}
    centres = grid.centre()[:n_bins]
    dist: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    for g_i, g in enumerate(groups):
        m_scores = counts.mated_scores[(counts.mated_group_a == g_i) & (counts.mated_group_b == g_i)]
        dist[g] = {
            "non_mated": histogram_stats(counts.non_mated_within(g_i), centres),
            "mated": exact_stats(m_scores),
        }
        fmr_c, fnmr_c = det_curve(counts.non_mated_within(g_i), counts.mated_within(g_i), n_bins)
        curves[g] = {"fmr": fmr_c, "fnmr": fnmr_c}
    curves["overall"] = dict(zip(("fmr", "fnmr"), det_curve(total_nm, mated_all, n_bins), strict=True))
    dist["overall"] = {
        "non_mated": histogram_stats(total_nm, centres),
        "mated": exact_stats(counts.mated_scores),
    }

    for target in targets:
        key = f"{target:g}"
        k = threshold_index(total_nm, target)
        if k is None:
            thresholds[key] = {"target_fmr": target, "threshold": None, "note": "no non-mated comparisons"}
            continue
        tau = grid.edge(k)
        e_all, n_all = non_mated_errors(total_nm, k)
        overall_fnmr = fnmr_rate(mated_all, k)
        thresholds[key] = {
            "target_fmr": target,
            "threshold": tau,
            "bin_index": k,
            "achieved_fmr": e_all / n_all,
            "false_matches": e_all,
            "non_mated_comparisons": n_all,
            "overall_fnmr": overall_fnmr.value,
            "exact_to": grid.width,
            "measurable": n_all >= min_comparisons(target) or e_all > 0,
        }
        if n_all < min_comparisons(target):
            warn.append(
                f"only {n_all} non-mated comparisons overall: a threshold for FMR {target:g} needs at least "
                f"{min_comparisons(target)} (rule of three); the threshold at {target:g} is {NOT_MEASURABLE}"
            )
        fmr_by, fnmr_by = {}, {}
        unmeasured: list[str] = []
        for g_i, g in enumerate(groups):
            h = counts.non_mated_within(g_i)
            mb = counts.mated_within(g_i)
            fm = fmr_rate(h, k, target)
            fn = fnmr_rate(mb, k)
            k_g = threshold_index(h, target)
            n_h = int(h.sum())
            tau_g_ok = k_g is not None and n_h >= min_comparisons(target)
            info = dict(group_info.get(g, {}))
            e_val, _ = eer(h, mb, n_bins)
            row = {
                "target_fmr": target,
                "group": g,
                "threshold": tau,
                **info,
                "n_mated": int(len(mb)),
                "n_non_mated": n_h,
                **_rate_cols("fmr", fm),
                **_rate_cols("fnmr", fn),
                "tau_g": grid.edge(k_g) if tau_g_ok else None,
                "tau_g_note": ""
                if tau_g_ok
                else f"{NOT_MEASURABLE}: {n_h} comparisons < {min_comparisons(target)}",
                "eer": e_val,
            }
            if bootstrap:
                row.update(_bootstrap_fnmr(counts, g_i, k, bootstrap, seed))
                row.update(_bootstrap_fmr(fmr_clusters, target, g_i, bootstrap, seed))
            d = dist[g]
            for side in ("mated", "non_mated"):
                for stat in ("mean", "q0.05", "q0.5", "q0.95"):
                    row[f"{side}_{stat}"] = d[side].get(stat)
            rows.append(row)
            fmr_by[g], fnmr_by[g] = fm.value, fn.value
            if fm.value is None:
                unmeasured.append(f"{g} ({fm.trials})")
        if unmeasured:
            warn.append(
                f"FMR at {target:g} is {NOT_MEASURABLE} for {', '.join(unmeasured)}: zero false matches in fewer "
                f"than {min_comparisons(target)} same-group non-mated comparisons (in brackets)"
            )
        s = fairness.summarise(fmr_by, fnmr_by, alpha)
        s["threshold"] = tau
        s["target_fmr"] = target
        for which in ("fmr", "fnmr"):
            if (
                s[f"{which}_max_min_ratio"] is None
                and sum(v is not None for v in (fmr_by if which == "fmr" else fnmr_by).values()) >= 2
            ):
                s[f"{which}_ratio_note"] = "undefined: a group has no errors at this threshold"
        summary[key] = s
        cm = np.full((len(groups), len(groups)), np.nan)
        for a in range(len(groups)):
            for b in range(len(groups)):
                e, n = non_mated_errors(counts.cross(a, b), k)
                if n:
                    cm[a, b] = e / n
        cross[key] = pd.DataFrame(cm, index=groups, columns=groups)

    by_group = pd.DataFrame(rows)
    if len(by_group):
        by_group = by_group.set_index(["target_fmr", "group"])
    result = AuditResult(
        config=dict(config or {}),
        by_group=by_group,
        summary=summary,
        thresholds=thresholds,
        cross_fmr=cross,
        warnings=_dedupe(warn),
        distributions=dist,
        curves=curves,
        grid=grid.as_dict(),
        histograms={g: counts.non_mated_within(i) for i, g in enumerate(groups)},
        mated_scores={
            g: counts.mated_scores[(counts.mated_group_a == i) & (counts.mated_group_b == i)]
            for i, g in enumerate(groups)
        },
        bin_centres=centres,
    )
    result.headline = headline(result)
    return result


def _bootstrap_fmr(fmr_clusters, target: float, g_i: int, n_boot: int, seed: int) -> dict:
    if not fmr_clusters or target not in fmr_clusters.get("targets", ()):
        return {"fmr_boot_low": None, "fmr_boot_high": None, "fmr_boot_method": ""}
    t = fmr_clusters["targets"].index(target)
    sel = fmr_clusters["group"] == g_i
    lo, hi = cluster_bootstrap_ratio(
        fmr_clusters["errors"][sel, t], fmr_clusters["trials"][sel], n_boot, seed=seed
    )
    method = f"{BOOTSTRAP_METHOD}, {n_boot} resamples; each pair split between its two subjects"
    return {"fmr_boot_low": lo, "fmr_boot_high": hi, "fmr_boot_method": method}


def _bootstrap_fnmr(counts: ComparisonCounts, g_i: int, k: int, n_boot: int, seed: int) -> dict:
    sel = (counts.mated_group_a == g_i) & (counts.mated_group_b == g_i)
    subj = counts.mated_subject[sel]
    errs = (counts.mated_bins[sel] < k).astype(np.float64)
    if len(subj) == 0:
        return {"fnmr_boot_low": None, "fnmr_boot_high": None, "fnmr_boot_method": ""}
    _, inv = np.unique(subj, return_inverse=True)
    lo, hi = cluster_bootstrap_ratio(np.bincount(inv, errs), np.bincount(inv), n_boot, seed=seed)
    return {
        "fnmr_boot_low": lo,
        "fnmr_boot_high": hi,
        "fnmr_boot_method": f"{BOOTSTRAP_METHOD}, {n_boot} resamples",
    }


def _dedupe(items: Sequence[str]) -> list[str]:
    seen, out = set(), []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


def headline(result: AuditResult) -> str:
    """One plain-language sentence (or two) about the first target's largest differentials."""
    if not result.summary:
        return "No threshold could be set: there were no non-mated comparisons."
    key = next(iter(result.summary))
    s = result.summary[key]
    tau = s["threshold"]
    target = s["target_fmr"]
    table = result.by_group.xs(s["target_fmr"], level="target_fmr") if len(result.by_group) else None
    parts = [f"At the threshold that gives FMR {target:.0e} overall (τ = {tau:.4f})"]
    hi_g, lo_g = s.get("fmr_max_group"), s.get("fmr_min_group")
    if hi_g is None:
        parts.append(", no group's FMR could be measured with this data.")
    elif hi_g == lo_g:
        parts.append(f", only {pair_name(hi_g)} FMR could be measured: {_fmt_rate(table.loc[hi_g, 'fmr'])}.")
    elif s["fmr_max_min_ratio"] is not None:
        parts.append(
            f", {pair_name(hi_g)} non-mated comparisons false-match {s['fmr_max_min_ratio']:.1f}× as often as "
            f"{pair_name(lo_g)} (FMR {_fmt_rate(table.loc[hi_g, 'fmr'])} in {int(table.loc[hi_g, 'fmr_trials']):,} "
            f"comparisons vs {_fmt_rate(table.loc[lo_g, 'fmr'])} in {int(table.loc[lo_g, 'fmr_trials']):,})."
        )
        parts.append(_overlap_caution(table, hi_g, lo_g, "fmr"))
    else:
        n0 = int(table.loc[lo_g, "fmr_trials"])
        parts.append(
            f", {pair_name(hi_g)} non-mated comparisons false-match at {_fmt_rate(table.loc[hi_g, 'fmr'])}, "
            f"while {pair_name(lo_g)} had none in {n0:,} comparisons."
        )
    text = "".join(parts)
    hi_n, lo_n = s.get("fnmr_max_group"), s.get("fnmr_min_group")
    if hi_n is None:
        text += " FNMR could not be measured: there are no mated pairs (no repeat identities)."
    elif hi_n != lo_n:
        ratio = s["fnmr_max_min_ratio"]
        how = f"{ratio:.1f}× as often as" if ratio is not None else "more often than"
        text += (
            f" Mated comparisons of {hi_n} fail to match {how} those of {lo_n} "
            f"(FNMR {_fmt_rate(table.loc[hi_n, 'fnmr'], True)} vs {_fmt_rate(table.loc[lo_n, 'fnmr'], True)})."
        )
        text += _overlap_caution(table, hi_n, lo_n, "fnmr")
    return text


def _overlap_caution(table, hi_g: str, lo_g: str, rate: str) -> str:
    """A warning sentence when the two groups' 95 % Clopper–Pearson intervals overlap (else empty)."""
    hi_low, lo_high = table.loc[hi_g, f"{rate}_ci_low"], table.loc[lo_g, f"{rate}_ci_high"]
    if hi_low is None or lo_high is None or pd.isna(hi_low) or pd.isna(lo_high) or hi_low > lo_high:
        return ""
    pct = rate == "fnmr"
    return (
        f" Their 95 % intervals overlap ({_fmt_rate(table.loc[hi_g, f'{rate}_ci_low'], pct)}–"
        f"{_fmt_rate(table.loc[hi_g, f'{rate}_ci_high'], pct)} vs {_fmt_rate(table.loc[lo_g, f'{rate}_ci_low'], pct)}–"
        f"{_fmt_rate(lo_high, pct)}), so this {rate.upper()} ratio is not established by this data."
    )
