"""The pre-deployment baseline of the monitor: per-group rates out of a signed ``audit.json``, and the alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faceaudit.errors import InputError


def baseline_from_audit(
    doc: Mapping[str, Any], threshold: float | None, source: str = "audit.json"
) -> dict[str, Any]:
    """Per-group baseline rates from a 1:N audit: at the audit target whose threshold is nearest ``threshold``
    (the operational one), each group's FNIR at rank 1 (compared with misses) and its share of the false
    positive candidates (compared with the false-candidate share)."""
    ident = doc.get("identification")
    if not isinstance(ident, Mapping) or not ident.get("targets"):
        raise InputError(
            source, "the baseline needs a 1:N audit (audit-identification): no 'identification' block"
        )
    targets = [t for t in ident["targets"] if t.get("threshold") is not None]
    if not targets:
        raise InputError(source, "the baseline audit has no measurable threshold")
    target = min(
        targets, key=lambda t: abs(float(t["threshold"]) - (threshold if threshold is not None else 0.0))
    )
    fp: dict[str, float] = {}
    for gallery_counts in (target.get("false_positive_candidates") or {}).values():
        if isinstance(gallery_counts, Mapping):
            for g, n in gallery_counts.items():
                fp[g] = fp.get(g, 0.0) + float(n)
    total = sum(fp.values())
    composition = {g: float(n) for g, n in (ident.get("gallery_composition") or {}).items()}
    n_gallery = sum(composition.values())
    groups: dict[str, dict[str, Any]] = {}
    for g, rates in (target.get("by_group") or {}).items():
        fnir = (rates or {}).get("fnir_rank1") or {}
        share = fp.get(g, 0.0) / total if total else None
        gshare = composition.get(g, 0.0) / n_gallery if n_gallery else None
        groups[g] = {
            "fnir_rank1": fnir.get("value"),
            "false_candidate_share": share,
            "false_candidate_ratio": share / gshare if share is not None and gshare else None,
        }
    return {
        "source": source,
        "schema": doc.get("schema"),
        "model": (doc.get("config") or {}).get("model") if isinstance(doc.get("config"), Mapping) else None,
        "target_fpir": target.get("target_fpir"),
        "threshold": target.get("threshold"),
        "by_group": groups,
    }


def comparable(baseline: Mapping[str, Any], thresholds: Sequence[float]) -> dict[str, Any]:
    """Which measures can be held against the baseline, given the operational thresholds: misses when every
    operational threshold is at most the audit's (a lower threshold finds fewer misses, so a rise is still
    evidence); false candidates only at the audit's own threshold (the groups' shares move with it)."""
    base = baseline.get("threshold")
    if base is None or not thresholds:
        return {"misses": False, "false_candidates": False}
    return {
        "misses": max(thresholds) <= float(base) + 1e-9,
        "false_candidates": all(abs(t - float(base)) <= 1e-6 for t in thresholds),
    }


def alerts(windows: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One alert per (window, measure, group) whose operational interval lies wholly *above* the group's baseline
    (suppressed cells raise none; a measure that ``baseline["comparable"]`` rules out raises none):

    * misses: the interval of the reviewer-seen miss rate against the audit's FNIR at rank 1 (operational misses
      are a lower bound on FNIR, so only a rise is evidence);
    * false candidates: the interval of the group's share of false candidates divided by its share of the
      gallery, against the same ratio in the audit (shares alone depend on each gallery's composition; a group
      returned wrongly *less* often means another group more often, which alerts for that group).
    """
    out: list[dict[str, Any]] = []
    pairs = (
        ("misses", "fnir_rank1", "value", "ci_low", "ci_high"),
        (
            "false_candidates",
            "false_candidate_ratio",
            "ratio_to_gallery_share",
            "ratio_ci_low",
            "ratio_ci_high",
        ),
    )
    usable = baseline.get("comparable") or {}
    for w in windows:
        for measure, base_key, value, low, high in pairs:
            if not usable.get(measure, False):
                continue
            cells = (w.get(measure) or {}).get("by_group") or {}
            for g, cell in cells.items():
                base = ((baseline.get("by_group") or {}).get(g) or {}).get(base_key)
                if cell.get("suppressed") or base is None or cell.get(low) is None:
                    continue
                if cell[low] > base:
                    out.append(
                        {
                            "window_start": w["start"],
                            "measure": measure,
                            "group": g,
                            "operational": cell[value],
                            "ci_low": cell[low],
                            "ci_high": cell[high],
                            "baseline": base,
                            "direction": "higher",
                        }
                    )
    return out
