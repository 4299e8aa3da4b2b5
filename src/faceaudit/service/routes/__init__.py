"""The ``/v1`` routers, one per area, and what they share: uploads and the error responses they declare."""

from __future__ import annotations

from typing import Any

from fastapi import UploadFile

from faceaudit.operations.cases import Upload
from faceaudit.service.errors import ApiError
from faceaudit.service.schemas import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "bad request"),
        (401, "missing, unknown, expired or revoked key"),
        (403, "the key lacks the role"),
        (404, "not found"),
        (409, "conflict"),
        (413, "upload over the limit"),
        (415, "wrong media type"),
        (422, "invalid field or bad image"),
        (429, "rate limit exceeded"),
        (503, "inference pool full; retry after Retry-After seconds"),
    )
}
"""Every status a ``/v1`` route may answer besides success, with the error envelope."""

_IMAGE_TYPES = ("image/", "application/octet-stream")


async def read_upload(file: UploadFile, field: str) -> Upload:
    """An uploaded part as bytes, labelled ``field (filename)``; 415 when it declares a non-image type."""
    ctype = (file.content_type or "").lower()
    label = f"{field} ({file.filename})" if file.filename else field
    if ctype and not ctype.startswith(_IMAGE_TYPES):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{label}: media type {ctype!r} is not an image (send JPEG, PNG, WebP, BMP, PGM/PPM or TIFF)",
            field=field,
        )
    return Upload(await file.read(), label, field)
