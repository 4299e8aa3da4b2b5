"""report.html: one self-contained page (inline SVG figures, no external files) rendered with Jinja2."""

from __future__ import annotations

import io
import math
from typing import Any, Protocol

import numpy as np
import pandas as pd

from faceaudit.audit.metrics import NOT_MEASURABLE, NOT_MEASURABLE_SHORT

_CURVE_POINTS = 600


class AuditResult(Protocol):
    """What the report reads of an :class:`faceaudit.audit.result.AuditResult` (which renders itself with
    :func:`render_html`; this module depends on nothing above it)."""

    config: dict
    headline: str
    warnings: list[str]
    grid: dict
    curves: dict[str, dict]
    histograms: dict[str, np.ndarray]
    mated_scores: dict[str, np.ndarray]
    bin_centres: Any
    distributions: dict[str, dict]
    policy_comparison: pd.DataFrame | None

    @property
    def groups(self) -> list[str]: ...
    @property
    def thresholds(self) -> dict[str, dict]: ...
    @property
    def summary(self) -> dict[str, dict]: ...
    @property
    def cross_fmr(self) -> dict[str, pd.DataFrame]: ...
    @property
    def by_group(self) -> pd.DataFrame: ...


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "faceaudit"})
    return plt


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, _CURVE_POINTS)).astype(int))


def det_figure(result: AuditResult) -> str | None:
    """DET curves (FNMR against FMR) per group with same-group mated comparisons, and overall; None only
    without any mated comparison. Log-log, or linear axes when no point is above zero on both."""
    curves = [
        g
        for g in [*result.groups, "overall"]
        if g in result.curves and not np.isnan(result.curves[g]["fnmr"][0])
    ]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    log = any(((result.curves[g]["fmr"] > 0) & (result.curves[g]["fnmr"] > 0)).any() for g in curves)
    for g in curves:
        fmr, fnmr = result.curves[g]["fmr"], result.curves[g]["fnmr"]
        idx = np.flatnonzero((fmr > 0) & (fnmr > 0)) if log else np.arange(len(fmr))
        if len(idx):
            idx = idx[_thin(len(idx))]
            style = (
                {"color": "black", "ls": "--"} if g == "overall" else {"color": f"C{result.groups.index(g)}"}
            )
            ax.plot(fmr[idx], fnmr[idx], label=g, **style)
    _mark_operating_points(ax, result, curves)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("FMR (same-group non-mated; overall: all)")
    ax.set_ylabel("FNMR")
    scale = "" if log else " (linear axes: no point has FMR and FNMR both above 0)"
    ax.set_title(f"DET curves; markers: operating points at the global thresholds{scale}", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _svg(fig)


def _mark_operating_points(ax, result: AuditResult, groups: list[str]) -> None:
    """Each group's (FMR, FNMR) at the global threshold of each target: the operating points in use."""
    bg = result.by_group
    if not len(bg):
        return
    markers = "osD^v"
    for t_i, target in enumerate(dict.fromkeys(bg.index.get_level_values(0))):
        tab = bg.xs(target, level="target_fmr")
        for g_i, g in enumerate(result.groups):
            if g not in groups:
                continue
            fmr, fnmr = tab.loc[g, "fmr"], tab.loc[g, "fnmr"]
            if fmr is None or fnmr is None or not (fmr > 0 and fnmr > 0):
                continue
            ax.plot([fmr], [fnmr], markers[t_i % len(markers)], color=f"C{g_i}", mec="black", ms=6)
        ax.plot(
            [],
            [],
            markers[t_i % len(markers)],
            color="white",
            mec="black",
            label=f"at τ for FMR {target:.0e}",
        )


def fmr_threshold_figure(result: AuditResult) -> str:
    """FMR against threshold per group (log y), with the global thresholds marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    edges = np.asarray(result.bin_centres) - result.grid["bin_width"] / 2
    for g in [*result.groups, "overall"]:
        fmr = result.curves[g]["fmr"][:-1]
        idx = np.flatnonzero(fmr > 0)
        if len(idx):
            idx = idx[_thin(len(idx))]
            ax.plot(
                edges[idx],
                fmr[idx],
                label=g,
                lw=2 if g == "overall" else 1.2,
                ls="--" if g == "overall" else "-",
            )
    for t in result.thresholds.values():
        if t.get("threshold") is not None:
            ax.axvline(t["threshold"], color="grey", ls=":", lw=0.8)
            ax.axhline(t["target_fmr"], color="grey", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("threshold (score)")
    ax.set_ylabel("FMR")
    ax.set_title("FMR by threshold (dotted: global thresholds)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _svg(fig)


def rates_figure(result: AuditResult) -> str | None:
    """FMR and FNMR per group at each target, log scale, with 95 % intervals."""
    bg = result.by_group
    if not len(bg):
        return None
    plt = _pyplot()
    targets = list(dict.fromkeys(bg.index.get_level_values(0)))
    # a panel only for a side that has comparisons (FairFace-like data has no mated pairs)
    sides = [w for w in ("fmr", "fnmr") if (bg[f"{w}_trials"] > 0).any()]
    if not sides:
        return None
    fig, axes = plt.subplots(
        1,
        len(sides),
        figsize=(4.5 * len(sides) + 1, 0.5 + 0.45 * len(result.groups) * len(targets) + 1),
        squeeze=False,
    )
    groups = result.groups
    for ax, which in zip(axes[0], sides, strict=True):
        ylabels, y = [], 0
        for t in targets:
            tab = bg.xs(t, level="target_fmr")
            for g in groups:
                r = tab.loc[g]
                v, lo, hi = r[which], r[f"{which}_ci_low"], r[f"{which}_ci_high"]
                label = f"{g} @ {t:.0e}"
                ylabels.append(label)
                if v is not None and not (isinstance(v, float) and math.isnan(v)) and v > 0:
                    ax.errorbar(
                        [v], [y], xerr=[[v - lo], [hi - v]], fmt="o", capsize=3, color=f"C{targets.index(t)}"
                    )
                elif hi is not None and not (isinstance(hi, float) and math.isnan(hi)) and hi > 0:
                    ax.plot([hi], [y], marker="<", color="grey")
                    ax.annotate(
                        "0 errors (upper bound)" if v == 0 else NOT_MEASURABLE_SHORT,
                        (hi, y),
                        fontsize=7,
                        xytext=(4, 2),
                        textcoords="offset points",
                    )
                y += 1
        ax.set_yticks(range(len(ylabels)), ylabels)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels collide on short log ranges
        ax.margins(x=0.15)
        ax.set_title(f"{which.upper()} at the global threshold (95 % interval)")
        ax.grid(True, which="both", axis="x", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def heatmap_figure(result: AuditResult) -> str | None:
    """The cross-group FMR matrix at the first target (log colour scale)."""
    if not result.cross_fmr:
        return None
    from matplotlib.colors import LogNorm

    key = next(iter(result.cross_fmr))
    m = result.cross_fmr[key]
    vals = m.to_numpy(dtype=float)
    pos = vals[np.isfinite(vals) & (vals > 0)]
    plt = _pyplot()
    n = len(m)
    fig, ax = plt.subplots(figsize=(1.6 + 0.75 * n, 1.2 + 0.65 * n))
    norm = None
    if len(pos):
        shown = np.where(vals > 0, vals, np.nan)
        norm = LogNorm(vmin=pos.min(), vmax=max(pos.max(), pos.min() * 1.01))
        im = ax.imshow(shown, cmap="viridis", norm=norm)
        fig.colorbar(im, ax=ax, label="FMR")
    else:
        ax.imshow(np.zeros_like(vals), cmap="Greys", vmin=0, vmax=1)
    cmap = plt.get_cmap("viridis")
    for i in range(n):
        for j in range(n):
            v = vals[i, j]
            txt = "–" if not np.isfinite(v) else ("0" if v == 0 else f"{v:.1e}")
            ax.text(j, i, txt, ha="center", va="center", fontsize=7, color=_text_colour(cmap, norm, v))
    ax.set_xticks(range(n), m.columns, rotation=45, ha="right")
    ax.set_yticks(range(n), m.index)
    ax.set_title(f"Non-mated FMR by group pair at the FMR {float(key):.0e} threshold")
    return _svg(fig)


def _text_colour(cmap, norm, v: float) -> str:
    """Black on light cells, white on dark ones (relative luminance of the cell's colour)."""
    if norm is None or not np.isfinite(v) or v <= 0:
        return "black"
    r, g, b, _ = cmap(norm(v))
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def distribution_figure(result: AuditResult) -> str | None:
    """Mated and non-mated score distributions per group (densities)."""
    if not result.histograms:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    centres = np.asarray(result.bin_centres)
    factor = max(1, len(centres) // 200)
    n = len(centres) // factor * factor
    cc = centres[:n].reshape(-1, factor).mean(axis=1)
    width = abs(cc[1] - cc[0]) if len(cc) > 1 else 1.0
    for i, g in enumerate(result.groups):
        h = np.asarray(result.histograms[g][:n], np.float64).reshape(-1, factor).sum(axis=1)
        if h.sum():
            ax.plot(cc, h / h.sum() / width, color=f"C{i}", label=f"{g} non-mated")
        ms = result.mated_scores.get(g)
        if ms is not None and len(ms) > 1:
            hist, edges = np.histogram(ms, bins=40, density=True)
            ax.plot((edges[1:] + edges[:-1]) / 2, hist, color=f"C{i}", ls="--", label=f"{g} mated")
    for t in result.thresholds.values():
        if t.get("threshold") is not None:
            ax.axvline(t["threshold"], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("comparison score")
    ax.set_ylabel("density")
    ax.set_title("Score distributions (dotted: global thresholds)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    return _svg(fig)


def _fmt(v, kind: str = "g") -> str:
    import jinja2

    if v is None or isinstance(v, jinja2.Undefined) or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if kind == "rate":
        return f"{v:.2e}"
    if kind == "pct":
        return f"{100 * v:.2f} %"
    if kind == "int":
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _records(frame: pd.DataFrame | None) -> list[dict]:
    return [] if frame is None or not len(frame) else frame.reset_index().to_dict(orient="records")


def _names(v) -> str:
    """``["sex", "race"]`` → ``sex, race`` (a column list as a reader writes it)."""
    if v is None:
        return "group_a/group_b columns"
    return v if isinstance(v, str) else ", ".join(map(str, v))


def render_html(result: AuditResult) -> str:
    """The report page as text."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("faceaudit.audit", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["names"] = _names
    bg = result.by_group.reset_index() if len(result.by_group) else None
    rows = bg.to_dict(orient="records") if bg is not None else []
    figures = {
        "det": det_figure(result),
        "fmr_threshold": fmr_threshold_figure(result) if result.histograms else None,
        "rates": rates_figure(result),
        "heatmap": heatmap_figure(result),
        "distributions": distribution_figure(result),
    }
    policy_rows = (
        result.policy_comparison.reset_index().to_dict(orient="records")
        if result.policy_comparison is not None
        else []
    )
    return env.get_template("report.html.j2").render(
        r=result,
        rows=rows,
        fig=figures,
        policy_rows=policy_rows,
        has_boot=bg is not None and "fnmr_boot_low" in bg.columns,
        not_measurable=NOT_MEASURABLE,
        ident=getattr(result, "identification", None),
        model_rows=_records(getattr(result, "model_comparison", None)),
        not_measurable_short=NOT_MEASURABLE_SHORT,
    )
