"""Request limits: the upload size limit (413) and each key's rate limit (429)."""

from __future__ import annotations

import json
import threading
import time

from fastapi import HTTPException

from faceaudit.service.errors import ApiError, envelope


class RateLimiter:
    """A token bucket per key: ``count`` requests per ``per`` seconds, refilled continuously."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str, count: int, per: float) -> None:
        """Take one token from the key's bucket; ApiError 429 (with Retry-After) when it is empty."""
        now = time.monotonic()
        rate = count / per
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(count), now))
            tokens = min(float(count), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = max(1, int((1.0 - tokens) / rate + 0.999))
                raise ApiError(
                    429,
                    "rate_limited",
                    f"this key may make {count} requests per {per:g} s; retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            self._buckets[key_id] = (tokens - 1.0, now)


class UploadLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read (Content-Length) or as soon
    as it passes the limit (chunked bodies)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is over the upload limit of {self.max_bytes:,} bytes"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._reject(send)

    async def _reject(self, send) -> None:
        body = json.dumps(envelope("too_large", self._message())).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["ApiError", "RateLimiter", "UploadLimit"]
