"""Clopper–Pearson intervals for error rates (the subject-clustered bootstrap is in :mod:`.bootstrap`)."""

from __future__ import annotations

from scipy import stats

CP_METHOD = "clopper-pearson"
CP_ZERO_METHOD = "clopper-pearson one-sided (0 errors: rule of three)"


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
