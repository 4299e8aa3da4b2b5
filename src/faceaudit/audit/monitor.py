"""Post-market monitoring: demographic differentials measured in operation (pure functions over outcomes).

:func:`measure` is the **one** function that turns operational outcomes
(:mod:`faceaudit.audit.monitor_outcomes`) and the gallery's declared groups into figures; ``faceaudit monitor``,
``GET /v1/monitor`` and the console page all call it, so none can bypass its small-cell suppression:

* a group gets no figure in a window unless at least ``k`` distinct subjects (default 10) of it contribute to
  that measure there, and unless the gallery holds at least ``k`` subjects of it; while the suppressed groups
  of a measure hold fewer than ``k`` subjects together, the smallest shown group is suppressed too (so the total
  minus the shown groups cannot give a small cell away);
* a window with fewer than ``k`` searches shows its volume only.

Measures per window (NIST FRVT Part 3's "who is wrongly returned", seen through two-person review):

* **false candidates**: above-threshold candidates that the reviewers rejected, per declared group of the
  candidate, as a share of all false candidates, against the group's share of the gallery;
* **misses seen by reviewers**: confirmed searches whose confirmed subject scored below the threshold or was not
  at rank 1, per declared group of the subject;
* volume, review delay, dispute rate, and the top-1 score distribution with its drift (Kolmogorov–Smirnov
  distance) from the first window.

Intervals are 95 %, clustered by subject (a bootstrap over subjects), widened to the Wilson interval with one
observation per subject so that a cell with no error still has an honest upper bound. A miss the system made and
no reviewer found (the mate was not among the candidates and the search was rejected) is invisible here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from faceaudit.audit.monitor_outcomes import Outcome, parse_time

SCHEMA = "faceaudit.monitor/1"
DEFAULT_K = 10
DEFAULT_WINDOW_DAYS = 30
UNDECLARED = "(undeclared)"
"""The group of subjects who declared nothing for the attribute (and of erased subjects)."""
Z95 = 1.959963984540054
CANNOT_SEE = (
    "Operational figures see only what reviewers saw: a mate that the system missed (not among the candidates) "
    "and no reviewer found is invisible, so misses here are a lower bound on FNIR; false candidates are counted "
    "only in decided searches; groups are what people declared, never inferred."
)


def wilson(errors: float, n: float) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``errors / n`` (``(0, 1)`` when ``n`` is 0; ``n`` may be an effective
    sample size, ``errors`` then ``p * n``)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(errors / n, 0.0), 1.0)
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def clustered_interval(
    num: np.ndarray, den: np.ndarray, mask: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[float, float]:
    """95 % percentile interval of ``sum(num[mask]) / sum(den)`` over bootstrap resamples of the clusters
    (subjects): ``num``/``den`` per cluster; ``mask``: the clusters that count in the numerator."""
    n = len(den)
    if n == 0:
        return 0.0, 1.0
    draws = rng.integers(0, n, size=(n_boot, n))
    top = (num * mask)[draws].sum(axis=1)
    bottom = den[draws].sum(axis=1)
    ratio = np.divide(top, bottom, out=np.zeros(n_boot), where=bottom > 0)
    lo, hi = np.percentile(ratio, [2.5, 97.5])
    return float(lo), float(hi)


def _rate(errors: int, trials: int, lo: float, hi: float, n_subjects: int, n_eff: int) -> dict[str, Any]:
    """A rate with its clustered interval, widened to Wilson with ``n_eff`` (one observation per subject)."""
    p = errors / trials if trials else 0.0
    w_lo, w_hi = wilson(p * n_eff, n_eff)
    return {
        "value": errors / trials if trials else None,
        "errors": errors,
        "trials": trials,
        "subjects": n_subjects,
        "ci_low": min(lo, w_lo),
        "ci_high": max(hi, w_hi),
        "ci_method": "subject-clustered bootstrap (95%), widened to Wilson with one observation per subject",
    }


def _suppress(
    cells: dict[str, dict[str, Any]], sizes: Mapping[str, int], gallery: Mapping[str, int], k: int
) -> None:
    """In place: primary suppression (fewer than ``k`` contributing subjects, or fewer than ``k`` in the gallery),
    then secondary suppression: while the hidden groups together hold fewer than ``k`` contributing subjects, the
    smallest shown group is hidden too, so that the total minus the shown groups never gives a small cell away."""
    hidden = [g for g in cells if sizes.get(g, 0) < k or gallery.get(g, 0) < k]
    shown = sorted((g for g in cells if g not in hidden), key=lambda g: (sizes.get(g, 0), g))
    while hidden and shown and sum(sizes.get(g, 0) for g in hidden) < k:
        hidden.append(shown.pop(0))
    for g in hidden:
        cells[g] = {"suppressed": True, "reason": f"fewer than k={k} subjects"}


def _false_candidates(
    window: Sequence[Outcome],
    group_of: Mapping[str, str],
    gallery: Mapping[str, int],
    k: int,
    rng: np.random.Generator,
    n_boot: int,
) -> dict[str, Any]:
    per_subject: Counter[str] = Counter()
    for o in window:
        for c in o.false_candidates():
            per_subject[c.subject] += 1
    total = sum(per_subject.values())
    subjects = list(per_subject)
    counts = np.array([per_subject[s] for s in subjects], float)
    groups = np.array([group_of.get(s, UNDECLARED) for s in subjects])
    n_gallery = sum(gallery.values())
    cells: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for g in gallery:
        mask = groups == g
        sizes[g] = int(mask.sum())
        errors = int(counts[mask].sum())
        lo, hi = clustered_interval(counts, counts, mask, rng, n_boot)
        share = _rate(errors, total, lo, hi, sizes[g], len(subjects))
        gshare = gallery[g] / n_gallery if n_gallery else None
        share["gallery_share"] = gshare
        share["ratio_to_gallery_share"] = (
            (share["value"] / gshare) if share["value"] is not None and gshare else None
        )
        share["ratio_ci_low"] = share["ci_low"] / gshare if gshare else None
        share["ratio_ci_high"] = share["ci_high"] / gshare if gshare else None
        cells[g] = share
    _suppress(cells, sizes, gallery, k)
    return {"total": total, "by_group": cells}


def _misses(
    window: Sequence[Outcome],
    group_of: Mapping[str, str],
    gallery: Mapping[str, int],
    k: int,
    rng: np.random.Generator,
    n_boot: int,
) -> dict[str, Any]:
    trials: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for o in window:
        if o.confirmed is not None:
            trials[o.confirmed] += 1
            errors[o.confirmed] += int(o.is_miss())
    subjects = list(trials)
    groups = np.array([group_of.get(s, UNDECLARED) for s in subjects])
    cells: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for g in gallery:
        mask = groups == g
        sizes[g] = int(mask.sum())
        num = np.array([errors[s] for s, m in zip(subjects, mask, strict=True) if m], float)
        den = np.array([trials[s] for s, m in zip(subjects, mask, strict=True) if m], float)
        lo, hi = clustered_interval(num, den, np.ones(len(den), bool), rng, n_boot)
        cells[g] = _rate(int(num.sum()), int(den.sum()), lo, hi, sizes[g], sizes[g])
    _suppress(cells, sizes, gallery, k)
    return {"confirmed": sum(trials.values()), "misses": sum(errors.values()), "by_group": cells}


def _ks(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) == 0 or len(b) == 0:
        return None
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def _scores(window: Sequence[Outcome], first: np.ndarray | None) -> dict[str, Any]:
    top = np.array([o.top_score for o in window if o.top_score is not None], float)
    if len(top) == 0:
        return {"n": 0}
    q = np.quantile(top, [0.1, 0.5, 0.9])
    return {
        "n": int(len(top)),
        "mean": float(top.mean()),
        "p10": float(q[0]),
        "median": float(q[1]),
        "p90": float(q[2]),
        "ks_vs_first_window": _ks(top, first) if first is not None else None,
    }


def _window(
    window: Sequence[Outcome],
    group_of: Mapping[str, str],
    gallery: Mapping[str, int],
    k: int,
    rng: np.random.Generator,
    n_boot: int,
    first: np.ndarray | None,
) -> dict[str, Any]:
    status = Counter(o.status for o in window)
    volume = {
        "searches": len(window),
        "confirmed": status["confirmed"],
        "rejected": status["rejected"],
        "disputed": status["disputed"],
        "pending_review": status["pending_review"],
    }
    if len(window) < k:
        return {"volume": volume, "suppressed": True, "reason": f"fewer than k={k} searches in the window"}
    delays = np.array([d for o in window if (d := o.delay_s()) is not None], float)
    reviewed = [o for o in window if o.n_reviews >= 2]
    disputed = sum(o.was_disputed for o in reviewed)
    lo, hi = wilson(disputed, len(reviewed))
    return {
        "volume": volume,
        "review_delay_s": {
            "n": int(len(delays)),
            "median": float(np.median(delays)) if len(delays) else None,
            "p90": float(np.quantile(delays, 0.9)) if len(delays) else None,
        },
        "dispute_rate": {
            "value": disputed / len(reviewed) if reviewed else None,
            "errors": disputed,
            "trials": len(reviewed),
            "ci_low": lo,
            "ci_high": hi,
            "ci_method": "Wilson (95%)",
        },
        "top1_score": _scores(window, first),
        "false_candidates": _false_candidates(window, group_of, gallery, k, rng, n_boot),
        "misses": _misses(window, group_of, gallery, k, rng, n_boot),
    }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def measure(
    outcomes: Sequence[Outcome],
    declared: Mapping[str, str],
    n_enrolled: int,
    *,
    attribute: str,
    k: int = DEFAULT_K,
    window_days: int = DEFAULT_WINDOW_DAYS,
    start: datetime | None = None,
    end: datetime | None = None,
    baseline: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The monitor's figures (the ``monitor.json`` document, unsigned) over ``[start, end)`` in windows of
    ``window_days``, with small cells (fewer than ``k`` subjects) suppressed and, given a ``baseline``
    (:func:`faceaudit.audit.monitor_baseline.baseline_from_audit`), an alert for each group whose operational
    interval excludes its baseline.

    ``declared``: subject ref → declared value of ``attribute`` (enrolled subjects only); ``n_enrolled``: how
    many subjects the gallery holds. Never returns a subject ref, a name or a per-person value.
    """
    from faceaudit.audit.monitor_baseline import alerts, comparable

    if k < 2:
        raise ValueError("k (the smallest group shown) must be at least 2")
    if window_days < 1:
        raise ValueError("the window must be at least one day")
    times = [parse_time(o.created_at) for o in outcomes]
    start = start or (min(times) if times else datetime.now(UTC))
    end = end or ((max(times) + timedelta(seconds=1)) if times else start + timedelta(days=window_days))
    gallery: dict[str, int] = Counter(declared.values())
    undeclared = n_enrolled - sum(gallery.values())
    if undeclared > 0:
        gallery[UNDECLARED] = undeclared
    gallery = dict(sorted(gallery.items()))
    rng = np.random.default_rng(seed)
    windows: list[dict[str, Any]] = []
    first: np.ndarray | None = None
    step = timedelta(days=window_days)
    w_start = start
    while w_start < end:
        w_end = min(w_start + step, end)
        inside = [o for o, t in zip(outcomes, times, strict=True) if w_start <= t < w_end]
        body = _window(inside, declared, gallery, k, rng, n_boot, first)
        if first is None and not body.get("suppressed"):
            first = np.array([o.top_score for o in inside if o.top_score is not None], float)
        windows.append({"start": _iso(w_start), "end": _iso(w_end), **body})
        w_start = w_end
    gallery_cells: dict[str, dict[str, Any]] = {g: {"subjects": n} for g, n in gallery.items()}
    _suppress(gallery_cells, gallery, gallery, k)
    thresholds = sorted({o.threshold for o in outcomes})
    models = sorted({o.model for o in outcomes if o.model})
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "attribute": attribute,
        "groups_source": "declared by the people enrolled, with their consent; never inferred",
        "period": {"start": _iso(start), "end": _iso(end), "window_days": window_days},
        "k": k,
        "models": models,
        "thresholds": thresholds,
        "gallery": {"subjects": n_enrolled if n_enrolled >= k else None, "by_group": gallery_cells},
        "windows": windows,
        "cannot_see": CANNOT_SEE,
        "alerts": [],
    }
    if baseline is not None:
        doc["baseline"] = {**baseline, "comparable": comparable(baseline, thresholds)}
        doc["alerts"] = alerts(windows, doc["baseline"])
    return doc
