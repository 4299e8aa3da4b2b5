"""Identification and its two-person review: ``/v1/identify``, ``/v1/verify-subject``, ``/v1/searches``.

No identification result counts as confirmed until two different reviewers, neither of them the searcher,
have each confirmed the same candidate (EU AI Act Art. 14(5)); a split is ``disputed`` until a third reviewer
resolves it. The rules live in :mod:`faceaudit.operations.review` and the store's transaction; these routes
only parse, call :mod:`faceaudit.operations.cases` and render.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from faceaudit.operations import cases
from faceaudit.operations.context import Caller
from faceaudit.operations.review import ReviewRefused, SearchStatus
from faceaudit.service.auth import deny, get_service, require
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
Text = Annotated[str, Form(min_length=1, max_length=2000)]


@router.post("/identify", response_model=IdentifyOut, summary="1:N search: candidates for two-person review")
async def identify(
    image: Annotated[UploadFile, File(description="the probe image")],
    purpose: Text,
    case: Text,
    who: Annotated[Caller, Depends(require("searcher"))],
    service: Annotated[Service, Depends(get_service)],
    top_k: Annotated[int, Form(ge=1, le=100)] = 10,
) -> dict:
    upload = await read_upload(image, "image")
    return await service.pool.run(
        lambda: cases.identify(service, who, upload, purpose=purpose, case=case, top_k=top_k)  # type: ignore[arg-type]
    )


@router.post(
    "/verify-subject", response_model=VerifySubjectOut, summary="1:1 check of a probe with a subject"
)
async def verify_subject(
    image: Annotated[UploadFile, File(description="the probe image")],
    subject_ref: Text,
    purpose: Text,
    case: Text,
    who: Annotated[Caller, Depends(require("searcher"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    upload = await read_upload(image, "image")
    return await service.pool.run(
        lambda: cases.verify_subject(
            service,
            who,
            upload,
            subject_ref=subject_ref,  # type: ignore[arg-type]
            purpose=purpose,  # type: ignore[arg-type]
            case=case,  # type: ignore[arg-type]
        )
    )


@router.get("/searches", response_model=list[SearchSummary], summary="searches, newest first")
def list_searches(
    who: Annotated[Caller, Depends(require("searcher", "reviewer", "auditor"))],
    service: Annotated[Service, Depends(get_service)],
    status: Annotated[SearchStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    """Reviewers and auditors see every search; a searcher sees their own."""
    mine = None if {"reviewer", "auditor"} & set(who.roles) else who.name
    return service.store.list_searches(status, limit, searcher=mine)


@router.get("/searches/{search_id}", response_model=SearchOut, summary="a search, its status and its reviews")
def get_search(
    search_id: Annotated[str, Path(max_length=64)],
    request: Request,
    who: Annotated[Caller, Depends(require("searcher", "reviewer", "auditor"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    search = service.store.get_search(search_id)
    if search is None:
        raise ApiError(404, "search_not_found", f"no search {search_id!r}")
    if not {"reviewer", "auditor"} & set(who.roles) and search["searcher"] != who.name:
        deny(service, request, who, "a searcher may read only their own searches")
    return search


def review_search(service: Service, request: Request, who: Caller, search_id: str, body: ReviewIn) -> dict:
    """One review through :func:`faceaudit.operations.cases.review`; a self-review is a ledgered 403."""
    try:
        return cases.review(
            service, who, search_id, decision=body.decision, subject_ref=body.subject_ref, reason=body.reason
        )
    except ReviewRefused as exc:
        if exc.code == "self_review":
            deny(service, request, who, str(exc))
        raise


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
    who: Annotated[Caller, Depends(require("reviewer"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return await run_in_threadpool(review_search, service, request, who, search_id, body)
