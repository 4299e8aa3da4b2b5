"""The web console under ``/ui/``: server-rendered pages (Jinja2, plain forms) over the same rules as ``/v1``.

Every page needs a session (a key pasted once at ``/ui/login``); every form that changes something carries the
session's CSRF token; pages a role may not use are neither linked nor served (a 403 page, ledgered).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from faceaudit.errors import FaceAuditError
from faceaudit.operations import cases
from faceaudit.operations.keys import ROLES
from faceaudit.operations.review import SearchStatus, may_review
from faceaudit.service.auth import check_key, live_principal
from faceaudit.service.console import (
    auditor,  # noqa: F401  (registers the auditor's pages on the router)
    monitor,  # noqa: F401  (registers the monitoring page)
)
from faceaudit.service.console.common import (
    Refused,
    SignIn,
    _form,
    _render,
    _service,
    _sessions,
    _signed_in,
    router,
)
from faceaudit.service.console.sessions import COOKIE, SessionStore
from faceaudit.service.errors import ApiError, from_domain
from faceaudit.service.schemas import ReviewIn


def install(app: FastAPI, minutes: int = 480) -> None:
    """Mount the console on ``app``."""
    app.state.sessions = SessionStore(minutes)

    @app.exception_handler(SignIn)
    async def _to_sign_in(request: Request, exc: SignIn) -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        session = _sessions(request).get(request.cookies.get(COOKIE))
        ctx = None
        if session is not None:
            try:
                ctx = (live_principal(request, _service(request), session.key_id), session)
            except ApiError:
                ctx = None
        title = "Not allowed" if exc.status == 403 else "Error"
        return _render(request, "error.html", title, ctx, exc.status, message=exc.message, error=True)

    app.include_router(router)


# --- sign-in -------------------------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request) -> Response:
    return _render(request, "login.html", "Sign in")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    service = _service(request)
    try:
        who = await run_in_threadpool(check_key, request, service, str(form.get("key", "")).strip())
    except ApiError as exc:
        return _render(request, "login.html", "Sign in", None, 401, message=exc.message, error=True)
    token, _ = _sessions(request).open(who.key_id)
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=_sessions(request).seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _, session = _signed_in(request)
    await _form(request, session)
    _sessions(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/")
def home(request: Request) -> Response:
    ctx = _signed_in(request)
    return _render(request, "home.html", "faceaudit console", ctx)


# --- reviewer ------------------------------------------------------------------------------------------------


def _age(created_at: str) -> str:
    then = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    minutes = int((datetime.now(UTC) - then).total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


@router.get("/reviews")
def review_queue(request: Request) -> Response:
    ctx = _signed_in(request, "reviewer")
    store = _service(request).store
    searches = sorted(
        store.list_searches("pending_review", 500) + store.list_searches("disputed", 500),
        key=lambda s: s["created_at"],
    )
    for s in searches:
        s["age"] = _age(s["created_at"])
    return _render(request, "queue.html", "Review queue", ctx, searches=searches)


def _search_page(request: Request, ctx, search_id: str, status: int = 200, **values: Any) -> Response:
    search = _service(request).store.get_search(search_id)
    if search is None:
        raise Refused(404, f"no search {search_id}")
    who = ctx[0]
    can_review = may_review(search, who.name, who.roles)
    show_images = "reviewer" in who.roles and not SearchStatus(search["status"]).decided
    return _render(
        request,
        "search.html",
        f"Search {search_id[:8]}",
        ctx,
        status,
        s=search,
        can_review=can_review,
        show_images=show_images,
        **values,
    )


@router.get("/searches/{search_id}")
def search_page(request: Request, search_id: str) -> Response:
    ctx = _signed_in(request, "reviewer", "auditor")
    return _search_page(request, ctx, search_id)


_BROWSER_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}


def _image(data: bytes) -> Response:
    """An image for the browser, never cached; formats browsers do not show (TIFF, PGM) are sent as PNG."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        media = _BROWSER_FORMATS.get(img.format or "")
    if media is None:
        import cv2

        from faceaudit.imaging import decode_bytes

        data, media = cv2.imencode(".png", decode_bytes(data, "image"))[1].tobytes(), "image/png"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


@router.get("/searches/{search_id}/probe")
def probe_image(request: Request, search_id: str) -> Response:
    """The probe of a search waiting for review (reviewers only; each view is a ledger entry)."""
    who, _ = _signed_in(request, "reviewer")
    try:
        return _image(cases.view_probe(_service(request), who, search_id))
    except FaceAuditError as exc:
        raise Refused(404, str(exc)) from None


@router.get("/searches/{search_id}/candidates/{rank}/image")
def candidate_image(request: Request, search_id: str, rank: int) -> Response:
    """The first stored enrolment image of a candidate (reviewers only; each view is a ledger entry)."""
    who, _ = _signed_in(request, "reviewer")
    service = _service(request)
    search = service.store.get_search(search_id)
    cand = next(
        (c for c in (search or {}).get("candidates", []) if c["rank"] == rank and not c.get("erased")), None
    )
    if search is None or cand is None:
        raise Refused(404, "no such candidate")
    try:
        with service.gallery_lock:
            images = service.gallery.reference_images(
                cand["subject_ref"], operator=who.actor, purpose=search["purpose"], case=search["case"]
            )
    except FaceAuditError:
        images = []
    if not images:
        raise Refused(404, "no enrolment image is stored for this candidate")
    return _image(images[0])


@router.post("/searches/{search_id}/review")
async def review(request: Request, search_id: str) -> Response:
    from faceaudit.service.routes.searches import review_search

    ctx = _signed_in(request, "reviewer")
    form = await _form(request, ctx[1])
    try:
        body = ReviewIn(
            decision=form.get("decision") or "",
            subject_ref=form.get("subject_ref") or None,
            reason=form.get("reason") or "",
        )
        done = await run_in_threadpool(review_search, _service(request), request, ctx[0], search_id, body)
    except ValidationError:
        return _search_page(request, ctx, search_id, 422, message="give a decision and a reason", error=True)
    except (ApiError, FaceAuditError) as exc:
        if isinstance(exc, FaceAuditError):
            exc = from_domain(exc)
        if exc.status == 403:
            raise Refused(403, exc.message) from None
        return _search_page(request, ctx, search_id, exc.status, message=exc.message, error=True)
    return _search_page(request, ctx, search_id, message=f"Recorded. {done['note'].capitalize()}.")


# --- DPO -------------------------------------------------------------------------------------------------------


def _subjects_page(request: Request, ctx, status: int = 200, **values: Any) -> Response:
    service = _service(request)
    with service.gallery_lock:
        subjects = service.gallery.subjects()
    subjects.sort(key=lambda s: (s["consent_expires"] is None, s["consent_expires"] or "", s["subject_ref"]))
    return _render(request, "subjects.html", "Subjects", ctx, status, subjects=subjects, **values)


@router.get("/subjects")
def subjects(request: Request) -> Response:
    return _subjects_page(request, _signed_in(request, "dpo"))


@router.get("/subjects/{ref}/erase")
def erase_page(request: Request, ref: str) -> Response:
    ctx = _signed_in(request, "dpo")
    return _render(request, "erase.html", f"Erase {ref}", ctx, ref=ref)


@router.post("/subjects/{ref}/erase")
async def erase(request: Request, ref: str) -> Response:
    ctx = _signed_in(request, "dpo")
    form = await _form(request, ctx[1])
    reason = (form.get("reason") or "").strip()
    if form.get("confirm") != "yes" or not reason:
        return _render(
            request,
            "erase.html",
            f"Erase {ref}",
            ctx,
            422,
            ref=ref,
            message="give a reason and confirm",
            error=True,
        )
    try:
        done = await run_in_threadpool(cases.erase, _service(request), ctx[0], ref, reason)
    except FaceAuditError as exc:
        err = from_domain(exc)
        return _subjects_page(request, ctx, err.status, message=err.message, error=True)
    return _subjects_page(request, ctx, message=f"Erased {ref} (ledger entry {done['ledger_entry']}).")


@router.post("/subjects/expire")
async def expire(request: Request) -> Response:
    ctx = _signed_in(request, "dpo")
    await _form(request, ctx[1])
    done = await run_in_threadpool(cases.expire, _service(request), ctx[0], None)
    names = ", ".join(done["erased"]) or "none"
    return _subjects_page(
        request, ctx, message=f"Expiry run: {len(done['erased'])} subject(s) erased ({names})."
    )


# --- admin -----------------------------------------------------------------------------------------------------


def _keys_page(request: Request, ctx, status: int = 200, **values: Any) -> Response:
    keys = [k.public() for k in _service(request).store.list_keys()]
    return _render(request, "keys.html", "Keys", ctx, status, keys=keys, roles=ROLES, **values)


@router.get("/keys")
def keys(request: Request) -> Response:
    return _keys_page(request, _signed_in(request, "admin"))


@router.post("/keys")
async def create_key(request: Request) -> Response:
    ctx = _signed_in(request, "admin")
    form = await _form(request, ctx[1])
    service = _service(request)
    try:
        new = await run_in_threadpool(
            lambda: cases.create_key(
                service,
                ctx[0],
                principal=form.get("principal") or "",
                roles=form.get("roles") or [],
                expires=form.get("expires") or None,
            )
        )
    except FaceAuditError as exc:
        return _keys_page(request, ctx, 400, message=str(exc), error=True)
    return _keys_page(request, ctx, new_key={"key": new["key"], "principal": new["principal"]})


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    ctx = _signed_in(request, "admin")
    await _form(request, ctx[1])
    try:
        done = await run_in_threadpool(cases.revoke_key, _service(request), ctx[0], key_id)
    except FaceAuditError:
        return _keys_page(request, ctx, 404, message=f"no live key {key_id}", error=True)
    return _keys_page(request, ctx, message=f"Revoked key {key_id} (ledger entry {done['ledger_entry']}).")
