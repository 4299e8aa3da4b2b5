"""The 1:N headline (manifest and candidate lists alike), by the 1:1 rule: ratios with their intervals, and "not
established by this data" when the extreme groups' intervals overlap or the direction flips between splits."""

from __future__ import annotations

import math

from faceaudit.audit.headline import _intro, _rate_words, format_rate, ratio_interval_words
from faceaudit.audit.metrics import Rate

RATES = (
    ("fpir", "FPIR", False, "non-mated searches of {hi} return a candidate"),
    ("fnir_rank1", "FNIR at rank 1", True, "mated searches of {hi} miss their mate"),
)


def _interval(ident, t, g: str, key: str, rate: Rate) -> tuple[float | None, float | None, str]:
    """The group's 95 % interval: subject-clustered (τ held) when the audit has one, else Clopper–Pearson."""
    boot = (getattr(ident, "bootstrap", None) or {}).get(str(t.target_fpir), {}).get(g, {}).get(key)
    if boot and boot.get("low") is not None:
        return boot["low"], boot["high"], "subject-clustered"
    return rate.ci_low, rate.ci_high, "Clopper–Pearson"


def _spread_words(ident, t, key: str, hi: str, lo: str) -> tuple[str, bool]:
    """With several splits: the ratio's median and range across them and how often the direction holds."""
    spread = (getattr(ident, "splits", None) or {}).get("targets", {}).get(str(t.target_fpir), {})
    r = spread.get(f"{key}_ratio") or {}
    if not r or r.get("pair") != [hi, lo] or r.get("n_splits", 0) < 2:
        return "", True
    held = r["direction_holds"]
    text = (
        f" Across {r['n_splits']} splits the ratio's median is {_x(r['median'])} (range {_x(r['min'])}–"
        f"{_x(r['max'])}) and {hi} is higher in {held} of {r['n_splits']}."
    )
    return text, held == r["n_splits"]


def _x(v: float | None) -> str:
    return "undefined" if v is None or not math.isfinite(v) else f"{v:.1f}×"


def _rate_sentence(ident, t, key: str, name: str, pct: bool, verb: str) -> str:
    rates = {g: getattr(r, key) for g, r in t.rates.items() if getattr(r, key).value is not None}
    if len(rates) < 2:
        return f" {name} can be measured for {len(rates)} probe group{'s' if len(rates) != 1 else ''} only."
    hi = max(rates, key=lambda g: rates[g].value)
    lo = min(rates, key=lambda g: rates[g].value)
    a, b = rates[hi], rates[lo]
    how = f"{a.value / b.value:.1f}× as often as" if b.value > 0 else "more often than"
    text = (
        f" {verb.format(hi=hi).capitalize()} {how} those of {lo} ({name} {_rate_words(a.value, pct)}, in "
        f"{a.trials:,} searches; vs {_rate_words(b.value, pct)}, in {b.trials:,})."
    )
    boot = (getattr(ident, "bootstrap", None) or {}).get(str(t.target_fpir), {}).get("ratios", {}).get(key)
    if boot and boot.get("pair") == [hi, lo]:
        words = ratio_interval_words(boot.get("low"), boot.get("high"))
        if words:
            text += f" The ratio's 95 % subject-clustered interval (τ held) is {words}."
    spread, holds = _spread_words(ident, t, key, hi, lo)
    text += spread
    (ah, bh, kind), (al, bl, _) = _interval(ident, t, hi, key, a), _interval(ident, t, lo, key, b)
    overlap = ah is not None and bl is not None and ah <= bl
    if overlap:
        text += (
            f" Their 95 % {kind} intervals overlap ({format_rate(ah, pct)}–{format_rate(bh, pct)} vs "
            f"{format_rate(al, pct)}–{format_rate(bl, pct)})"
        )
    if not holds:
        text += (" and the" if overlap else " The") + " direction flips between splits"
    if overlap or not holds:
        text += f", so this {name} difference is not established by this data."
    return text


def identification_sentences(ident, intro: str = "") -> str:
    """The 1:N headline at the first target FPIR the data support; unsupported targets are named."""
    parts = [intro] if intro else []
    usable = [t for t in ident.targets if t.threshold is not None]
    if not usable:
        return " ".join([*parts, "No 1:N threshold could be set: there were no non-mated searches."])
    n_nm = ident.split.get("non_mated_searches")
    for t in usable:
        if not t.measurable:
            parts.append(
                f"The data cannot support a 1:N threshold at FPIR {t.target_fpir:.0e}: {n_nm:,} non-mated "
                f"searches, and at least {math.ceil(3 / t.target_fpir):,} are needed (rule of three); no rates "
                "are compared there."
            )
    supported = [t for t in usable if t.measurable]
    if not supported:
        return " ".join(parts)
    t = supported[0]
    text = f"1:N, at the threshold that gives FPIR {t.target_fpir:.0e} overall (τ = {t.threshold:.4f}):"
    body = "".join(_rate_sentence(ident, t, *spec) for spec in RATES)
    return " ".join([*parts, text + body])


def identification_headline(result) -> str:
    """The 1:N headline of a candidate-list audit: data set, labels, and the 1:N sentences."""
    return identification_sentences(result.identification, _intro(result))
