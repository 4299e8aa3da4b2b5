"""Typed results of an audit at one target FMR: the global threshold, each group's rates, the differentials.

These are values computed from comparison counts, apart from any presentation (in the manner of fairlearn's
``DisaggregatedResult``); :class:`~faceaudit.audit.result.AuditResult` lays them out as tables and files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from faceaudit.audit.metrics import Rate


def target_key(target_fmr: float) -> str:
    """The key of a target FMR in ``audit.json`` (``1e-3`` → ``"0.001"``)."""
    return f"{target_fmr:g}"


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval and how it was computed; ``low``/``high`` None when it could not be."""

    low: float | None
    high: float | None
    method: str


@dataclass(frozen=True, slots=True)
class Threshold:
    """The global threshold τ set for ``target_fmr`` on the overall non-mated scores.

    ``threshold`` is None when it could not be set (``note`` says why); the other counts are then None too.
    """

    target_fmr: float
    threshold: float | None
    bin_index: int | None = None
    achieved_fmr: float | None = None
    false_matches: int | None = None
    non_mated_comparisons: int | None = None
    overall_fnmr: float | None = None
    exact_to: float | None = None
    measurable: bool = False
    note: str = ""

    def as_dict(self) -> dict:
        """The ``thresholds`` entry of ``audit.json``."""
        if self.threshold is None:
            return {"target_fmr": self.target_fmr, "threshold": None, "note": self.note}
        return {
            "target_fmr": self.target_fmr,
            "threshold": self.threshold,
            "bin_index": self.bin_index,
            "achieved_fmr": self.achieved_fmr,
            "false_matches": self.false_matches,
            "non_mated_comparisons": self.non_mated_comparisons,
            "overall_fnmr": self.overall_fnmr,
            "exact_to": self.exact_to,
            "measurable": self.measurable,
        }


@dataclass(frozen=True, slots=True)
class GroupRates:
    """One group's error rates at the global threshold (same-group comparisons).

    ``fmr_boot``/``fnmr_boot`` are the subject-clustered bootstrap intervals, None when none was asked for.
    ``tau_g`` is the group's own threshold for the same target (None when its data cannot set one).
    """

    group: str
    fmr: Rate
    fnmr: Rate
    n_non_mated: int
    n_mated: int
    tau_g: float | None
    tau_g_note: str
    eer: float | None
    fmr_boot: Interval | None = None
    fnmr_boot: Interval | None = None


@dataclass(frozen=True, slots=True)
class TargetResult:
    """Everything measured at one target FMR.

    ``rates`` maps each group to its :class:`GroupRates` (empty when no threshold could be set);
    ``differentials`` holds the summary measures (max/min ratios, FDR, GARBE, IR, extreme groups);
    ``cross_fmr[a, b]`` is the FMR of non-mated comparisons between groups a and b (NaN: none).
    """

    threshold: Threshold
    rates: dict[str, GroupRates] = field(default_factory=dict)
    differentials: dict = field(default_factory=dict)
    cross_fmr: np.ndarray | None = None

    @property
    def target_fmr(self) -> float:
        return self.threshold.target_fmr

    @property
    def key(self) -> str:
        return target_key(self.target_fmr)

    @property
    def measured(self) -> bool:
        """True when the global threshold could be set (so the rates exist)."""
        return self.threshold.threshold is not None


CLUSTERED = "clustered"
CLOPPER_PEARSON = "Clopper–Pearson"


def interval_kind(rates: Iterable[GroupRates], rate: str) -> str:
    """Which 95 % interval the table and the headline show for ``rate`` ("fmr"/"fnmr") at one target: the
    subject-clustered bootstrap when every group with a measured rate has one, else Clopper–Pearson for all."""
    measured = [r for r in rates if getattr(r, rate).value is not None]
    boots = [getattr(r, f"{rate}_boot") for r in measured]
    if measured and all(b is not None and b.low is not None for b in boots):
        return CLUSTERED
    return CLOPPER_PEARSON


def group_interval(r: GroupRates, rate: str, kind: str) -> Interval:
    """Group ``r``'s 95 % interval of ``rate`` of the given kind (see :func:`interval_kind`)."""
    boot = getattr(r, f"{rate}_boot")
    if kind == CLUSTERED and boot is not None:
        return boot
    rr = getattr(r, rate)
    return Interval(rr.ci_low, rr.ci_high, rr.ci_method)
