"""The web console under ``/ui/``: server-rendered pages (Jinja2, plain forms) over the same rules as ``/v1``.

Every page needs a session (a key pasted once at ``/ui/login``); every form that changes something carries the
session's CSRF token; pages a role may not use are neither linked nor served (a 403 page, ledgered).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from faceaudit.accountable import same_principal
from faceaudit.errors import FaceAuditError
from faceaudit.operations import cases
from faceaudit.operations.keys import ROLES
from faceaudit.operations.review import SearchStatus, may_review, reviews_to_decide
from faceaudit.service.auth import check_key, deny, live_principal
from faceaudit.service.console import auditor, monitor, people  # noqa: F401  (they register their pages on the router)
from faceaudit.service.console.common import (
    Refused,
    SignIn,
    _form,
    _render,
    _service,
    _sessions,
    _signed_in,
    cookie_path,
    done,
    redirect,
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
        return redirect(request, "/ui/login" + (f"?why={exc.why}" if exc.why else ""))

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

    def html_error(request: Request, status: int) -> Response:
        message = "There is no such page." if status == 404 else f"This page cannot answer that ({status})."
        return _render(
            request,
            "error.html",
            "Page not found" if status == 404 else "Error",
            None,
            status,
            message=message,
            error=True,
        )

    app.state.html_error = html_error  # errors.http_error answers /ui/ paths with it
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")


# --- sign-in -------------------------------------------------------------------------------------------------


SIGN_IN_COOKIE = "faceaudit_signin"
WHY = {
    "revoked": "Your session ended: its key was revoked. Ask an admin for a new key.",
    "expired": "Your session ended: its key has expired. Ask an admin for a new key.",
    "ended": "Your session has ended. Sign in again.",
    "signed-out": "You are signed out.",
}


def _login_page(request: Request, status: int = 200, **values: Any) -> Response:
    """The sign-in form with a fresh CSRF token, also set in a SameSite=Strict cookie: a form posted from
    another site carries neither (login CSRF)."""
    token = secrets.token_urlsafe(32)
    why = WHY.get(request.query_params.get("why", ""))
    if why and "message" not in values:
        values["message"] = why
    response = _render(request, "login.html", "Sign in", None, status, csrf=token, **values)
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=cookie_path(request),
    )
    return response


@router.get("/login")
def login_page(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    sent, expected = str(form.get("csrf", "")), request.cookies.get(SIGN_IN_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        return _login_page(
            request,
            403,
            message="this sign-in form has expired or came from another site; sign in here",
            error=True,
        )
    service = _service(request)
    try:
        who = await run_in_threadpool(check_key, request, service, str(form.get("key", "")).strip())
    except ApiError as exc:
        return _login_page(request, exc.status, message=exc.message, error=True)
    token, _ = _sessions(request).open(who.key_id)
    response = redirect(request, "/ui/")
    response.set_cookie(
        COOKIE,
        token,
        max_age=_sessions(request).seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=cookie_path(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=cookie_path(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _, session = _signed_in(request)
    await _form(request, session)
    _sessions(request).close(request.cookies.get(COOKIE))
    response = redirect(request, "/ui/login?why=signed-out")
    response.delete_cookie(COOKIE, path=cookie_path(request))
    return response


@router.get("/")
def home(request: Request) -> Response:
    ctx = _signed_in(request)
    return _render(request, "home.html", "faceaudit console", ctx, todo=_todo(request, ctx[0]))


def _todo(request: Request, who) -> dict[str, Any]:
    """What needs doing, per role of ``who``: the home page's cards."""
    service, roles, out = _service(request), set(who.roles), {}
    if "reviewer" in roles:
        out["reviews"] = len(service.store.review_queue(who.name))
    if "searcher" in roles:
        mine = service.store.list_searches(None, 1000, searcher=who.name)
        out["awaiting"] = sum(not SearchStatus(s["status"]).decided for s in mine)
        out["decided"] = sum(SearchStatus(s["status"]).decided for s in mine)
    if "auditor" in roles:
        jobs = service.audits.list()
        out["running"] = sum(j["state"] in ("queued", "running") for j in jobs)
        out["failed"] = sum(j["state"] == "failed" for j in jobs)
        head = service.store.ledger_page(max(0, service.store.count() - 1), 1)
        out["head"] = head[-1] if head else None
        out["verified"] = getattr(request.app.state, "ledger_verified", None)
    if "dpo" in roles:
        with service.gallery_lock:
            subjects = service.gallery.subjects()
        today = datetime.now(UTC).date().isoformat()
        out["expired"] = sum(bool(s["consent_expires"]) and s["consent_expires"] <= today for s in subjects)
        out["subjects"] = len(subjects)
    if "admin" in roles:
        keys = service.store.list_keys()
        out["live_keys"] = sum(k.revoked_at is None for k in keys)
    return out


# --- reviewer ------------------------------------------------------------------------------------------------


def _age(created_at: str) -> str:
    then = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    minutes = int((datetime.now(UTC) - then).total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


@router.get("/reviews")
def review_queue(request: Request) -> Response:
    ctx = _signed_in(request, "reviewer")
    searches = _service(request).store.review_queue(ctx[0].name)
    for s in searches:
        s["age"] = _age(s["created_at"])
        s["needed"] = reviews_to_decide(s["status"])
    return _render(request, "queue.html", "Review queue", ctx, searches=searches)


def _search_page(request: Request, ctx, search_id: str, status: int = 200, **values: Any) -> Response:
    search = _service(request).store.get_search(search_id)
    if search is None:
        raise Refused(404, f"no search {search_id}")
    who = ctx[0]
    if not {"reviewer", "auditor"} & set(who.roles) and not same_principal(search["searcher"], who.name):
        try:
            deny(_service(request), request, who, "a searcher may read only their own searches")
        except ApiError as exc:
            raise Refused(403, exc.message) from None
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
        needed=reviews_to_decide(search["status"]),
        **values,
    )


@router.get("/searches/{search_id}")
def search_page(request: Request, search_id: str) -> Response:
    ctx = _signed_in(request, "reviewer", "auditor", "searcher")
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
    if not images:  # a placeholder, not a broken-image icon
        return Response(NO_IMAGE, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
    return _image(images[0])


NO_IMAGE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
    b'<rect width="96" height="96" fill="#e8ecf0"/><text x="48" y="44" font-family="sans-serif" font-size="11" '
    b'text-anchor="middle" fill="#4a5560">no stored</text><text x="48" y="58" font-family="sans-serif" '
    b'font-size="11" text-anchor="middle" fill="#4a5560">image</text></svg>'
)


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
        result = await run_in_threadpool(review_search, _service(request), request, ctx[0], search_id, body)
    except ValidationError:
        return _search_page(request, ctx, search_id, 422, message="give a decision and a reason", error=True)
    except (ApiError, FaceAuditError) as exc:
        if isinstance(exc, FaceAuditError):
            exc = from_domain(exc)
        if exc.status == 403:
            raise Refused(403, exc.message) from None
        return _search_page(request, ctx, search_id, exc.status, message=exc.message, error=True)
    return done(request, ctx[1], f"/ui/searches/{search_id}", f"Recorded. {result['note'].capitalize()}.")


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
        erased = await run_in_threadpool(cases.erase, _service(request), ctx[0], ref, reason)
    except FaceAuditError as exc:
        err = from_domain(exc)
        return _subjects_page(request, ctx, err.status, message=err.message, error=True)
    return done(request, ctx[1], "/ui/subjects", f"Erased {ref} (ledger entry {erased['ledger_entry']}).")


@router.post("/subjects/expire")
async def expire(request: Request) -> Response:
    ctx = _signed_in(request, "dpo")
    await _form(request, ctx[1])
    ran = await run_in_threadpool(cases.expire, _service(request), ctx[0], None)
    names = ", ".join(ran["erased"]) or "none"
    return done(
        request, ctx[1], "/ui/subjects", f"Expiry run: {len(ran['erased'])} subject(s) erased ({names})."
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
    return done(
        request,
        ctx[1],
        "/ui/keys",
        f"Created a key for {new['principal']}.",
        new_key={"key": new["key"], "principal": new["principal"]},
    )


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a key; one's own key only after a confirmation page (it ends this session)."""
    ctx = _signed_in(request, "admin")
    form = await _form(request, ctx[1])
    own = key_id == ctx[0].key_id
    if own and form.get("confirm") != "yes":
        return _render(request, "revoke_own.html", "Revoke your own key?", ctx, key_id=key_id)
    try:
        revoked = await run_in_threadpool(cases.revoke_key, _service(request), ctx[0], key_id)
    except FaceAuditError as exc:
        err = from_domain(exc)
        return _keys_page(request, ctx, err.status, message=err.message, error=True)
    if own:
        return redirect(request, "/ui/login?why=revoked")
    return done(
        request, ctx[1], "/ui/keys", f"Revoked key {key_id} (ledger entry {revoked['ledger_entry']})."
    )
