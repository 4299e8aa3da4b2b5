"""The monitor's outputs for people: terminal lines and an HTML section (no script), from ``monitor.json``."""

from __future__ import annotations

from html import escape
from typing import Any


def _pct(cell: dict[str, Any]) -> str:
    if cell.get("suppressed"):
        return "suppressed"
    if cell.get("value") is None:
        return "n/a"
    return f"{100 * cell['value']:.1f}% [{100 * cell['ci_low']:.1f}, {100 * cell['ci_high']:.1f}]"


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """A short terminal summary: per window, volume and the per-group figures; then the alerts."""
    out = [
        f"monitor of {doc['period']['start']} to {doc['period']['end']} in {doc['period']['window_days']}-day "
        f"windows; groups: declared {doc['attribute']!r}; k={doc['k']}"
    ]
    for w in doc["windows"]:
        v = w["volume"]
        out.append(
            f"  {w['start'][:10]}: {v['searches']} searches ({v['confirmed']} confirmed, {v['rejected']} rejected)"
        )
        if w.get("suppressed"):
            out.append(f"    {w['reason']}")
            continue
        for g, cell in w["misses"]["by_group"].items():
            out.append(
                f"    {g}: misses {_pct(cell)}; false-candidate share {_pct(w['false_candidates']['by_group'][g])}"
            )
    for a in doc["alerts"]:
        out.append(
            f"ALERT {a['window_start'][:10]} {a['measure']} {a['group']}: {100 * a['operational']:.1f}% "
            f"[{100 * a['ci_low']:.1f}, {100 * a['ci_high']:.1f}] vs baseline {100 * a['baseline']:.1f}% ({a['direction']})"
        )
    if not doc["alerts"]:
        out.append("no alerts" + ("" if "baseline" in doc else " (no --baseline given)"))
    return out


def render_section(doc: dict[str, Any]) -> str:
    """The monitoring section (an HTML fragment, every value escaped)."""
    e = escape
    rows = []
    for w in doc["windows"]:
        v = w["volume"]
        if w.get("suppressed"):
            rows.append(
                f"<tr><td>{e(w['start'][:10])}</td><td>{v['searches']}</td><td colspan='5'>{e(w['reason'])}</td></tr>"
            )
            continue
        for g, cell in w["misses"]["by_group"].items():
            fc = w["false_candidates"]["by_group"][g]
            ratio = fc.get("ratio_to_gallery_share")
            rows.append(
                f"<tr><td>{e(w['start'][:10])}</td><td>{v['searches']}</td><td>{e(g)}</td><td>{e(_pct(cell))}</td>"
                f"<td>{e(_pct(fc))}</td><td>{'' if ratio is None else f'{ratio:.2f}'}</td>"
                f"<td>{w['dispute_rate']['value'] if w['dispute_rate']['value'] is not None else ''}</td></tr>"
            )
    alerts = "".join(
        f"<li>{e(a['window_start'][:10])}: {e(a['measure'])} of group {e(a['group'])} is {100 * a['operational']:.1f}% "
        f"[{100 * a['ci_low']:.1f}, {100 * a['ci_high']:.1f}], baseline {100 * a['baseline']:.1f}%</li>"
        for a in doc["alerts"]
    )
    return (
        "<section id='monitoring'><h2>Post-market monitoring</h2>"
        f"<p>Groups: declared attribute <code>{e(doc['attribute'])}</code> ({e(doc['groups_source'])}). "
        f"No figure for a group with fewer than k={doc['k']} subjects.</p>"
        "<table><thead><tr><th>window</th><th>searches</th><th>group</th><th>misses seen by reviewers</th>"
        "<th>false-candidate share</th><th>÷ gallery share</th><th>dispute rate</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<h3>Alerts</h3>{f'<ul>{alerts}</ul>' if alerts else '<p>none</p>'}"
        f"<p class='limits'>{e(doc['cannot_see'])}</p></section>"
    )


def render_html(doc: dict[str, Any]) -> str:
    """A standalone page holding :func:`render_section`."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>faceaudit monitoring</title></head>"
        f"<body>{render_section(doc)}</body></html>\n"
    )
