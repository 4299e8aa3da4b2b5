"""The monitor's measures (pure): false candidates and misses per declared group, small-cell suppression that no
output can bypass, subject-clustered intervals, and alerts against a baseline."""

from __future__ import annotations

import json

import pytest

from faceaudit.audit.monitor import UNDECLARED, measure, wilson
from faceaudit.audit.monitor_baseline import alerts, baseline_from_audit, comparable
from faceaudit.audit.monitor_outcomes import Outcome, OutcomeCandidate

T = 0.5


def _search(
    i: int, cands: list[tuple[str, float]], status: str, confirmed: str | None = None, day: int = 1
) -> Outcome:
    return Outcome(
        search_id=f"s{i}",
        created_at=f"2026-01-{day:02d}T10:00:{i % 60:02d}.000Z",
        threshold=T,
        model="m",
        status=status,
        candidates=tuple(OutcomeCandidate(r + 1, s, sc, sc >= T) for r, (s, sc) in enumerate(cands)),
        confirmed=confirmed,
        decided_at=f"2026-01-{day:02d}T11:00:00.000Z" if status in ("confirmed", "rejected") else None,
        n_reviews=2,
    )


def _population(n_f: int, n_m: int) -> dict[str, str]:
    return {**{f"f{i}": "F" for i in range(n_f)}, **{f"m{i}": "M" for i in range(n_m)}}


def test_a_lone_person_of_a_group_is_never_singled_out():
    """Twelve F subjects and one M subject; the M subject is the only false candidate of the window: no output
    may show a figure for M, and the total must not give M away by subtraction (F is hidden with it)."""
    declared = _population(12, 1)
    outcomes = [_search(i, [(f"f{i}", 0.9)], "confirmed", f"f{i}") for i in range(12)]
    outcomes += [_search(50 + i, [(f"f{i}", 0.6)], "rejected") for i in range(12)]  # 12 F false candidates
    outcomes.append(_search(99, [("m0", 0.7)], "rejected"))
    doc = measure(outcomes, declared, 13, attribute="sex", k=10)
    text = json.dumps(doc)
    assert "m0" not in text and "f3" not in text  # no subject ref, ever
    (w,) = doc["windows"]
    assert w["false_candidates"]["by_group"]["M"] == {
        "suppressed": True,
        "reason": "fewer than k=10 subjects",
    }
    assert w["false_candidates"]["by_group"]["F"]["suppressed"]  # secondary: else total - F = M's count
    assert w["false_candidates"]["total"] == 13
    assert w["misses"]["by_group"]["M"]["suppressed"]
    assert doc["gallery"]["by_group"]["M"]["suppressed"]
    # the same data with k=1 would have shown M: the guard is k itself
    with pytest.raises(ValueError):
        measure(outcomes, declared, 13, attribute="sex", k=1)


def test_figures_for_groups_of_k_or_more_with_clustered_intervals():
    declared = _population(20, 20)
    outcomes = []
    for i in range(20):  # every F subject confirmed at rank 1; every M subject confirmed at rank 2 (a miss)
        outcomes.append(_search(i, [(f"f{i}", 0.9), (f"m{i}", 0.6)], "confirmed", f"f{i}"))
        outcomes.append(_search(100 + i, [(f"f{i}", 0.8), (f"m{i}", 0.7)], "confirmed", f"m{i}"))
    doc = measure(outcomes, declared, 40, attribute="sex", k=10, n_boot=200)
    w = doc["windows"][0]
    f, m = w["misses"]["by_group"]["F"], w["misses"]["by_group"]["M"]
    assert (f["errors"], f["trials"], m["errors"], m["trials"]) == (0, 20, 20, 20)
    assert f["ci_low"] == 0.0 and 0.0 < f["ci_high"] < 0.25  # no error, still an honest upper bound
    assert m["value"] == 1.0 and m["ci_low"] > 0.75
    fc = w["false_candidates"]
    assert (
        fc["total"] == 40
    )  # each search's other above-threshold candidate was rejected by confirming another
    assert fc["by_group"]["F"]["value"] == pytest.approx(0.5) and fc["by_group"]["F"]["gallery_share"] == 0.5
    assert w["volume"]["searches"] == 40 and w["dispute_rate"]["value"] == 0.0


def test_undeclared_subjects_form_their_own_group_and_windows_split_the_period():
    declared = _population(10, 0)
    outcomes = [_search(i, [(f"f{i}", 0.9)], "confirmed", f"f{i}", day=1 + 10 * (i % 2)) for i in range(10)]
    doc = measure(outcomes, declared, 25, attribute="sex", k=2, window_days=10, n_boot=50)
    assert doc["gallery"]["by_group"][UNDECLARED] == {"subjects": 15}
    assert [w["volume"]["searches"] for w in doc["windows"]] == [5, 5]


def test_a_small_window_shows_its_volume_only():
    doc = measure([_search(1, [("f1", 0.9)], "confirmed", "f1")], _population(12, 0), 12, attribute="sex")
    (w,) = doc["windows"]
    assert w["suppressed"] and "top1_score" not in w and w["volume"]["searches"] == 1


def test_alerts_when_the_interval_lies_above_the_baseline_only():
    base = {
        "by_group": {"F": {"fnir_rank1": 0.05}, "M": {"fnir_rank1": 0.05}, "X": {"fnir_rank1": 0.5}},
        "comparable": {"misses": True, "false_candidates": False},
    }
    window = {
        "start": "2026-01-01T00:00:00Z",
        "misses": {
            "by_group": {
                "F": {"value": 0.06, "ci_low": 0.01, "ci_high": 0.15},
                "M": {"value": 0.4, "ci_low": 0.25, "ci_high": 0.55},
                "X": {
                    "value": 0.1,
                    "ci_low": 0.05,
                    "ci_high": 0.2,
                },  # below its baseline: a lower bound, no alert
            }
        },
    }
    (a,) = alerts([window], base)
    assert (a["group"], a["measure"], a["direction"]) == ("M", "misses", "higher")
    assert alerts([window], {**base, "comparable": {"misses": False}}) == []


def test_measures_are_held_against_a_baseline_only_where_the_thresholds_allow():
    assert comparable({"threshold": 0.4}, [0.36]) == {"misses": True, "false_candidates": False}
    assert comparable({"threshold": 0.4}, [0.4]) == {"misses": True, "false_candidates": True}
    assert comparable({"threshold": 0.3}, [0.36]) == {"misses": False, "false_candidates": False}


def test_the_baseline_comes_from_a_1n_audit_at_the_nearest_threshold():
    doc = {
        "schema": "faceaudit.audit/3",
        "identification": {
            "gallery_composition": {"F": 50, "M": 150},
            "targets": [
                {"target_fpir": 0.1, "threshold": 0.3, "by_group": {"F": {"fnir_rank1": {"value": 0.9}}}},
                {
                    "target_fpir": 0.01,
                    "threshold": 0.5,
                    "by_group": {"F": {"fnir_rank1": {"value": 0.02}}},
                    "false_positive_candidates": {"F": {"F": 3, "M": 1}},
                },
            ],
        },
    }
    b = baseline_from_audit(doc, 0.48)
    assert b["threshold"] == 0.5
    assert b["by_group"]["F"] == {
        "fnir_rank1": 0.02,
        "false_candidate_share": 0.75,
        "false_candidate_ratio": 3.0,
    }


def test_wilson_bounds():
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 30)
    assert lo == 0.0 and 0.09 < hi < 0.13
