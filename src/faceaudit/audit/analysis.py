"""From comparison counts to typed results: thresholds, per-group rates, differentials and warnings.

Computation only: the tables and files are :class:`~faceaudit.audit.result.AuditResult`'s, the sentences
:mod:`faceaudit.audit.headline`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from faceaudit.audit import fairness
from faceaudit.audit.bootstrap import ClusteredBootstrap
from faceaudit.audit.counts import ComparisonCounts
from faceaudit.audit.disaggregated import GroupRates, Interval, TargetResult, Threshold
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

DEFAULT_TARGETS = (1e-3, 1e-4)


def analyse(
    counts: ComparisonCounts,
    *,
    targets: Sequence[float] = DEFAULT_TARGETS,
    alpha: float = 0.5,
    group_info: Mapping[str, Mapping] | None = None,
    config: Mapping | None = None,
    warnings: Sequence[str] = (),
    bootstrap: ClusteredBootstrap | None = None,
) -> AuditResult:
    """Every metric of the audit from ``counts``; ``group_info`` adds per-group image facts (FTE, faces).

    ``bootstrap`` (a :class:`~faceaudit.audit.bootstrap.ClusteredBootstrap`) adds subject-clustered intervals
    for each rate and for the max/min ratios. The result has no headline yet:
    :func:`faceaudit.audit.headline.headline` writes it.
    """
    warn = [*warnings, *coverage_warnings(counts)]
    results = []
    for target in targets:
        result, target_warnings = measure_target(counts, target, alpha=alpha, bootstrap=bootstrap)
        results.append(result)
        warn += target_warnings
    groups = counts.groups
    return AuditResult(
        config=dict(config or {}),
        targets=results,
        group_info={g: dict((group_info or {}).get(g, {})) for g in groups},
        warnings=list(dict.fromkeys(warn)),
        distributions=score_distributions(counts),
        curves=det_curves(counts),
        grid=counts.grid.as_dict(),
        histograms={g: counts.non_mated_within(i) for i, g in enumerate(groups)},
        mated_scores={g: _mated_scores_within(counts, i) for i, g in enumerate(groups)},
        bin_centres=counts.grid.centre()[: counts.grid.n_bins],
    )


def coverage_warnings(counts: ComparisonCounts) -> list[str]:
    """Warnings about what the data cannot measure: no non-mated pairs, mixed-label or missing mated pairs."""
    warn = []
    if int(counts.non_mated_total().sum()) == 0:
        warn.append("there are no non-mated comparisons: no threshold can be set")
    n_cross_mated = int(((counts.mated_group_a != counts.mated_group_b) | (counts.mated_group_a < 0)).sum())
    if n_cross_mated:
        warn.append(
            f"{n_cross_mated:,} mated comparison{'s join' if n_cross_mated > 1 else ' joins'} images with "
            f"different or missing labels: {'they count' if n_cross_mated > 1 else 'it counts'} in the overall "
            "FNMR only"
        )
    groups = counts.groups
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
    return warn


def _mated_scores_within(counts: ComparisonCounts, g: int) -> np.ndarray:
    return counts.mated_scores[(counts.mated_group_a == g) & (counts.mated_group_b == g)]


def score_distributions(counts: ComparisonCounts) -> dict[str, dict]:
    """Mean and quantiles of the mated and non-mated scores of each group and overall."""
    centres = counts.grid.centre()[: counts.grid.n_bins]
    dist = {
        g: {
            "non_mated": histogram_stats(counts.non_mated_within(g_i), centres),
            "mated": exact_stats(_mated_scores_within(counts, g_i)),
        }
        for g_i, g in enumerate(counts.groups)
    }
    dist["overall"] = {
        "non_mated": histogram_stats(counts.non_mated_total(), centres),
        "mated": exact_stats(counts.mated_scores),
    }
    return dist


def det_curves(counts: ComparisonCounts) -> dict[str, dict]:
    """FMR and FNMR at every bin edge, per group (same-group comparisons) and overall."""
    n_bins = counts.grid.n_bins
    curves = {}
    for g_i, g in enumerate(counts.groups):
        fmr_c, fnmr_c = det_curve(counts.non_mated_within(g_i), counts.mated_within(g_i), n_bins)
        curves[g] = {"fmr": fmr_c, "fnmr": fnmr_c}
    fmr_c, fnmr_c = det_curve(counts.non_mated_total(), counts.mated_bins, n_bins)
    curves["overall"] = {"fmr": fmr_c, "fnmr": fnmr_c}
    return curves


def global_threshold(counts: ComparisonCounts, target: float) -> Threshold:
    """The lowest bin edge at which the overall FMR is at most ``target``."""
    total_nm = counts.non_mated_total()
    k = threshold_index(total_nm, target)
    if k is None:
        return Threshold(target_fmr=target, threshold=None, note="no non-mated comparisons")
    e_all, n_all = non_mated_errors(total_nm, k)
    return Threshold(
        target_fmr=target,
        threshold=counts.grid.edge(k),
        bin_index=k,
        achieved_fmr=e_all / n_all,
        false_matches=e_all,
        non_mated_comparisons=n_all,
        overall_fnmr=fnmr_rate(counts.mated_bins, k).value,
        exact_to=counts.grid.width,
        measurable=n_all >= min_comparisons(target),
    )


def group_rates(
    counts: ComparisonCounts,
    g_i: int,
    k: int,
    target: float,
    *,
    bootstrap: ClusteredBootstrap | None = None,
) -> GroupRates:
    """Group ``g_i``'s FMR and FNMR at bin index ``k``, its own threshold for ``target``, EER and intervals."""
    h = counts.non_mated_within(g_i)
    mb = counts.mated_within(g_i)
    k_g = threshold_index(h, target)
    n_h = int(h.sum())
    tau_g_ok = k_g is not None and n_h >= min_comparisons(target)
    fmr, fnmr = fmr_rate(h, k, target), fnmr_rate(mb, k)
    return GroupRates(
        group=counts.groups[g_i],
        fmr=fmr,
        fnmr=fnmr,
        n_non_mated=n_h,
        n_mated=int(len(mb)),
        tau_g=counts.grid.edge(k_g) if tau_g_ok else None,
        tau_g_note="" if tau_g_ok else f"{NOT_MEASURABLE}: {n_h} comparisons < {min_comparisons(target)}",
        eer=eer(h, mb, counts.grid.n_bins)[0],
        fmr_boot=_no_zero_width(bootstrap.interval(bootstrap.fmr(g_i, k)), fmr) if bootstrap else None,
        fnmr_boot=_no_zero_width(bootstrap.interval(bootstrap.fnmr(g_i, k)), fnmr) if bootstrap else None,
    )


def _no_zero_width(boot: Interval, rate: Rate) -> Interval:
    """A bootstrap of a rate with no error collapses to [0, 0]: its upper end becomes the exact
    (Clopper–Pearson) upper bound, and the method says so."""
    if rate.errors or boot.low is None or rate.ci_high is None or (boot.high or 0) >= rate.ci_high:
        return boot
    return Interval(boot.low, rate.ci_high, f"{boot.method}; 0 errors: upper end the exact one-sided bound")


def cross_group_fmr(counts: ComparisonCounts, k: int) -> np.ndarray:
    """FMR of the non-mated comparisons between each pair of groups at bin index ``k`` (NaN: none)."""
    n = len(counts.groups)
    cm = np.full((n, n), np.nan)
    for a in range(n):
        for b in range(n):
            e, t = non_mated_errors(counts.cross(a, b), k)
            if t:
                cm[a, b] = e / t
    return cm


def differentials(rates: Mapping[str, GroupRates], alpha: float, threshold: Threshold) -> dict:
    """Summary measures over the groups' rates, with a note where a ratio is undefined for want of errors."""
    fmr_by = {g: r.fmr.value for g, r in rates.items()}
    fnmr_by = {g: r.fnmr.value for g, r in rates.items()}
    s = fairness.summarise(fmr_by, fnmr_by, alpha)
    s["threshold"] = threshold.threshold
    s["target_fmr"] = threshold.target_fmr
    for which, by in (("fmr", fmr_by), ("fnmr", fnmr_by)):
        if s[f"{which}_max_min_ratio"] is None and sum(v is not None for v in by.values()) >= 2:
            s[f"{which}_ratio_note"] = "undefined: a group has no errors at this threshold"
    return s


def measure_target(
    counts: ComparisonCounts,
    target: float,
    *,
    alpha: float = 0.5,
    bootstrap: ClusteredBootstrap | None = None,
) -> tuple[TargetResult, list[str]]:
    """The :class:`TargetResult` at one target FMR, and the warnings it raises."""
    threshold = global_threshold(counts, target)
    if threshold.threshold is None:
        return TargetResult(threshold), []
    warn = []
    n_all = threshold.non_mated_comparisons
    if n_all < min_comparisons(target):
        warn.append(
            f"only {n_all} non-mated comparisons overall: a threshold for FMR {target:g} needs at least "
            f"{min_comparisons(target)} (rule of three); the threshold at {target:g} is {NOT_MEASURABLE}"
        )
    k = threshold.bin_index
    rates = {
        g: group_rates(counts, g_i, k, target, bootstrap=bootstrap) for g_i, g in enumerate(counts.groups)
    }
    unmeasured = [f"{g} ({r.fmr.trials})" for g, r in rates.items() if r.fmr.value is None]
    if unmeasured:
        warn.append(
            f"FMR at {target:g} is {NOT_MEASURABLE} for {', '.join(unmeasured)}: zero false matches in fewer "
            f"than {min_comparisons(target)} same-group non-mated comparisons (in brackets)"
        )
    diffs = differentials(rates, alpha, threshold)
    if bootstrap:
        index = {g: i for i, g in enumerate(counts.groups)}
        for rate in ("fmr", "fnmr"):
            hi, lo = diffs.get(f"{rate}_max_group"), diffs.get(f"{rate}_min_group")
            if hi is not None and hi != lo:
                iv = bootstrap.ratio(rate, index[hi], index[lo], k)
                diffs[f"{rate}_ratio_ci_low"], diffs[f"{rate}_ratio_ci_high"] = iv.low, iv.high
                diffs[f"{rate}_ratio_ci_method"] = iv.method
                if iv.high is not None and math.isinf(iv.high):
                    diffs[f"{rate}_ratio_ci_note"] = (
                        f"no upper bound: in some resamples {lo} has no {rate.upper()} errors"
                    )
    result = TargetResult(
        threshold=threshold, rates=rates, differentials=diffs, cross_fmr=cross_group_fmr(counts, k)
    )
    return result, warn
