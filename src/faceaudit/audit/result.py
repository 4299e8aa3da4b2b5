"""AuditResult: the per-group table, summary measures, thresholds and warnings, and their files."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.audit import report, signing
from faceaudit.audit.disaggregated import CLUSTERED, GroupRates, Interval, TargetResult, interval_kind
from faceaudit.audit.metrics import NOT_MEASURABLE_SHORT, Rate

SCHEMA = "faceaudit.audit/1"


def _plain(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, NaN/inf to None, DataFrames to nested dicts."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return {str(i): {str(c): _plain(v) for c, v in row.items()} for i, row in obj.iterrows()}
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _rate_columns(prefix: str, rate: Rate) -> dict:
    return {
        prefix: rate.value,
        f"{prefix}_errors": rate.errors,
        f"{prefix}_trials": rate.trials,
        f"{prefix}_ci_low": rate.ci_low,
        f"{prefix}_ci_high": rate.ci_high,
        f"{prefix}_ci_method": rate.ci_method,
        f"{prefix}_note": rate.note,
    }


def _boot_columns(prefix: str, interval: Interval) -> dict:
    return {
        f"{prefix}_boot_low": interval.low,
        f"{prefix}_boot_high": interval.high,
        f"{prefix}_boot_method": interval.method,
    }


@dataclass
class AuditResult:
    """The outcome of an audit.

    ``targets`` holds one typed :class:`~faceaudit.audit.disaggregated.TargetResult` per target FMR. The
    tables are views of them: ``by_group`` is a DataFrame indexed by (target_fmr, group), in the manner of
    fairlearn's ``MetricFrame``: FMR and FNMR at the global threshold with counts, 95 % intervals and their
    method, the per-group threshold ``tau_g``, EER, score statistics, FTE and multi-face counts.
    ``summary[target]`` holds the differentials (max/min ratios, FDR, GARBE, IR); ``cross_fmr[target]`` the
    group × group FMR matrix; ``thresholds[target]`` the global threshold.
    """

    config: dict
    targets: list[TargetResult]
    warnings: list[str]
    group_info: dict[str, dict] = field(default_factory=dict)
    distributions: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, dict] = field(default_factory=dict, repr=False)
    grid: dict = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    mated_scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    bin_centres: np.ndarray | None = field(default=None, repr=False)
    headline: str = ""
    policy_comparison: pd.DataFrame | None = None
    identification: Any = None
    model_comparison: pd.DataFrame | None = None
    model_verdicts: list[dict] | None = None
    identification_comparison: pd.DataFrame | None = None
    label_check: dict | None = None
    """Suspected label errors (:mod:`faceaudit.audit.label_errors`), when checked."""
    """The 1:N audit (an :class:`~faceaudit.audit.identification.IdentificationResult`), when one was run."""

    @property
    def groups(self) -> list[str]:
        return list(self.histograms)

    @property
    def measured(self) -> list[TargetResult]:
        """The targets at which a global threshold could be set."""
        return [t for t in self.targets if t.measured]

    @property
    def thresholds(self) -> dict[str, dict]:
        return {t.key: t.threshold.as_dict() for t in self.targets}

    @property
    def summary(self) -> dict[str, dict]:
        return {t.key: t.differentials for t in self.measured}

    @property
    def cross_fmr(self) -> dict[str, pd.DataFrame]:
        g = self.groups
        return {t.key: pd.DataFrame(t.cross_fmr, index=g, columns=g) for t in self.measured}

    @cached_property
    def by_group(self) -> pd.DataFrame:
        rows = [self._row(t, r) for t in self.measured for r in t.rates.values()]
        frame = pd.DataFrame(rows)
        return frame.set_index(["target_fmr", "group"]) if len(frame) else frame

    def _row(self, t: TargetResult, r: GroupRates) -> dict:
        row = {
            "target_fmr": t.target_fmr,
            "group": r.group,
            "threshold": t.threshold.threshold,
            **self.group_info.get(r.group, {}),
            "n_mated": r.n_mated,
            "n_non_mated": r.n_non_mated,
            **_rate_columns("fmr", r.fmr),
            **_rate_columns("fnmr", r.fnmr),
            "tau_g": r.tau_g,
            "tau_g_note": r.tau_g_note,
            "eer": r.eer,
        }
        if r.fnmr_boot is not None:
            row.update(_boot_columns("fnmr", r.fnmr_boot))
        if r.fmr_boot is not None:
            row.update(_boot_columns("fmr", r.fmr_boot))
        d = self.distributions.get(r.group, {})
        for side in ("mated", "non_mated"):
            for stat in ("mean", "q0.05", "q0.5", "q0.95"):
                row[f"{side}_{stat}"] = d.get(side, {}).get(stat)
        return row

    def to_dict(self) -> dict:
        """The ``audit.json`` content (schema ``faceaudit.audit/1``)."""
        table = self.by_group.reset_index().to_dict(orient="records") if len(self.by_group) else []
        out = {
            "schema": SCHEMA,
            "headline": self.headline,
            "config": self.config,
            "score_grid": self.grid,
            "thresholds": self.thresholds,
            "summary": self.summary,
            "by_group": table,
            "cross_group_fmr": {
                k: {"groups": list(v.index), "fmr": v.to_numpy()} for k, v in self.cross_fmr.items()
            },
            "score_distributions": self.distributions,
            "warnings": self.warnings,
        }
        if self.label_check is not None:
            out["label_check"] = self.label_check
        if self.identification is not None:
            out["identification"] = self.identification.to_dict()
        if self.model_comparison is not None:
            out["model_comparison"] = {
                "by_model": self.model_comparison.reset_index().to_dict(orient="records"),
                "verdicts": self.model_verdicts or [],
            }
            if self.identification_comparison is not None:
                out["model_comparison"]["identification_by_model"] = (
                    self.identification_comparison.reset_index().to_dict(orient="records")
                )
        if self.policy_comparison is not None:
            out["policy_comparison"] = self.policy_comparison.reset_index().to_dict(orient="records")
        return _plain(out)

    def to_json(self, indent: int | None = 2) -> str:
        """``audit.json`` as text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    def to_html(self) -> str:
        """``report.html``: one self-contained page that opens offline."""
        return report.render_html(self)

    def save(
        self, out_dir: str | os.PathLike, *, sign_key: str | os.PathLike | None = None
    ) -> dict[str, Path]:
        """Write ``audit.json``, ``by_group.csv`` and ``report.html`` into ``out_dir``; return their paths.

        With ``sign_key`` (an Ed25519 private key, PEM) ``audit.json`` carries a signature
        (:mod:`faceaudit.audit.signing`); ``faceaudit verify-report`` checks it.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "audit.json", "csv": out / "by_group.csv", "html": out / "report.html"}
        doc = self.to_dict()
        if sign_key is not None:
            doc = signing.sign(doc, sign_key)
        text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
        paths["json"].write_text(text + "\n", encoding="utf-8")
        self.by_group.reset_index().to_csv(paths["csv"], index=False)
        paths["html"].write_text(self.to_html(), encoding="utf-8")
        return paths

    def difference(self) -> pd.DataFrame:
        """Largest gap between groups, per target: ``fmr`` and ``fnmr`` (as fairlearn's ``difference()``)."""
        return pd.DataFrame(
            {
                k: {"fmr": s["fmr_max_abs_diff"], "fnmr": s["fnmr_max_abs_diff"]}
                for k, s in self.summary.items()
            }
        ).T

    def ratio(self) -> pd.DataFrame:
        """max/min across groups, per target (larger in the numerator, as NIST reports it; fairlearn's
        ``ratio()`` is the reciprocal). NaN where a group has no errors."""
        return pd.DataFrame(
            {
                k: {"fmr": s["fmr_max_min_ratio"], "fnmr": s["fnmr_max_min_ratio"]}
                for k, s in self.summary.items()
            }
        ).T.astype(float)

    def table(self, target_fmr: float | None = None) -> pd.DataFrame:
        """A short per-group table for the terminal: FMR (scientific notation) and FNMR (%) with their 95 %
        intervals (subject-clustered when the audit has them) at one target."""
        if not len(self.by_group):
            return pd.DataFrame()
        if target_fmr is None:
            target_fmr = self.by_group.index.get_level_values(0)[0]
        t = self.by_group.xs(target_fmr, level="target_fmr")

        def missing(v) -> bool:
            return v is None or (isinstance(v, float) and math.isnan(v))

        def fmt(v, lo, hi, pct: bool) -> str:
            if missing(v):
                return NOT_MEASURABLE_SHORT
            one = (lambda x: f"{100 * x:.2f} %") if pct else (lambda x: f"{x:.2e}")
            return one(v) if missing(lo) or missing(hi) else f"{one(v)} [{one(lo)}, {one(hi)}]"

        measured = next(m for m in self.measured if m.target_fmr == target_fmr)
        kinds = {rate: interval_kind(measured.rates.values(), rate) for rate in ("fmr", "fnmr")}

        def column(rate: str) -> list[str]:
            src = "boot" if kinds[rate] == CLUSTERED else "ci"
            values = zip(t[rate], t[f"{rate}_{src}_low"], t[f"{rate}_{src}_high"], strict=True)
            return [fmt(v, lo, hi, rate == "fnmr") for v, lo, hi in values]

        def label(rate: str) -> str:
            return f"{rate.upper()} [95% {kinds[rate]}]"

        return pd.DataFrame(
            {
                "non-mated": t["n_non_mated"],
                label("fmr"): column("fmr"),
                "mated": t["n_mated"],
                label("fnmr"): column("fnmr"),
            },
            index=t.index,
        )
