"""The headline: the audit's largest differentials in plain language (presentation, not computation)."""

from __future__ import annotations

import math

from faceaudit.audit.disaggregated import TargetResult
from faceaudit.audit.metrics import NOT_MEASURABLE, Rate
from faceaudit.audit.result import AuditResult


def pair_name(group: str) -> str:
    """``female`` → ``female–female`` (same-group comparisons)."""
    return f"{group}–{group}"


def format_rate(r: float | None, percent: bool = False) -> str:
    """``1.23e-03``, or ``1.23 %`` with ``percent``; :data:`NOT_MEASURABLE` for a missing rate."""
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return NOT_MEASURABLE
    return f"{100 * r:.2f} %" if percent else f"{r:.2e}"


def headline(result: AuditResult) -> str:
    """One plain-language sentence (or two) about the first measured target's largest differentials."""
    measured = result.measured
    if not measured:
        return "No threshold could be set: there were no non-mated comparisons."
    t = measured[0]
    return _fmr_sentence(t) + _fnmr_sentence(t)


def _fmr_sentence(t: TargetResult) -> str:
    s = t.differentials
    text = f"At the threshold that gives FMR {t.target_fmr:.0e} overall (τ = {t.threshold.threshold:.4f})"
    hi_g, lo_g = s.get("fmr_max_group"), s.get("fmr_min_group")
    if hi_g is None:
        return text + ", no group's FMR could be measured with this data."
    hi, lo = t.rates[hi_g].fmr, t.rates[lo_g].fmr
    if hi_g == lo_g:
        return text + f", only {pair_name(hi_g)} FMR could be measured: {format_rate(hi.value)}."
    if s["fmr_max_min_ratio"] is not None:
        return (
            text
            + f", {pair_name(hi_g)} non-mated comparisons false-match {s['fmr_max_min_ratio']:.1f}× as often as "
            f"{pair_name(lo_g)} (FMR {format_rate(hi.value)} in {hi.trials:,} "
            f"comparisons vs {format_rate(lo.value)} in {lo.trials:,})." + _overlap_caution(hi, lo, "fmr")
        )
    return (
        text + f", {pair_name(hi_g)} non-mated comparisons false-match at {format_rate(hi.value)}, "
        f"while {pair_name(lo_g)} had none in {lo.trials:,} comparisons."
    )


def _fnmr_sentence(t: TargetResult) -> str:
    s = t.differentials
    hi_n, lo_n = s.get("fnmr_max_group"), s.get("fnmr_min_group")
    if hi_n is None:
        return " FNMR could not be measured: there are no mated pairs (no repeat identities)."
    if hi_n == lo_n:
        return ""
    hi, lo = t.rates[hi_n].fnmr, t.rates[lo_n].fnmr
    ratio = s["fnmr_max_min_ratio"]
    how = f"{ratio:.1f}× as often as" if ratio is not None else "more often than"
    return (
        f" Mated comparisons of {hi_n} fail to match {how} those of {lo_n} "
        f"(FNMR {format_rate(hi.value, True)} vs {format_rate(lo.value, True)})."
    ) + _overlap_caution(hi, lo, "fnmr")


def _overlap_caution(hi: Rate, lo: Rate, rate: str) -> str:
    """A warning sentence when the two groups' 95 % Clopper–Pearson intervals overlap (else empty)."""
    if hi.ci_low is None or lo.ci_high is None or math.isnan(hi.ci_low) or math.isnan(lo.ci_high):
        return ""
    if hi.ci_low > lo.ci_high:
        return ""
    pct = rate == "fnmr"
    return (
        f" Their 95 % intervals overlap ({format_rate(hi.ci_low, pct)}–"
        f"{format_rate(hi.ci_high, pct)} vs {format_rate(lo.ci_low, pct)}–"
        f"{format_rate(lo.ci_high, pct)}), so this {rate.upper()} ratio is not established by this data."
    )
