"""One error shape for every response: ``{"error": {"code", "message"}}``, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from faceaudit.errors import (
    ConsentError,
    FaceAuditError,
    InputError,
    LedgerIntegrityError,
    PolicyError,
    UsageError,
)
from faceaudit.gallery.records import SubjectExistsError, SubjectNotFoundError

log = logging.getLogger("faceaudit.service")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "busy",
}


class ApiError(Exception):
    """An HTTP error with a stable machine-readable ``code`` and a message that says what to do."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field = field
        self.headers = headers or {}


def envelope(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return {"error": body}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(envelope(exc.code, exc.message, exc.field), exc.status, headers=exc.headers)


def from_domain(exc: FaceAuditError, field: str | None = None) -> ApiError:
    """The HTTP form of a library error (InputError names the field, as the CLI names the file)."""
    from faceaudit.accountable import TextRefused
    from faceaudit.operations.records import SearchNotFoundError
    from faceaudit.operations.review import ReviewRefused

    if isinstance(exc, TextRefused):
        return ApiError(422, "invalid", str(exc), field=field or exc.field)
    if isinstance(exc, ReviewRefused):
        return ApiError(exc.status, exc.code, str(exc), field=exc.field)
    from faceaudit.operations.cases import KeyNotFoundError, LastAdminKey

    if isinstance(exc, LastAdminKey):
        return ApiError(409, "last_admin_key", str(exc))
    if isinstance(exc, KeyNotFoundError):
        return ApiError(404, "key_not_found", str(exc))
    if isinstance(exc, SearchNotFoundError):
        return ApiError(404, "search_not_found", str(exc))
    if isinstance(exc, SubjectNotFoundError):
        return ApiError(404, "subject_not_found", str(exc))
    if isinstance(exc, SubjectExistsError):
        return ApiError(409, "subject_exists", str(exc))
    if isinstance(exc, InputError):
        return ApiError(422, "bad_image", str(exc), field=field or exc.path.split(" (")[0])
    if isinstance(exc, ConsentError):
        return ApiError(422, "consent", str(exc), field=field or getattr(exc, "field", None))
    if isinstance(exc, PolicyError):
        return ApiError(422, "policy", str(exc), field=field or getattr(exc, "field", None))
    if isinstance(exc, LedgerIntegrityError):
        return ApiError(409, "ledger_broken", str(exc))
    from faceaudit.gallery.crypto import GalleryKeyError
    from faceaudit.gallery.sqlite_file import GalleryIntegrityError

    if isinstance(exc, GalleryIntegrityError | GalleryKeyError):
        return ApiError(409, "gallery_integrity", str(exc))
    if isinstance(exc, UsageError):
        return ApiError(400, "bad_request", str(exc))
    return ApiError(400, "bad_request", str(exc))


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts, first_field = [], None
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "request"
        first_field = first_field or name
        parts.append(f"{name}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request", first_field


def _expects_multipart(request: Request) -> bool:
    """Whether the matched route takes files (so a body of another media type is a 415, not a 422)."""
    from fastapi import params

    dependant = getattr(request.scope.get("route"), "dependant", None)
    fields = getattr(dependant, "body_params", None) or []
    return any(isinstance(getattr(f, "field_info", None), params.File) for f in fields)


def _ledger_refused_audit(request: Request, reason: str) -> None:
    """An audit request refused for a bad field is a ledger entry, as every refused audit request is (the caller
    is known: FastAPI runs the role check before it validates the body)."""
    who = getattr(request.state, "caller", None)
    route = getattr(request.scope.get("route"), "path", "")
    if who is None or request.method != "POST" or not route.startswith("/v1/audits"):
        return
    from faceaudit.operations.cases import refuse_audit

    refuse_audit(request.app.state.service, who, {"route": route}, reason)


def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's HTTP errors (404 no route, 405) in the envelope; the console's pages answer in HTML."""
    html = getattr(request.app.state, "html_error", None)
    if html is not None and str(request.url.path).startswith(
        str(request.scope.get("root_path", "")) + "/ui/"
    ):
        return html(request, exc.status_code)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    return JSONResponse(envelope(code, message), exc.status_code, headers=getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(FaceAuditError)
    async def _domain_error(request: Request, exc: FaceAuditError) -> JSONResponse:
        return error_response(from_domain(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        ctype = request.headers.get("content-type", "")
        if _expects_multipart(request) and not ctype.lower().startswith("multipart/form-data"):
            _ledger_refused_audit(request, f"not multipart/form-data: {ctype[:60]!r}")
            return error_response(
                ApiError(
                    415,
                    "unsupported_media_type",
                    f"this route takes multipart/form-data (image files), not {ctype or 'an empty body'!r}",
                )
            )
        message, field = _validation_message(exc)
        _ledger_refused_audit(request, message)
        return error_response(ApiError(422, "invalid", message, field=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return http_error(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "-")  # the template: a path may hold a ref
        log.exception("unexpected error on %s %s", request.method, route)
        return JSONResponse(envelope("internal", "internal error; the server log has the details"), 500)
