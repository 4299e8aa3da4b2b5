"""``/v1/subjects``: enrolment (enroller), listing, erasure and expiry (dpo)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from faceaudit.accountable import AccountableText, SubjectRef
from faceaudit.gallery import Consent
from faceaudit.gallery.declared import DeclaredAttributes
from faceaudit.operations import cases
from faceaudit.service.auth import Caller, get_service, require
from faceaudit.service.errors import ApiError
from faceaudit.service.routes import ERRORS, read_upload
from faceaudit.service.schemas import EnrolOut, EraseOut, ExpireOut, SubjectOut
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], responses=ERRORS)
MAX_IMAGES = 20

Text = Annotated[str, Form(min_length=1, max_length=256)]


def _date(value: str | None, field: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(
            422, "invalid", f"{field}: {value!r} is not a date (YYYY-MM-DD)", field=field
        ) from None


@router.post("", status_code=201, response_model=EnrolOut, summary="enrol a consenting subject")
async def enrol(
    subject_ref: Text,
    name: Text,
    consent_basis: Text,
    consent_by: Text,
    images: Annotated[list[UploadFile], File(description="one or more reference images")],
    who: Annotated[Caller, Depends(require("enroller"))],
    service: Annotated[Service, Depends(get_service)],
    consent_expires: Annotated[str | None, Form(description="YYYY-MM-DD; consent ends on this day")] = None,
    store_images: Annotated[bool, Form(description="also keep the images, sealed, for reviewers")] = False,
    declared: Annotated[
        list[str] | None,
        Form(description="key=value the person declared (e.g. sex=F), for bias monitoring only; repeatable"),
    ] = None,
    declared_consent_basis: Annotated[str | None, Form(max_length=256)] = None,
    declared_consent_by: Annotated[str | None, Form(max_length=256)] = None,
) -> dict:
    ref, display = SubjectRef(subject_ref), AccountableText(name, "name")
    if len(images) > MAX_IMAGES:
        raise ApiError(422, "invalid", f"images: at most {MAX_IMAGES} reference images", field="images")
    consent = Consent(consent_basis, consent_by, _date(consent_expires, "consent_expires"))
    consent.validate()
    attributes = DeclaredAttributes.parse(declared or [], declared_consent_basis, declared_consent_by)
    uploads = [await read_upload(f, f"images[{i}]") for i, f in enumerate(images)]
    return await service.pool.run(
        lambda: cases.enrol(
            service,
            who,
            subject_ref=ref,
            name=display,
            consent=consent,
            uploads=uploads,
            store_images=store_images,
            declared=attributes,
        )
    )


@router.get("", response_model=list[SubjectOut], summary="subjects with consent and expiry (no templates)")
def list_subjects(
    who: Annotated[Caller, Depends(require("dpo"))],
    service: Annotated[Service, Depends(get_service)],
) -> list[dict]:
    with service.gallery_lock:
        return service.gallery.subjects()


@router.delete("/{ref}", response_model=EraseOut, summary="erase a subject for real")
async def erase(
    ref: Annotated[str, Path(min_length=1, max_length=256)],
    reason: Annotated[str, Query(min_length=1, max_length=2000, description="why (logged as given)")],
    who: Annotated[Caller, Depends(require("dpo"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return await run_in_threadpool(
        cases.erase, service, who, SubjectRef(ref), AccountableText(reason, "reason")
    )


@router.delete("/{ref}/declared", summary="delete a subject's declared attributes (the subject stays)")
async def withdraw_declared(
    ref: Annotated[str, Path(min_length=1, max_length=256)],
    reason: Annotated[str, Query(min_length=1, max_length=2000, description="why (logged as given)")],
    who: Annotated[Caller, Depends(require("dpo"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return await run_in_threadpool(
        cases.withdraw_declared, service, who, SubjectRef(ref), AccountableText(reason, "reason")
    )


@router.post("/expire", response_model=ExpireOut, summary="erase every subject whose consent has expired")
async def expire(
    who: Annotated[Caller, Depends(require("dpo"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return await run_in_threadpool(cases.expire, service, who, None)
