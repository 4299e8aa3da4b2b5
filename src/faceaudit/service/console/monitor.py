"""The auditor's monitoring page: operational differentials per declared group (no script, no per-person data)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from faceaudit.accountable import AccountableText, TextRefused
from faceaudit.audit.monitor_report import render_section
from faceaudit.errors import UsageError
from faceaudit.operations import monitor as monitoring
from faceaudit.service.console.common import Refused, _render, _service, _signed_in, router


def _int(text: str | None, default: int, field: str) -> int:
    if text is None or not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise Refused(422, f"{field}: {text!r} is not a whole number") from None


@router.get("/monitor")
async def monitor_page(request: Request) -> Response:
    ctx = _signed_in(request, "auditor")
    q = request.query_params
    try:
        attribute = str(AccountableText(q.get("attribute") or "sex", "attribute"))
        since = monitoring.parse_when(q.get("since"), "since")
        until = monitoring.parse_when(q.get("until"), "until")
    except (TextRefused, UsageError) as exc:
        raise Refused(422, str(exc)) from None
    window_days = _int(q.get("window_days"), 30, "window_days")
    k = _int(q.get("k"), 10, "k")
    try:
        doc = await run_in_threadpool(
            lambda: monitoring.monitor(
                _service(request),
                ctx[0],
                attribute=attribute,
                since=since,
                until=until,
                window_days=window_days,
                k=k,
            )
        )
    except UsageError as exc:
        raise Refused(422, str(exc)) from None
    form = {
        "attribute": attribute,
        "since": q.get("since") or "",
        "until": q.get("until") or "",
        "window_days": window_days,
        "k": k,
    }
    return _render(request, "monitor.html", "Monitoring", ctx, f=form, section=Markup(render_section(doc)))
