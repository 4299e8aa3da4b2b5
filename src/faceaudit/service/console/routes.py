"""The web console under ``/ui/``: server-rendered pages (Jinja2, plain forms) over the same rules as ``/v1``.

Every page needs a session (a key pasted once at ``/ui/login``); every form that changes something carries the
session's CSRF token; pages a role may not use are neither linked nor served (a 403 page, ledgered).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from faceaudit.errors import FaceAuditError, LedgerIntegrityError
from faceaudit.service import jobs
from faceaudit.service.auth import Principal, check_key, deny, live_principal
from faceaudit.service.console.sessions import COOKIE, Session, SessionStore
from faceaudit.service.errors import ApiError, from_domain
from faceaudit.service.keys import ROLES
from faceaudit.service.schemas import ReviewIn
from faceaudit.service.state import Service

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50

NAV = (
    ("reviewer", "/ui/reviews", "Review queue"),
    ("auditor", "/ui/ledger", "Ledger"),
    ("dpo", "/ui/subjects", "Subjects"),
    ("admin", "/ui/keys", "Keys"),
)


class _SignIn(Exception):
    """No live session: go to the sign-in page."""


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def _service(request: Request) -> Service:
    return request.app.state.service


def _sessions(request: Request) -> SessionStore:
    return request.app.state.sessions


def _nav(who: Principal | None) -> list[tuple[str, str]]:
    return [(href, text) for role, href, text in NAV if who is not None and role in who.roles]


def _render(
    request: Request,
    name: str,
    title: str,
    ctx: tuple[Principal, Session] | None = None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    who, session = ctx if ctx else (None, None)
    response = templates.TemplateResponse(
        request,
        name,
        {"title": title, "who": who, "csrf": session.csrf if session else "", "nav": _nav(who), **values},
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in(request: Request, *roles: str) -> tuple[Principal, Session]:
    """The signed-in principal (its key checked again) holding one of ``roles``; else sign-in or a 403 page."""
    service = _service(request)
    session = _sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise _SignIn()
    try:
        who = live_principal(request, service, session.key_id)
    except ApiError:
        _sessions(request).close(request.cookies.get(COOKIE))
        raise _SignIn() from None
    if roles and not set(roles) & set(who.roles):
        try:
            deny(service, request, who, f"this page needs the role {' or '.join(roles)}")
        except ApiError as exc:
            raise _Refused(403, exc.message) from None
    return who, session


async def _form(request: Request, session: Session) -> dict[str, Any]:
    """The posted form, after checking its CSRF token (403 page without it)."""
    form = await request.form()
    token = str(form.get("csrf", ""))
    if not token or not hmac.compare_digest(token, session.csrf):
        raise _Refused(403, "this form was sent without its security token (CSRF); reload the page and retry")
    return {k: form.getlist(k) if k == "roles" else form.get(k) for k in form}


def install(app: FastAPI, minutes: int = 480) -> None:
    """Mount the console on ``app``."""
    app.state.sessions = SessionStore(minutes)

    @app.exception_handler(_SignIn)
    async def _to_sign_in(request: Request, exc: _SignIn) -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    @app.exception_handler(_Refused)
    async def _refused(request: Request, exc: _Refused) -> Response:
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
    searches = sorted(
        _service(request).store.list_searches("pending_review", 500), key=lambda s: s["created_at"]
    )
    for s in searches:
        s["age"] = _age(s["created_at"])
    return _render(request, "queue.html", "Review queue", ctx, searches=searches)


def _search_page(request: Request, ctx, search_id: str, status: int = 200, **values: Any) -> Response:
    search = _service(request).store.get_search(search_id)
    if search is None:
        raise _Refused(404, f"no search {search_id}")
    who = ctx[0]
    can_review = "reviewer" in who.roles and search["searcher"] != who.name
    can_review = can_review and all(r["principal"] != who.name for r in search["reviews"])
    return _render(
        request,
        "search.html",
        f"Search {search_id[:8]}",
        ctx,
        status,
        s=search,
        can_review=can_review,
        **values,
    )


@router.get("/searches/{search_id}")
def search_page(request: Request, search_id: str) -> Response:
    ctx = _signed_in(request, "reviewer", "auditor")
    return _search_page(request, ctx, search_id)


@router.post("/searches/{search_id}/review")
async def review(request: Request, search_id: str) -> Response:
    from faceaudit.service.routes.searches import _review

    ctx = _signed_in(request, "reviewer")
    form = await _form(request, ctx[1])
    try:
        body = ReviewIn(
            decision=form.get("decision") or "",
            subject_ref=form.get("subject_ref") or None,
            reason=form.get("reason") or "",
        )
        done = await run_in_threadpool(_review, _service(request), request, ctx[0], search_id, body)
    except ValidationError:
        return _search_page(request, ctx, search_id, 422, message="give a decision and a reason", error=True)
    except ApiError as exc:
        if exc.status == 403:
            raise _Refused(403, exc.message) from None
        return _search_page(request, ctx, search_id, exc.status, message=exc.message, error=True)
    return _search_page(request, ctx, search_id, message=f"Recorded. {done['note'].capitalize()}.")


# --- auditor -------------------------------------------------------------------------------------------------

_FILTERS = ("operator", "action", "purpose", "case", "date")


def _matches(entry: dict[str, Any], f: dict[str, str]) -> bool:
    checks = (
        ("operator", entry["actor"]),
        ("action", entry["action"]),
        ("purpose", entry.get("purpose") or ""),
        ("case", entry.get("case_ref") or ""),
    )
    if any(f[k] and f[k].lower() not in v.lower() for k, v in checks):
        return False
    return not f["date"] or entry["started_at"].startswith(f["date"])


def _ledger_page(request: Request, ctx, verdict: dict | None = None) -> Response:
    service = _service(request)
    f = {k: (request.query_params.get(k) or "").strip() for k in _FILTERS}
    try:
        page = max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        page = 0
    rows = [e for e in service.store.ledger_page(0, 10**9) if _matches(e, f)]
    entries = rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    service.store.record(
        "export",
        ctx[0].actor,
        params={"via": "console", "filters": f, "page": page},
        result={"n_entries": len(entries)},
    )
    query = {k: v for k, v in f.items() if v}
    return _render(
        request,
        "ledger.html",
        "Ledger",
        ctx,
        f=f,
        entries=entries,
        verdict=verdict,
        total=len(rows),
        first=page * PAGE_SIZE + 1 if entries else 0,
        last=page * PAGE_SIZE + len(entries),
        prev=urlencode({**query, "page": page - 1}) if page > 0 else None,
        next=urlencode({**query, "page": page + 1}) if (page + 1) * PAGE_SIZE < len(rows) else None,
    )


@router.get("/ledger")
def ledger(request: Request) -> Response:
    return _ledger_page(request, _signed_in(request, "auditor"))


@router.post("/ledger/verify")
async def ledger_verify(request: Request) -> Response:
    ctx = _signed_in(request, "auditor")
    await _form(request, ctx[1])
    store = _service(request).store
    try:
        report = await run_in_threadpool(store.verify)
        verdict = {"intact": True, "message": report.message()}
    except LedgerIntegrityError as exc:
        verdict = {"intact": False, "message": f"chain broken: {exc}"}
    except FaceAuditError as exc:
        verdict = {"intact": False, "message": str(exc)}
    return _ledger_page(request, ctx, verdict)


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
        done = await run_in_threadpool(jobs.erase, _service(request), ctx[0], ref, reason)
    except FaceAuditError as exc:
        err = from_domain(exc)
        return _subjects_page(request, ctx, err.status, message=err.message, error=True)
    return _subjects_page(request, ctx, message=f"Erased {ref} (ledger entry {done['ledger_entry']}).")


@router.post("/subjects/expire")
async def expire(request: Request) -> Response:
    ctx = _signed_in(request, "dpo")
    await _form(request, ctx[1])
    done = await run_in_threadpool(jobs.expire, _service(request), ctx[0], None)
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
    from faceaudit.gallery.values import utc_today

    ctx = _signed_in(request, "admin")
    form = await _form(request, ctx[1])
    service = _service(request)
    try:
        new = await run_in_threadpool(
            lambda: service.hasher.create(
                service.store,
                principal=form.get("principal") or "",
                roles=form.get("roles") or [],
                actor=ctx[0].actor,
                expires=form.get("expires") or None,
                today=utc_today(),
            )
        )
    except FaceAuditError as exc:
        return _keys_page(request, ctx, 400, message=str(exc), error=True)
    return _keys_page(request, ctx, new_key={"key": new.key, "principal": new.record.principal})


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    ctx = _signed_in(request, "admin")
    await _form(request, ctx[1])
    entry = await run_in_threadpool(lambda: _service(request).store.revoke_key(key_id, actor=ctx[0].actor))
    if entry is None:
        return _keys_page(request, ctx, 404, message=f"no live key {key_id}", error=True)
    return _keys_page(request, ctx, message=f"Revoked key {key_id} (ledger entry {entry.seq}).")
