"""The headline: the audit's largest differentials in plain language (presentation, not computation).

Written for a policy reader: the data set and where its labels came from, each rate with "about 1 in N", one
unit per rate (FMR in scientific notation, FNMR in percent, as in the tables), the ratio's own interval, and
"not established by this data" whenever the two extreme groups' intervals overlap.
"""

from __future__ import annotations

import math

from faceaudit.audit.disaggregated import GroupRates, TargetResult, group_interval, interval_kind
from faceaudit.audit.metrics import NOT_MEASURABLE, min_comparisons
from faceaudit.audit.result import AuditResult


def pair_name(group: str) -> str:
    """``female`` → ``female–female`` (same-group comparisons)."""
    return f"{group}–{group}"


def _missing(r: float | None) -> bool:
    return r is None or (isinstance(r, float) and math.isnan(r))


def format_rate(r: float | None, percent: bool = False) -> str:
    """``1.23e-03``, or ``1.23 %`` with ``percent``; :data:`NOT_MEASURABLE` for a missing rate."""
    if _missing(r):
        return NOT_MEASURABLE
    return f"{100 * r:.2f} %" if percent else f"{r:.2e}"


def one_in(r: float | None) -> str:
    """``about 1 in 270`` for 3.69e-03 (two significant digits); empty for 0 or a missing rate."""
    if _missing(r) or r <= 0:
        return ""
    n = 1.0 / r
    if n < 10:
        return f"about 1 in {n:.2g}"
    step = 10 ** (int(math.floor(math.log10(n))) - 1)
    return f"about 1 in {int(round(n / step) * step):,}"


def _rate_words(r: float | None, percent: bool) -> str:
    """``1.23e-03, about 1 in 810`` (no trailing punctuation; the caller adds what follows)."""
    words = one_in(r)
    return f"{format_rate(r, percent)}, {words}" if words else format_rate(r, percent)


def headline(result: AuditResult) -> str:
    """A few plain-language sentences about the largest differentials at the first target that the data
    support; targets they do not support are named, and no rates are compared at them."""
    measured = result.measured
    intro = _intro(result)
    if not measured:
        return _join(intro, "No threshold could be set: there were no non-mated comparisons.")
    text = " ".join(_unsupported_sentence(t) for t in measured if not t.threshold.measurable)
    supported = [t for t in measured if t.threshold.measurable]
    if not supported:
        return _join(intro, text)
    t = supported[0]
    if len(result.groups) == 1:
        return _join(intro, text, _one_group_sentence(t))
    return _join(intro, text, _fmr_sentence(t) + _fnmr_sentence(t))


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _intro(result: AuditResult) -> str:
    c = result.config
    if not c.get("dataset"):
        return ""
    return f"Data: {c['dataset']}; labels: {c.get('label_source') or 'source not stated'}."


def _unsupported_sentence(t: TargetResult) -> str:
    n, e = t.threshold.non_mated_comparisons, t.threshold.false_matches or 0
    found = f"{e:,} false match{'es' if e != 1 else ''}" if e else "no false match"
    return (
        f"The data cannot support a threshold at FMR {t.target_fmr:.0e}: {n:,} non-mated comparisons "
        f"({found}), and at least {min_comparisons(t.target_fmr):,} are needed (rule of three); no rates are "
        "compared there."
    )


def _one_group_sentence(t: TargetResult) -> str:
    ((g, r),) = t.rates.items()
    return (
        f"There is one group ({g}): no differential can be measured with one group. At the threshold that "
        f"gives FMR {t.target_fmr:.0e} overall (τ = {t.threshold.threshold:.4f}) its FMR is "
        f"{format_rate(r.fmr.value)} and its FNMR {format_rate(r.fnmr.value, True)}."
    )


def _fmr_sentence(t: TargetResult) -> str:
    s = t.differentials
    text = f"At the threshold that gives FMR {t.target_fmr:.0e} overall (τ = {t.threshold.threshold:.4f})"
    hi_g, lo_g = s.get("fmr_max_group"), s.get("fmr_min_group")
    if hi_g is None:
        return text + ", no group's FMR could be measured with this data."
    hi, lo = t.rates[hi_g], t.rates[lo_g]
    if hi_g == lo_g:
        return text + f", only {pair_name(hi_g)} FMR could be measured: {_rate_words(hi.fmr.value, False)}."
    if s["fmr_max_min_ratio"] is None:
        return (
            text
            + f", {pair_name(hi_g)} non-mated comparisons false-match at {_rate_words(hi.fmr.value, False)}, "
            f"while {pair_name(lo_g)} had none in {lo.fmr.trials:,} comparisons."
            + _caution(s, hi, lo, "fmr", t)
        )
    return (
        text
        + f", {pair_name(hi_g)} non-mated comparisons false-match {s['fmr_max_min_ratio']:.1f}× as often "
        f"as {pair_name(lo_g)} (FMR {_rate_words(hi.fmr.value, False)}, in {hi.fmr.trials:,} comparisons; vs "
        f"{_rate_words(lo.fmr.value, False)}, in {lo.fmr.trials:,})." + _caution(s, hi, lo, "fmr", t)
    )


def _fnmr_sentence(t: TargetResult) -> str:
    s = t.differentials
    hi_n, lo_n = s.get("fnmr_max_group"), s.get("fnmr_min_group")
    if hi_n is None:
        return " FNMR could not be measured: there are no mated pairs (no repeat identities)."
    if hi_n == lo_n:
        return ""
    hi, lo = t.rates[hi_n], t.rates[lo_n]
    ratio = s["fnmr_max_min_ratio"]
    how = f"{ratio:.1f}× as often as" if ratio is not None else "more often than"
    return (
        f" Mated comparisons of {hi_n} fail to match {how} those of {lo_n} "
        f"(FNMR {_rate_words(hi.fnmr.value, True)}, in {hi.fnmr.trials:,} comparisons; vs "
        f"{_rate_words(lo.fnmr.value, True)}, in {lo.fnmr.trials:,})."
    ) + _caution(s, hi, lo, "fnmr", t)


def ratio_interval_words(low: float | None, high: float | None) -> str:
    """``1.3–5.2×``, ``at least 1.3× (no upper bound)``, or "" when it could not be computed."""
    if _missing(low):
        return ""
    if math.isinf(low):
        return "unbounded (the lower group has no errors in most resamples)"
    if _missing(high) or math.isinf(high):
        return f"at least {low:.1f}× (no upper bound: in some resamples the lower group has no errors)"
    return f"{low:.1f}–{high:.1f}×"


def _caution(s: dict, hi: GroupRates, lo: GroupRates, rate: str, t: TargetResult) -> str:
    """The ratio's own interval, and "not established by this data" when the extreme groups' 95 % intervals
    (of the kind the table shows, :func:`interval_kind`) overlap."""
    kind = interval_kind(t.rates.values(), rate)
    ih, il = group_interval(hi, rate, kind), group_interval(lo, rate, kind)
    pct = rate == "fnmr"
    words = ratio_interval_words(s.get(f"{rate}_ratio_ci_low"), s.get(f"{rate}_ratio_ci_high"))
    text = f" The ratio's 95 % subject-clustered interval is {words}." if words else ""
    if _missing(ih.low) or _missing(il.high) or ih.low > il.high:
        return text
    return text + (
        f" Their 95 % {kind} intervals overlap ({format_rate(ih.low, pct)}–{format_rate(ih.high, pct)} vs "
        f"{format_rate(il.low, pct)}–{format_rate(il.high, pct)}), so this {rate.upper()} difference is not "
        "established by this data."
    )
