"""``/v1/monitor``: the post-market monitor for auditors (figures per declared group, small cells suppressed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from faceaudit.accountable import AccountableText
from faceaudit.operations import monitor as monitoring
from faceaudit.service.auth import Caller, get_service, require
from faceaudit.service.routes import ERRORS
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1/monitor", tags=["monitor"], responses=ERRORS)


@router.get("", summary="operational differentials per declared group over a period (monitor.json, unsigned)")
async def read_monitor(
    who: Annotated[Caller, Depends(require("auditor"))],
    service: Annotated[Service, Depends(get_service)],
    attribute: Annotated[str, Query(min_length=1, max_length=32)] = "sex",
    since: Annotated[str | None, Query(max_length=40, description="YYYY-MM-DD or ISO time")] = None,
    until: Annotated[
        str | None, Query(max_length=40, description="exclusive; YYYY-MM-DD or ISO time")
    ] = None,
    window_days: Annotated[int, Query(ge=1, le=3660)] = 30,
    k: Annotated[int, Query(ge=2, le=10_000, description="smallest group shown")] = 10,
) -> dict[str, Any]:
    name = str(AccountableText(attribute, "attribute"))
    start = monitoring.parse_when(since, "since")
    end = monitoring.parse_when(until, "until")
    return await run_in_threadpool(
        lambda: monitoring.monitor(
            service, who, attribute=name, since=start, until=end, window_days=window_days, k=k
        )
    )
