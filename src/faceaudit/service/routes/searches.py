"""Identification and its two-person review: ``/v1/identify``, ``/v1/verify-subject``, ``/v1/searches``.

No identification result counts as confirmed until two different reviewers, neither of them the searcher,
have each confirmed the same candidate (EU AI Act Art. 14(5)). Two rejections reject it.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from faceaudit.service import jobs
from faceaudit.service.auth import Principal, _deny, get_service, require
from faceaudit.service.errors import ApiError
from faceaudit.service.routes import ERRORS, read_upload
from faceaudit.service.schemas import (
    IdentifyOut,
    ReviewIn,
    ReviewOut,
    SearchOut,
    SearchSummary,
    VerifySubjectOut,
)
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1", tags=["identification"], responses=ERRORS)
REVIEWS_NEEDED = 2
Text = Annotated[str, Form(min_length=1, max_length=256)]


def _blank(value: str, field: str) -> str:
    if not value.strip():
        raise ApiError(422, "invalid", f"{field}: must not be blank", field=field)
    return value.strip()


@router.post("/identify", response_model=IdentifyOut, summary="1:N search: candidates for two-person review")
async def identify(
    image: Annotated[UploadFile, File(description="the probe image")],
    purpose: Text,
    case: Text,
    who: Annotated[Principal, Depends(require("searcher"))],
    service: Annotated[Service, Depends(get_service)],
    top_k: Annotated[int, Form(ge=1, le=100)] = 10,
) -> dict:
    purpose, case = _blank(purpose, "purpose"), _blank(case, "case")
    upload = await read_upload(image, "image")
    return await service.pool.run(
        lambda: jobs.identify(service, who, upload, purpose=purpose, case=case, top_k=top_k)
    )


@router.post(
    "/verify-subject", response_model=VerifySubjectOut, summary="1:1 check of a probe with a subject"
)
async def verify_subject(
    image: Annotated[UploadFile, File(description="the probe image")],
    subject_ref: Text,
    purpose: Text,
    case: Text,
    who: Annotated[Principal, Depends(require("searcher"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    purpose, case = _blank(purpose, "purpose"), _blank(case, "case")
    upload = await read_upload(image, "image")
    return await service.pool.run(
        lambda: jobs.verify_subject(service, who, upload, subject_ref=subject_ref, purpose=purpose, case=case)
    )


def search_status(reviews: list[tuple[str, str, str | None]]) -> str:
    """``confirmed`` when two reviewers confirmed the same candidate, ``rejected`` when two rejected."""
    confirms = Counter(ref for _, decision, ref in reviews if decision == "confirm")
    if confirms and confirms.most_common(1)[0][1] >= REVIEWS_NEEDED:
        return "confirmed"
    if sum(decision == "reject" for _, decision, _ in reviews) >= REVIEWS_NEEDED:
        return "rejected"
    return "pending_review"


def _with_outcome(search: dict) -> dict:
    confirms = Counter(r["subject_ref"] for r in search["reviews"] if r["decision"] == "confirm")
    if search["status"] == "confirmed":
        search["confirmed_subject"] = confirms.most_common(1)[0][0]
    return search


@router.get("/searches", response_model=list[SearchSummary], summary="searches, newest first")
def list_searches(
    who: Annotated[Principal, Depends(require("reviewer", "auditor"))],
    service: Annotated[Service, Depends(get_service)],
    status: Annotated[Literal["pending_review", "confirmed", "rejected"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return service.store.list_searches(status, limit)


@router.get("/searches/{search_id}", response_model=SearchOut, summary="a search, its status and its reviews")
def get_search(
    search_id: Annotated[str, Path(max_length=64)],
    request: Request,
    who: Annotated[Principal, Depends(require("searcher", "reviewer", "auditor"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    search = service.store.get_search(search_id)
    if search is None:
        raise ApiError(404, "search_not_found", f"no search {search_id!r}")
    if not {"reviewer", "auditor"} & set(who.roles) and search["searcher"] != who.name:
        _deny(service, request, 403, "a searcher may read only their own searches", who.actor, who.key_id)
    return _with_outcome(search)


def _review(service: Service, request: Request, who: Principal, search_id: str, body: ReviewIn) -> dict:
    search = service.store.get_search(search_id)
    if search is None:
        raise ApiError(404, "search_not_found", f"no search {search_id!r}")
    if search["searcher"] == who.name:
        _deny(
            service,
            request,
            403,
            "you made this search: two other people must review it (no self-review)",
            who.actor,
            who.key_id,
        )
    if search["status"] != "pending_review":
        raise ApiError(409, "already_decided", f"search {search_id} is already {search['status']}")
    if any(r["principal"] == who.name for r in search["reviews"]):
        raise ApiError(409, "already_reviewed", f"{who.name} has already reviewed search {search_id}")
    subject_ref = body.subject_ref.strip() if body.subject_ref else None
    live = {c["subject_ref"] for c in search["candidates"] if not c.get("erased")}
    if body.decision == "confirm" and subject_ref not in live:
        raise ApiError(
            422,
            "invalid",
            "subject_ref: to confirm, name one of the search's candidates"
            + (f" ({subject_ref!r} is not one)" if subject_ref else ""),
            field="subject_ref",
        )
    if subject_ref is not None and subject_ref not in live:
        subject_ref = None
    with service.gallery_lock:
        pseudonym = service.gallery.pseudonym(subject_ref) if subject_ref else None
    try:
        status, entry = service.store.add_review(
            search_id,
            principal=who.name,
            key_id=who.key_id,
            decision=body.decision,
            subject_ref=subject_ref,
            subject_pseudonym=pseudonym,
            reason=body.reason.strip(),
            actor=who.actor,
            status_after=search_status,
        )
    except sqlite3.IntegrityError:
        raise ApiError(
            409, "already_reviewed", f"{who.name} has already reviewed search {search_id}"
        ) from None
    n = len(search["reviews"]) + 1
    note = {
        "confirmed": "confirmed by two reviewers",
        "rejected": "rejected by two reviewers",
    }.get(status, "a second reviewer's decision is still needed")
    return {"search_id": search_id, "status": status, "ledger_entry": entry.seq, "reviews": n, "note": note}


@router.post(
    "/searches/{search_id}/reviews",
    status_code=201,
    response_model=ReviewOut,
    summary="confirm or reject a candidate of someone else's search",
)
async def review(
    search_id: Annotated[str, Path(max_length=64)],
    body: ReviewIn,
    request: Request,
    who: Annotated[Principal, Depends(require("reviewer"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return await run_in_threadpool(_review, service, request, who, search_id, body)
