"""Authentication and roles: ``Authorization: Bearer <key>`` → a :class:`Caller`, or 401/403 (both ledgered)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

from fastapi import Depends, Request

from faceaudit.accountable import Principal
from faceaudit.gallery.values import Actor
from faceaudit.operations.context import Caller
from faceaudit.operations.keys import key_format_problem, key_id_of, parse_rate
from faceaudit.service.errors import ApiError
from faceaudit.service.routing import route_template
from faceaudit.service.state import Service


def get_service(request: Request) -> Service:
    return request.app.state.service


def _route(request: Request) -> str:
    """The route template (``/v1/subjects/{ref}``), never the concrete path, which may hold a subject ref."""
    return f"{request.method} {route_template(request.scope.get('app'), request.scope)}"


def _deny(
    service: Service,
    request: Request,
    status: int,
    reason: str,
    who: Actor | str,
    key_id: str | None,
    *,
    known: bool = True,
) -> NoReturn:
    """Ledger a refused request (who tried what; never the key), then raise the 401 or 403.

    ``who`` is the authenticated actor (403) or, for a 401, the owner of the presented key, or "anonymous".
    A 401 counts against the client address's limit of refusals (429 past it); one without a ``known`` key is
    ledgered in full only as its address's first in the minute, the rest summarised (:mod:`.refusals`).
    """
    params: dict[str, Any] = {"route": _route(request), "status": status, "reason": reason}
    if status == 401:
        refusals = service.refusals
        address = request.client.host if request.client else "-"
        wait = refusals.over_limit(address)
        if wait is not None:
            refusals.refused(address, params, rate_limited=True)
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests without a live key from this address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if not known and not refusals.refused(address, {**params, "client": address}):
            raise ApiError(401, "unauthenticated", reason, headers={"WWW-Authenticate": "Bearer"})
        if not known:
            params["client"] = address
    service.store.record_denied(who, key_id, params)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    code = "unauthenticated" if status == 401 else "forbidden"
    raise ApiError(status, code, reason, headers=headers)


def authenticate(request: Request, service: Service, *, rate_limited: bool = True) -> Caller:
    """The caller's principal from a live key; 401 (ledgered, without the key) otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        _deny(
            service,
            request,
            401,
            "no API key: send 'Authorization: Bearer <key>'",
            "anonymous",
            None,
            known=False,
        )
    if scheme.lower() != "bearer":
        _deny(
            service,
            request,
            401,
            f"the Authorization header must be 'Bearer <key>', not {scheme[:20]!r}",
            "anonymous",
            None,
            known=False,
        )
    return check_key(request, service, token.strip(), rate_limited=rate_limited)


def check_key(request: Request, service: Service, token: str, *, rate_limited: bool = True) -> Caller:
    """The principal of a presented key (header or console sign-in); 401, ledgered, unless it is live."""
    key_id = key_id_of(token)
    if key_id is None:
        _deny(service, request, 401, key_format_problem(token), "anonymous", None, known=False)
    record = service.store.get_key(key_id)
    if record is None:
        _deny(service, request, 401, "unknown API key", "anonymous", key_id, known=False)
    if not service.hasher.matches(token, record.key_hash):
        _deny(service, request, 401, "unknown API key", "anonymous", key_id)
    return admit(request, service, key_id) if rate_limited else live_principal(request, service, key_id)


def admit(request: Request, service: Service, key_id: str) -> Caller:
    """The one check of every request, API or console: the key is live (401, ledgered, otherwise) and within its
    rate limit (429 otherwise)."""
    who = live_principal(request, service, key_id)
    record = service.store.get_key(key_id)
    count, per = parse_rate((record.rate_limit if record else None) or service.config.rate_limit)
    service.limiter.hit(key_id, count, per)
    return who


def live_principal(request: Request, service: Service, key_id: str) -> Caller:
    """The principal of key ``key_id`` if it is neither revoked nor expired (401, ledgered, otherwise)."""
    record = service.store.get_key(key_id)
    if record is None:
        _deny(service, request, 401, "unknown API key", "anonymous", key_id)
    if record.revoked_at is not None:
        _deny(
            service,
            request,
            401,
            f"this API key was revoked at {record.revoked_at}",
            record.principal,
            key_id,
        )
    if record.expired():
        _deny(service, request, 401, f"this API key expired on {record.expires}", record.principal, key_id)
    return Caller(Principal(record.principal), key_id, record.roles)


def deny(service: Service, request: Request, who: Caller, reason: str) -> NoReturn:
    """Refuse (403, ledgered) a request by an authenticated principal."""
    _deny(service, request, 403, reason, who.actor, who.key_id)


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency: the caller must hold one of ``roles`` (403, ledgered, otherwise)."""

    def dependency(request: Request, service: Annotated[Service, Depends(get_service)]) -> Caller:
        who = authenticate(request, service)
        if not set(roles) & set(who.roles):
            _deny(
                service,
                request,
                403,
                f"this route needs the role {' or '.join(roles)}; this key has {', '.join(who.roles)}",
                who.actor,
                who.key_id,
            )
        request.state.caller = who  # for the error handlers (a refused audit request is ledgered)
        return who

    dependency.__name__ = f"require_{'_or_'.join(roles)}"
    return dependency


def any_role(request: Request, service: Annotated[Service, Depends(get_service)]) -> Caller:
    """A dependency: any live key."""
    return authenticate(request, service)
