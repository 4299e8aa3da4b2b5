"""Subject-clustered bootstrap of the 1:N rates: probe subjects resampled within each probe group.

A search's errors are not independent of its subject's other searches, so the unit resampled is the probe
subject (within its group; unlabelled probes form a group of their own for the threshold). Each resample b
draws every group's subjects with replacement (weights w_s) and gives, per group,

    FNIR*(τ) = Σ w_s·misses_s(τ) / Σ w_s·mated_s,   FPIR*(τ) = Σ w_s·false_positives_s(τ) / Σ w_s·non_mated_s

twice: with τ held at the audit's threshold, and with τ re-set on the resample's own non-mated searches
(weighted, the rule of :func:`~faceaudit.audit.identification.fpir_threshold`), which adds the threshold's own
uncertainty. The extreme groups' ratio gets an interval from the same draws. Percentile intervals; a rate with
no error gets the exact (Clopper–Pearson) upper bound as its upper end, never a zero-width interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from faceaudit.audit.identification import IdentificationTarget, Searches

CONFIDENCE = 0.95
KEYS = ("fnir_rank1", "fnir_rank_r", "fpir")
METHOD = "subject-clustered bootstrap (percentile; probe subjects resampled within each probe group)"


def _weighted_threshold(top: np.ndarray, w: np.ndarray, target: float) -> float:
    """The lowest τ at which the weighted share of searches with top score ≥ τ is at most ``target``."""
    order = np.argsort(-top, kind="stable")
    t, cw = top[order], np.cumsum(w[order])
    allowed = math.floor(target * cw[-1] + 1e-9)
    k = int(np.searchsorted(cw, allowed, side="right"))  # first index whose cumulative weight > allowed
    return float(t[-1]) if k >= len(t) else float(np.nextafter(t[k], np.inf))


def _interval(v: np.ndarray) -> dict:
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"low": None, "high": None}
    p = [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2]
    if np.isinf(v).any():
        return {
            "low": float(np.quantile(v, p[0], method="lower")),
            "high": float(np.quantile(v, p[1], method="higher")),
        }
    lo, hi = np.quantile(v, p)
    return {"low": float(lo), "high": float(hi)}


def _draw(rng: np.random.Generator, cluster: np.ndarray, cluster_group: np.ndarray) -> np.ndarray:
    """Weights per cluster: each group's clusters drawn with replacement, as many as the group has."""
    w = np.zeros(len(cluster_group))
    for g in np.unique(cluster_group):
        members = np.flatnonzero(cluster_group == g)
        w[members] = np.bincount(rng.integers(0, len(members), len(members)), minlength=len(members))
    return w


def bootstrap_identification(
    searches: Searches,
    probe_subject: np.ndarray,
    probe_group: np.ndarray,
    mated: np.ndarray,
    groups: Sequence[str],
    targets: Sequence[IdentificationTarget],
    *,
    rank: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Intervals (τ held and τ re-set) per target, group and rate, and of the extreme groups' ratios."""
    top = searches.scores[:, 0] if searches.scores.shape[1] else np.full(len(mated), -np.inf)
    _, cluster = np.unique(probe_subject, return_inverse=True)
    n_clusters = cluster.max() + 1 if len(cluster) else 0
    cluster_group = np.zeros(n_clusters, np.intp)
    cluster_group[cluster] = probe_group
    rng = np.random.default_rng(seed)
    weights = np.stack([_draw(rng, cluster, cluster_group) for _ in range(n_boot)]) if n_boot else None
    ms = np.where(mated, searches.mate_score, -np.inf)
    out: dict = {"method": METHOD, "resamples": n_boot}
    if weights is None or not len(mated):
        return out
    w_search = weights[:, cluster].astype(np.float32)  # (n_boot, searches); counts, exact in float32
    for t in targets:
        if t.threshold is None:
            continue
        taus = {
            "held": np.full(n_boot, t.threshold),
            "reset": np.array([_weighted_threshold(top[~mated], w_search[b, ~mated], t.target_fpir) for b in range(n_boot)]),
        }  # fmt: skip
        block: dict = {}
        for mode, tau in taus.items():
            rates = {}
            for g_i, g in enumerate(groups):
                sel = probe_group == g_i
                m, nm = sel & mated, sel & ~mated
                err = {
                    "fnir_rank1": ~((searches.mate_rank[m] == 1)[None] & (ms[m][None] >= tau[:, None])),
                    "fnir_rank_r": ~((searches.mate_rank[m] <= rank)[None] & (ms[m][None] >= tau[:, None])),
                    "fpir": top[nm][None] >= tau[:, None],
                }
                den_m, den_nm = w_search[:, m].sum(axis=1), w_search[:, nm].sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    rates[g] = {
                        k: (w_search[:, m if k != "fpir" else nm] * e).sum(axis=1) / (den_m if k != "fpir" else den_nm)
                        for k, e in err.items()
                    }  # fmt: skip
            block[mode] = {g: {k: _floor(_interval(v), getattr(t.rates[g], k)) for k, v in r.items()}
                           for g, r in rates.items()}  # fmt: skip
            block[mode]["ratios"] = _ratios(t, rates)
        out[str(t.target_fpir)] = {**block["held"], "reset": block["reset"]}
    return out


def _floor(iv: dict, rate) -> dict:
    """No zero-width interval for a rate with no error: its upper end is at least the exact upper bound."""
    if rate.errors == 0 and rate.ci_high is not None and iv["low"] is not None and iv["high"] < rate.ci_high:
        return {**iv, "high": rate.ci_high, "note": "0 errors: upper end the exact one-sided bound"}
    return iv


def _ratios(t: IdentificationTarget, rates: dict) -> dict:
    """The ratio of the extreme measurable groups (higher / lower) in each resample: its interval."""
    out = {}
    for key in ("fpir", "fnir_rank1"):
        vals = {g: getattr(r, key).value for g, r in t.rates.items() if getattr(r, key).value is not None}
        if len(vals) < 2:
            continue
        hi, lo = max(vals, key=vals.get), min(vals, key=vals.get)
        num, den = rates[hi][key], rates[lo][key]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / den, np.where(num > 0, np.inf, np.nan))
        out[key] = {"pair": [hi, lo], **_interval(r)}
    return out
