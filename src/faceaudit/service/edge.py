"""The HTTP edge, in front of every route: security headers on every response, an access log that names route
templates only, and the key checked before a request body is read.

The access log is written here (logger ``faceaudit.access``) instead of uvicorn's, which logs the concrete path
and query string: ``DELETE /v1/subjects/erz-77?reason=…`` would keep in a log what erasure removes from the
gallery. Here it is ``DELETE /v1/subjects/{ref} 200``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from faceaudit.operations.context import Caller
from faceaudit.service.errors import ApiError, envelope, error_response
from faceaudit.service.routing import route_path, route_template

access_log = logging.getLogger("faceaudit.access")
log = logging.getLogger("faceaudit.service")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
REPORT_CSP = (  # an audit's report.html is one self-contained file: inline styles and data: images, no script
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = CSP.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)  # Swagger UI sets style attributes
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Edge:
    """ASGI middleware, outermost: headers, access log, and the key before the body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0
        path = route_path(scope)

        async def secure_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-frame-options"]
                report = path.startswith(("/v1/audits/", "/ui/audits/")) and path.endswith(
                    ("/report", ".html")
                )
                csp = REPORT_CSP if report else DOCS_CSP if path == "/docs" else CSP
                headers += [(b"content-security-policy", csp.encode()), *SECURITY_HEADERS]
                message = {**message, "headers": headers}
            await send(message)

        who: Any = None
        try:
            who = await self._key_before_body(scope)
            if who is not None and not isinstance(who, Caller):
                await who(scope, receive, secure_send)
            else:
                await self.app(scope, receive, secure_send)
        except Exception:
            if status:  # the response had begun: nothing more can be said to the client
                raise
            template = route_template(scope.get("app"), scope)
            log.exception("unexpected error on %s %s", scope.get("method", "?"), template)
            body = json.dumps(envelope("internal", "internal error; the server log has the details")).encode()
            await error_body(500, body)(scope, receive, secure_send)
        finally:
            template = route_template(scope.get("app"), scope)
            if status == 413 and isinstance(who, Caller) and template.startswith("/v1/audits"):
                from faceaudit.operations.cases import refuse_audit

                service = scope["app"].state.service
                await run_in_threadpool(
                    refuse_audit, service, who, {"route": template}, "upload over the limit"
                )
            access_log.info(
                '%s "%s %s" %d %.0f ms',
                _client(scope),
                scope.get("method", "?"),
                template,
                status,
                (time.monotonic() - started) * 1000,
            )

    async def _key_before_body(self, scope: dict) -> Any:
        """A ``/v1`` request that carries a body is refused (401, ledgered) before a byte of it is read unless
        its key is live: a 25 MB upload without a key gets 401, not 413. The caller, or the refusal to send."""
        if scope.get("method") not in _BODY_METHODS or not route_path(scope).startswith("/v1/"):
            return None
        from faceaudit.service.auth import authenticate

        request = Request(scope)
        service = scope["app"].state.service
        try:
            return await run_in_threadpool(authenticate, request, service, rate_limited=False)
        except ApiError as exc:
            return error_response(exc)


def error_body(status: int, body: bytes) -> Any:
    """A JSON response (an ASGI app) with ``body``: an unexpected error still leaves through the edge."""
    from starlette.responses import Response

    return Response(body, status, media_type="application/json")


def _client(scope: dict) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration with its access log replaced by ``faceaudit.access`` (route templates)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["faceaudit.access"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
