"""Error rates over score histograms and exact mated scores (pure functions; no images, no I/O).

Conventions: bin index k is a threshold; a comparison matches at k when its bin index is >= k. So
FMR(k) = (non-mated comparisons in bins >= k) / (non-mated comparisons) and
FNMR(k) = (mated comparisons in bins < k) / (mated comparisons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faceaudit.audit.intervals import clopper_pearson

NOT_MEASURABLE_SHORT = "not measurable"
"""The short form, where space is short (table cells)."""
NOT_MEASURABLE = f"{NOT_MEASURABLE_SHORT} with this data"
"""What a rate is, instead of 0, when the data cannot measure it."""


def counts_at_or_above(hist: np.ndarray) -> np.ndarray:
    """``ge[k]`` = number of comparisons in bins >= k, for k = 0 .. len(hist) (the last is 0)."""
    h = np.asarray(hist, np.int64)
    ge = np.zeros(len(h) + 1, np.int64)
    ge[:-1] = np.cumsum(h[::-1])[::-1]
    return ge


def threshold_index(hist: np.ndarray, target_fmr: float) -> int | None:
    """The smallest bin index k whose FMR(k) <= ``target_fmr`` (None without comparisons)."""
    ge = counts_at_or_above(hist)
    total = int(ge[0])
    if total == 0:
        return None
    allowed = math.floor(target_fmr * total + 1e-9)
    # ge is non-increasing: the first k with ge[k] <= allowed
    return int(np.searchsorted(-ge, -allowed, side="left"))


def non_mated_errors(hist: np.ndarray, k: int) -> tuple[int, int]:
    """(false matches, non-mated comparisons) at bin index k."""
    h = np.asarray(hist, np.int64)
    return int(h[k:].sum()), int(h.sum())


def mated_errors(mated_bins: np.ndarray, k: int) -> tuple[int, int]:
    """(false non-matches, mated comparisons) at bin index k."""
    b = np.asarray(mated_bins)
    return int((b < k).sum()), int(len(b))


def min_comparisons(target_fmr: float) -> int:
    """Fewest non-mated comparisons that can show an FMR at ``target_fmr`` with zero errors (rule of three)."""
    return math.ceil(3.0 / target_fmr)


@dataclass(frozen=True, slots=True)
class Rate:
    """An error rate with its counts, 95 % interval and interval method; ``value`` None when not measurable."""

    errors: int
    trials: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str
    note: str = ""


def make_rate(errors: int, trials: int, *, measurable: bool = True, note: str = "") -> Rate:
    """A :class:`Rate` with its Clopper–Pearson interval; not measurable without trials or when told."""
    if trials <= 0:
        return Rate(errors, trials, None, None, None, "", note or f"{NOT_MEASURABLE} (no comparisons)")
    low, high, method = clopper_pearson(errors, trials)
    if not measurable:
        return Rate(errors, trials, None, low, high, method, note or NOT_MEASURABLE)
    return Rate(errors, trials, errors / trials, low, high, method, note)


def fmr_rate(hist: np.ndarray, k: int, target_fmr: float) -> Rate:
    """FMR at k. With zero false matches and fewer than 3/target comparisons it is not measurable."""
    e, n = non_mated_errors(hist, k)
    ok = e > 0 or n >= min_comparisons(target_fmr)
    note = (
        ""
        if ok
        else f"{NOT_MEASURABLE}: 0 false matches in {n} comparisons; need {min_comparisons(target_fmr)}"
    )
    return make_rate(e, n, measurable=ok, note=note)


def fnmr_rate(mated_bins: np.ndarray, k: int) -> Rate:
    """FNMR at k; not measurable without mated comparisons."""
    e, n = mated_errors(mated_bins, k)
    if n == 0:
        return make_rate(0, 0, note=f"{NOT_MEASURABLE}: no mated comparisons")
    return make_rate(e, n)


def det_curve(hist: np.ndarray, mated_bins: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(FMR(k), FNMR(k)) for every k = 0 .. n_bins; NaN where a side has no comparisons."""
    ge = counts_at_or_above(hist).astype(np.float64)
    fmr = ge / ge[0] if ge[0] > 0 else np.full(n_bins + 1, np.nan)
    b = np.asarray(mated_bins)
    if len(b):
        m_hist = np.bincount(b, minlength=n_bins)[:n_bins]
        below = np.concatenate([[0], np.cumsum(m_hist)]).astype(np.float64)
        fnmr = below / len(b)
    else:
        fnmr = np.full(n_bins + 1, np.nan)
    return fmr, fnmr


def eer(hist: np.ndarray, mated_bins: np.ndarray, n_bins: int) -> tuple[float | None, int | None]:
    """Equal error rate and its bin index: where |FMR - FNMR| is smallest (their mean there)."""
    fmr, fnmr = det_curve(hist, mated_bins, n_bins)
    if np.isnan(fmr[0]) or np.isnan(fnmr[0]):
        return None, None
    k = int(np.argmin(np.abs(fmr - fnmr)))
    return float((fmr[k] + fnmr[k]) / 2), k


def histogram_stats(hist: np.ndarray, centres: np.ndarray, quantiles=(0.05, 0.5, 0.95, 0.99, 0.999)) -> dict:
    """Mean and quantiles of binned scores (exact to one bin width); empty dict without scores."""
    h = np.asarray(hist, np.float64)
    n = h.sum()
    if n == 0:
        return {}
    order = np.argsort(centres)
    c, hh = centres[order], h[order]
    cum = np.cumsum(hh) / n
    out = {"n": int(n), "mean": float((c * hh).sum() / n)}
    for q in quantiles:
        out[f"q{q:g}"] = float(c[min(int(np.searchsorted(cum, q, side="left")), len(c) - 1)])
    return out


def exact_stats(scores: np.ndarray, quantiles=(0.05, 0.5, 0.95, 0.99, 0.999)) -> dict:
    """Mean and quantiles of exact scores; empty dict without scores."""
    s = np.asarray(scores, np.float64)
    if len(s) == 0:
        return {}
    out = {"n": int(len(s)), "mean": float(s.mean())}
    for q in quantiles:
        out[f"q{q:g}"] = float(np.quantile(s, q))
    return out
