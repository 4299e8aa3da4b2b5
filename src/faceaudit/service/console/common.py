"""What every console page shares: the router, templates, rendering, the session check and the CSRF check."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from faceaudit.operations.context import Caller
from faceaudit.service.auth import admit, deny
from faceaudit.service.console.sessions import COOKIE, Session, SessionStore
from faceaudit.service.errors import ApiError
from faceaudit.service.state import Service

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50

NAV = (
    ("enroller", "/ui/enrol", "Enrol"),
    ("searcher", "/ui/search", "Search"),
    ("enroller", "/ui/compare", "Compare"),
    ("reviewer", "/ui/reviews", "Review queue"),
    ("auditor", "/ui/ledger", "Ledger"),
    ("auditor", "/ui/audits", "Audits"),
    ("auditor", "/ui/monitor", "Monitoring"),
    ("dpo", "/ui/subjects", "Subjects"),
    ("admin", "/ui/keys", "Keys"),
)


class SignIn(Exception):
    """No live session: go to the sign-in page, saying why (``revoked``, ``expired``, ``ended``) if known."""

    def __init__(self, why: str = "") -> None:
        self.why = why


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def root(request: Request) -> str:
    """The path prefix a reverse proxy serves us under (``--root-path``), or ""."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def redirect(request: Request, path: str) -> RedirectResponse:
    """303 See Other to ``path`` (``/ui/…``) under the root path: after a POST, a reload sends nothing again."""
    return RedirectResponse(root(request) + path, status_code=303)


def done(request: Request, session: Session, path: str, notice: str, **values: Any) -> RedirectResponse:
    """After a POST: show ``notice`` (and ``values``) once on ``path``, reached by a redirect, so that a reload
    sends nothing again."""
    session.carry = {"message": notice, **values}
    return redirect(request, path)


def cookie_path(request: Request) -> str:
    return root(request) + "/ui"


def _service(request: Request) -> Service:
    return request.app.state.service


def _sessions(request: Request) -> SessionStore:
    return request.app.state.sessions


def _nav(who: Caller | None) -> list[tuple[str, str]]:
    """The pages ``who`` may use, each once (Compare is for enrollers and searchers alike)."""
    roles = set(who.roles) if who is not None else set()
    out: list[tuple[str, str]] = []
    for role, href, text in NAV:
        allowed = role in roles or (href == "/ui/compare" and "searcher" in roles)
        if allowed and (href, text) not in out:
            out.append((href, text))
    return out


def _render(
    request: Request,
    name: str,
    title: str,
    ctx: tuple[Caller, Session] | None = None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    who, session = ctx if ctx else (None, None)
    if session is not None and session.carry:
        values = {**values, **{k: v for k, v in session.carry.items() if values.get(k) is None}}
        session.carry = {}
    context = {
        "title": title,
        "who": who,
        "csrf": session.csrf if session else "",
        "nav": _nav(who),
        "root": root(request),
        **values,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in(request: Request, *roles: str) -> tuple[Caller, Session]:
    """The signed-in principal (its key checked again) holding one of ``roles``; else sign-in or a 403 page."""
    service = _service(request)
    token = request.cookies.get(COOKIE)
    session = _sessions(request).get(token)
    if session is None:
        raise SignIn("ended" if token else "")
    try:
        who = admit(request, service, session.key_id)  # the API's own check, rate limit included
    except ApiError as exc:
        if exc.status != 401:
            raise Refused(exc.status, exc.message) from None
        _sessions(request).close(request.cookies.get(COOKIE))
        why = "revoked" if "revoked" in exc.message else "expired" if "expired" in exc.message else "ended"
        raise SignIn(why) from None
    if roles and not set(roles) & set(who.roles):
        try:
            deny(service, request, who, f"this page needs the role {' or '.join(roles)}")
        except ApiError as exc:
            raise Refused(403, exc.message) from None
    return who, session


LIST_FIELDS = ("roles", "photos")


async def _form(request: Request, session: Session) -> dict[str, Any]:
    """The posted form, after checking its CSRF token (403 page without it); ``roles`` and ``photos`` as lists."""
    form = await request.form()
    token = str(form.get("csrf", ""))
    if not token or not hmac.compare_digest(token, session.csrf):
        raise Refused(403, "this form was sent without its security token (CSRF); reload the page and retry")
    return {k: form.getlist(k) if k in LIST_FIELDS else form.get(k) for k in form}
