"""AuditResult: the per-group table, summary measures, thresholds and warnings, and their files."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


@dataclass
class AuditResult:
    """The outcome of an audit.

    ``by_group`` is a DataFrame indexed by (target_fmr, group), in the manner of fairlearn's ``MetricFrame``:
    FMR and FNMR at the global threshold with counts, 95 % intervals and their method, the per-group
    threshold ``tau_g``, EER, score statistics, FTE and multi-face counts. ``summary[target]`` holds the
    differentials (max/min ratios, FDR, GARBE, IR); ``cross_fmr[target]`` the group × group FMR matrix.
    """

    config: dict
    by_group: pd.DataFrame
    summary: dict[str, dict]
    thresholds: dict[str, dict]
    cross_fmr: dict[str, pd.DataFrame]
    warnings: list[str]
    distributions: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, dict] = field(default_factory=dict, repr=False)
    grid: dict = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    mated_scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    bin_centres: np.ndarray | None = field(default=None, repr=False)
    headline: str = ""
    policy_comparison: pd.DataFrame | None = None

    @property
    def groups(self) -> list[str]:
        return list(self.histograms)

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
        if self.policy_comparison is not None:
            out["policy_comparison"] = self.policy_comparison.reset_index().to_dict(orient="records")
        return _plain(out)

    def to_json(self, indent: int | None = 2) -> str:
        """``audit.json`` as text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    def to_html(self) -> str:
        """``report.html``: one self-contained page that opens offline."""
        from faceaudit.audit.report import render_html

        return render_html(self)

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``audit.json``, ``by_group.csv`` and ``report.html`` into ``out_dir``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "audit.json", "csv": out / "by_group.csv", "html": out / "report.html"}
        paths["json"].write_text(self.to_json() + "\n", encoding="utf-8")
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
        """A short per-group table for the terminal: FMR and FNMR (with intervals) at one target."""
        if not len(self.by_group):
            return pd.DataFrame()
        if target_fmr is None:
            target_fmr = self.by_group.index.get_level_values(0)[0]
        t = self.by_group.xs(target_fmr, level="target_fmr")

        def fmt(v, lo, hi):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return "not measurable"
            return f"{v:.2e} [{lo:.1e}, {hi:.1e}]"

        return pd.DataFrame(
            {
                "non-mated": t["n_non_mated"],
                "FMR [95% CI]": [
                    fmt(v, lo, hi) for v, lo, hi in zip(t.fmr, t.fmr_ci_low, t.fmr_ci_high, strict=True)
                ],
                "mated": t["n_mated"],
                "FNMR [95% CI]": [
                    fmt(v, lo, hi) for v, lo, hi in zip(t.fnmr, t.fnmr_ci_low, t.fnmr_ci_high, strict=True)
                ],
            },
            index=t.index,
        )
