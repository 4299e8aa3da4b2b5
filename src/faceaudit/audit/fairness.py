"""Summary measures of demographic differentials over per-group FMR and FNMR (pure functions).

- max/min ratios (NIST FRVT Part 3),
- FDR, the fairness discrepancy rate (de Freitas Pereira & Marcel, IEEE TBIOM 2021),
- GARBE, the Gini aggregation rate for biometric equitability (Howard et al., 2022, arXiv 2203.05051),
- IR, the inequity rate (Howard et al.).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from faceaudit.csvfile import read_csv_table
from faceaudit.errors import InputError, UsageError


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None and np.isfinite(v)], np.float64)


def max_min_ratio(values: Sequence[float | None]) -> float | None:
    """max/min across groups (the larger in the numerator); None with fewer than 2 values or a zero minimum."""
    x = _clean(values)
    if len(x) < 2 or x.min() <= 0:
        return None
    return float(x.max() / x.min())


def max_abs_difference(values: Sequence[float | None]) -> float | None:
    """max over i, j of |x_i - x_j|; None with fewer than 2 values."""
    x = _clean(values)
    return float(x.max() - x.min()) if len(x) >= 2 else None


def fdr(fmr: Sequence[float | None], fnmr: Sequence[float | None], alpha: float = 0.5) -> float | None:
    """Fairness discrepancy rate ``1 - (alpha·A + (1 - alpha)·B)``, A and B the largest FMR and FNMR gaps."""
    a, b = max_abs_difference(fmr), max_abs_difference(fnmr)
    if a is None and b is None:
        return None
    if a is None or b is None:  # only one side measurable: use it alone
        return float(1.0 - (a if a is not None else b))
    return float(1.0 - (alpha * a + (1.0 - alpha) * b))


def gini(values: Sequence[float | None]) -> float | None:
    """Gini coefficient ``n/(n-1) · ΣΣ|x_i - x_j| / (2 n² mean(x))``; 0 when every value is 0."""
    x = _clean(values)
    n = len(x)
    if n < 2:
        return None
    mean = x.mean()
    if mean == 0:
        return 0.0
    total = np.abs(x[:, None] - x[None, :]).sum()
    return float(n / (n - 1) * total / (2 * n * n * mean))


def garbe(fmr: Sequence[float | None], fnmr: Sequence[float | None], alpha: float = 0.5) -> float | None:
    """GARBE ``alpha·G(FMR) + (1 - alpha)·G(FNMR)``."""
    a, b = gini(fmr), gini(fnmr)
    if a is None and b is None:
        return None
    if a is None or b is None:
        return a if a is not None else b
    return float(alpha * a + (1.0 - alpha) * b)


def inequity_rate(
    fmr: Sequence[float | None], fnmr: Sequence[float | None], alpha: float = 0.5
) -> float | None:
    """IR ``(maxFMR/minFMR)^alpha · (maxFNMR/minFNMR)^(1 - alpha)``; None when a ratio is undefined."""
    a, b = max_min_ratio(fmr), max_min_ratio(fnmr)
    if a is None or b is None:
        return None
    return float(a**alpha * b ** (1.0 - alpha))


ALPHA_DEFAULTS = {"fdr": 0.5, "garbe": 0.5, "ir": 0.5}
"""The weight of FMR in each measure, as in the cited papers' worked examples (equal weight of FMR and FNMR)."""


def alphas(alpha: float | Mapping[str, float] | None = None, **each: float | None) -> dict[str, float]:
    """``{"fdr": α, "garbe": α, "ir": α}`` from one α for all, or a mapping, with ``fdr=``/``garbe=``/``ir=``
    overriding; each must lie in [0, 1]."""
    if isinstance(alpha, Mapping):
        out = {**ALPHA_DEFAULTS, **alpha}
    else:
        out = {k: (ALPHA_DEFAULTS[k] if alpha is None else float(alpha)) for k in ALPHA_DEFAULTS}
    out.update({k: float(v) for k, v in each.items() if v is not None})
    for k, v in out.items():
        if not 0.0 <= v <= 1.0:
            raise UsageError(f"--alpha-{k} must lie in [0, 1], not {v}")
    return out


def summarise(
    fmr: Mapping[str, float | None],
    fnmr: Mapping[str, float | None],
    alpha: float | Mapping[str, float] = 0.5,
) -> dict:
    """Every summary measure over per-group rates (groups with None are left out).

    ``alpha`` is the weight of FMR: one value for FDR, GARBE and IR, or ``{"fdr": …, "garbe": …, "ir": …}``.
    """
    a = alphas(alpha)
    f, n = list(fmr.values()), list(fnmr.values())
    out = {
        "fmr_max_min_ratio": max_min_ratio(f),
        "fnmr_max_min_ratio": max_min_ratio(n),
        "fmr_max_abs_diff": max_abs_difference(f),
        "fnmr_max_abs_diff": max_abs_difference(n),
        "fdr": fdr(f, n, a["fdr"]),
        "garbe": garbe(f, n, a["garbe"]),
        "gini_fmr": gini(f),
        "gini_fnmr": gini(n),
        "ir": inequity_rate(f, n, a["ir"]),
        "alpha": a["fdr"] if len(set(a.values())) == 1 else a,
        "alpha_fdr": a["fdr"],
        "alpha_garbe": a["garbe"],
        "alpha_ir": a["ir"],
    }
    measured_f = {g: v for g, v in fmr.items() if v is not None and math.isfinite(v)}
    measured_n = {g: v for g, v in fnmr.items() if v is not None and math.isfinite(v)}
    if measured_f:
        out["fmr_max_group"] = max(measured_f, key=measured_f.get)
        out["fmr_min_group"] = min(measured_f, key=measured_f.get)
    if measured_n:
        out["fnmr_max_group"] = max(measured_n, key=measured_n.get)
        out["fnmr_min_group"] = min(measured_n, key=measured_n.get)
    return out


def read_rates_csv(path: str | os.PathLike) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """Rows of a rates CSV in the column form ``FMR.<group>`` / ``FNMR.<group>`` (NIST FRVT Part 3 Annex 15).

    Returns ``(row name, {group: FMR}, {group: FNMR})``; the row name is the first non-rate column
    (e.g. ``Algorithm``), else ``row N``. Empty cells are left out.
    """
    table = read_csv_table(path, what="rates file")
    cols = list(table.columns)
    fmr_cols = [c for c in cols if c.startswith("FMR.")]
    fnmr_cols = [c for c in cols if c.startswith("FNMR.")]
    if not fmr_cols and not fnmr_cols:
        raise InputError(path, f"no FMR.<group> or FNMR.<group> columns (columns: {cols})")
    name_col = next((c for c in cols if c not in fmr_cols and c not in fnmr_cols), None)
    rows = []
    for line, row in table.numbered():
        name = row[name_col].strip() if name_col else ""
        fm = _rates_of(path, line, row, "FMR.", fmr_cols)
        fn = _rates_of(path, line, row, "FNMR.", fnmr_cols)
        rows.append((name or f"row {line - 1}", fm, fn))
    return rows


def _rates_of(path: object, line: int, row: dict[str, str], prefix: str, columns: list[str]) -> dict:
    """``{group: rate}`` from one row's ``<prefix><group>`` cells (empty cells left out)."""
    out = {}
    for c in columns:
        cell = row[c].strip()
        if not cell:
            continue
        try:
            value = float(cell)
        except ValueError:
            raise InputError(path, f"line {line}: column {c!r}: {cell!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise InputError(path, f"line {line}: column {c!r}: {value} is not a rate in [0, 1]")
        out[c[len(prefix) :]] = value
    return out
