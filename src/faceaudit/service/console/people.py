"""The console pages of the people who use the system every day: enrollers (enrol a consenting person, their
recent enrolments), searchers (a probe with purpose and case, their searches and what the reviewers decided) and
both (compare two photos, 1:1). Each page parses, calls one :mod:`faceaudit.operations.cases` function, renders.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from faceaudit.accountable import AccountableText, SubjectRef, TextRefused
from faceaudit.errors import FaceAuditError
from faceaudit.gallery import Consent
from faceaudit.gallery.values import DeclaredAttributes
from faceaudit.operations import cases
from faceaudit.operations.review import reviews_to_decide
from faceaudit.service.console.common import Refused, _form, _render, _service, _signed_in, done, router
from faceaudit.service.errors import ApiError, from_domain

MAX_PHOTOS = 20
_IMAGE_TYPES = ("image/", "application/octet-stream")


async def _uploads(files: list[Any], field: str) -> list[cases.Upload]:
    """The chosen files of ``field`` as uploads (an empty file input sends one empty part: none chosen)."""
    out = []
    for i, f in enumerate(files):
        if not isinstance(f, UploadFile) or not f.filename:
            continue
        ctype = (f.content_type or "").lower()
        label = f"{field}[{i}] ({f.filename})"
        if ctype and not ctype.startswith(_IMAGE_TYPES):
            raise TextRefused(
                f"{label}: {ctype!r} is not an image (JPEG, PNG, WebP, BMP, PGM/PPM, TIFF)", field
            )
        out.append(cases.Upload(await f.read(), label, field))
    return out


def _error(exc: Exception) -> ApiError:
    return from_domain(exc) if isinstance(exc, FaceAuditError) else ApiError(400, "bad_request", str(exc))


# --- enroller ----------------------------------------------------------------------------------------------


ENROL_FIELDS = (
    "subject_ref",
    "name",
    "consent_basis",
    "consent_by",
    "consent_expires",
    "declared",
    "declared_consent_basis",
    "declared_consent_by",
)
"""The enrol form's text fields (kept as typed, to fill the form again after a refusal)."""


def _enrol_page(request: Request, ctx, status: int = 200, **values: Any) -> Response:
    mine = cases.own_enrolments(_service(request), ctx[0])
    return _render(request, "enrol.html", "Enrol a person", ctx, status, mine=mine, **values)


@router.get("/enrol")
def enrol_page(request: Request) -> Response:
    return _enrol_page(request, _signed_in(request, "enroller"))


@router.post("/enrol")
async def enrol(request: Request) -> Response:
    ctx = _signed_in(request, "enroller")
    form = await _form(request, ctx[1])
    service = _service(request)
    fields = {k: str(form.get(k) or "") for k in ENROL_FIELDS}
    keep = form.get("store_images") == "yes"
    try:
        ref = SubjectRef(fields["subject_ref"])
        name = AccountableText(fields["name"], "name")
        basis = AccountableText(fields["consent_basis"], "consent_basis")
        by = AccountableText(fields["consent_by"], "consent_by")
        expires = _day(fields["consent_expires"], "consent_expires")
        consent = Consent(basis, by, expires)
        consent.validate()
        declared = DeclaredAttributes.parse(
            [line for line in fields["declared"].splitlines() if line.strip()],
            fields["declared_consent_basis"],
            fields["declared_consent_by"],
        )
        uploads = await _uploads(form.get("photos") or [], "photos")
        if not uploads:
            raise TextRefused("photos: choose one or more photos of the person", "photos")
        if len(uploads) > MAX_PHOTOS:
            raise TextRefused(f"photos: at most {MAX_PHOTOS}", "photos")
        checks = await service.pool.run(lambda: cases.check_photos(service, uploads))
        if not all(c["passed"] for c in checks):
            return _enrol_page(
                request,
                ctx,
                422,
                form=fields,
                checks=checks,
                message="Nothing was stored: every photo must pass the quality gate (see each photo below).",
                error=True,
            )
        result = await service.pool.run(
            lambda: cases.enrol(
                service,
                ctx[0],
                subject_ref=ref,
                name=name,
                consent=consent,
                uploads=uploads,
                store_images=keep,
                declared=declared,
            )
        )
    except (FaceAuditError, ValueError) as exc:
        err = _error(exc)
        if err.status == 403:
            raise Refused(403, err.message) from None
        return _enrol_page(request, ctx, err.status, form=fields, message=err.message, error=True)
    n = len(uploads)
    return done(
        request,
        ctx[1],
        "/ui/enrol",
        f"Enrolled {result['subject_ref']}: {n} photo(s), each passed the quality gate; "
        f"{result['templates']} template(s){', images kept for reviewers' if keep else ''} "
        f"(ledger entry {result['ledger_entry']}).",
    )


def _day(value: str, field: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise TextRefused(f"{field}: {value!r} is not a date (YYYY-MM-DD)", field) from None


# --- searcher ----------------------------------------------------------------------------------------------


def _search_form(request: Request, ctx, status: int = 200, **values: Any) -> Response:
    mine = _service(request).store.list_searches(None, 50, searcher=ctx[0].name)
    for s in mine:
        s["needed"] = reviews_to_decide(s["status"])
    return _render(request, "identify.html", "Search the gallery", ctx, status, mine=mine, **values)


@router.get("/search")
def search_form(request: Request) -> Response:
    return _search_form(request, _signed_in(request, "searcher"))


@router.post("/search")
async def search(request: Request) -> Response:
    ctx = _signed_in(request, "searcher")
    form = await _form(request, ctx[1])
    service = _service(request)
    fields = {k: str(form.get(k) or "") for k in ("purpose", "case")}
    try:
        purpose = AccountableText(fields["purpose"], "purpose")
        case = AccountableText(fields["case"], "case")
        uploads = await _uploads([form.get("probe")], "probe")
        if not uploads:
            raise TextRefused("probe: choose the photo to search with", "probe")
        found = await service.pool.run(
            lambda: cases.identify(service, ctx[0], uploads[0], purpose=purpose, case=case, top_k=10)
        )
    except (FaceAuditError, ValueError) as exc:
        err = _error(exc)
        return _search_form(request, ctx, err.status, form=fields, message=err.message, error=True)
    return done(
        request,
        ctx[1],
        f"/ui/searches/{found['search_id']}",
        "Search recorded; it is awaiting review by two reviewers.",
    )


# --- enroller and searcher: 1:1 ----------------------------------------------------------------------------


@router.get("/compare")
def compare_form(request: Request) -> Response:
    ctx = _signed_in(request, "enroller", "searcher")
    return _render(request, "compare.html", "Compare two photos", ctx)


@router.post("/compare")
async def compare(request: Request) -> Response:
    """A 1:1 comparison stores and changes nothing, so its answer is this page (no redirect)."""
    ctx = _signed_in(request, "enroller", "searcher")
    form = await _form(request, ctx[1])
    service = _service(request)
    try:
        a = await _uploads([form.get("photo_a")], "photo_a")
        b = await _uploads([form.get("photo_b")], "photo_b")
        if not a or not b:
            raise TextRefused("choose two photos to compare", "photo_a" if not a else "photo_b")
        result = await service.pool.run(lambda: cases.verify(service, a[0], b[0]))
    except (FaceAuditError, ValueError) as exc:
        err = _error(exc)
        return _render(
            request, "compare.html", "Compare two photos", ctx, err.status, message=err.message, error=True
        )
    return _render(request, "compare.html", "Compare two photos", ctx, result=result)
