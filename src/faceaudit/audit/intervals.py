"""Confidence intervals for error rates: Clopper–Pearson, and a subject-clustered bootstrap."""

from __future__ import annotations

import numpy as np
from scipy import stats

CP_METHOD = "clopper-pearson"
CP_ZERO_METHOD = "clopper-pearson one-sided (0 errors: rule of three)"
BOOTSTRAP_METHOD = "subject-clustered bootstrap (percentile)"


def clopper_pearson(errors: int, trials: int, confidence: float = 0.95) -> tuple[float, float, str]:
    """Exact binomial interval ``(low, high, method)`` for ``errors`` out of ``trials``.

    Two-sided Clopper–Pearson, except with zero errors, where the one-sided upper bound
    ``1 - (1 - confidence)^(1/n)`` is used: about ``3/n`` at 95 %, the rule of three. With no trials the
    interval is ``(nan, nan)``.
    """
    if trials <= 0:
        return (float("nan"), float("nan"), CP_METHOD)
    alpha = 1.0 - confidence
    if errors <= 0:
        return (0.0, float(1.0 - alpha ** (1.0 / trials)), CP_ZERO_METHOD)
    low = float(stats.beta.ppf(alpha / 2, errors, trials - errors + 1))
    high = 1.0 if errors >= trials else float(stats.beta.ppf(1 - alpha / 2, errors + 1, trials - errors))
    return (low, high, CP_METHOD)


def cluster_bootstrap_ratio(
    errors_by_cluster: np.ndarray,
    trials_by_cluster: np.ndarray,
    n_boot: int,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``sum(errors)/sum(trials)`` when whole clusters (subjects) are resampled.

    ``errors_by_cluster[c]`` and ``trials_by_cluster[c]`` are cluster c's share of the errors and comparisons.
    Returns ``(nan, nan)`` without clusters.
    """
    e = np.asarray(errors_by_cluster, np.float64)
    t = np.asarray(trials_by_cluster, np.float64)
    if len(e) == 0 or n_boot <= 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    rates = np.empty(n_boot)
    for i in range(n_boot):
        w = np.bincount(rng.integers(0, len(e), len(e)), minlength=len(e))
        den = w @ t
        rates[i] = (w @ e) / den if den > 0 else np.nan
    alpha = 1.0 - confidence
    rates = rates[np.isfinite(rates)]
    if len(rates) == 0:
        return (float("nan"), float("nan"))
    return (float(np.quantile(rates, alpha / 2)), float(np.quantile(rates, 1 - alpha / 2)))
