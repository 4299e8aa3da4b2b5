"""``/v1/ledger``: the auditor reads (a logged export) and verifies the hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from faceaudit.errors import LedgerIntegrityError, UsageError
from faceaudit.operations import cases
from faceaudit.service.auth import Caller, get_service, require
from faceaudit.service.errors import ApiError
from faceaudit.service.routes import ERRORS
from faceaudit.service.schemas import LedgerOut, LedgerVerifyOut
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1/ledger", tags=["ledger"], responses=ERRORS)


@router.get("", response_model=LedgerOut, summary="ledger entries after seq `since` (logged as an export)")
def read_ledger(
    who: Annotated[Caller, Depends(require("auditor"))],
    service: Annotated[Service, Depends(get_service)],
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    return cases.read_ledger(service, who, since, limit)


@router.get("/verify", response_model=LedgerVerifyOut, summary="check the hash chain")
def verify_ledger(
    who: Annotated[Caller, Depends(require("auditor"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    store = service.store
    try:
        report = store.verify()
    except LedgerIntegrityError as exc:
        return {"entries": store.count(), "intact": False, "first_bad": exc.entry_seq, "message": str(exc)}
    except UsageError as exc:
        raise ApiError(409, "ledger_key", str(exc)) from None
    return {"entries": report.n_entries, "intact": True, "message": report.message()}
