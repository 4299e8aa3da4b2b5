"""Console sessions: an API key pasted once becomes a server-side session behind an HttpOnly cookie.

Sessions live in the server's memory and end on sign-out, on expiry, or when the key behind them is revoked or
expires (the key is checked again on every request). Each session has its own CSRF token.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "faceaudit_session"


@dataclass(slots=True)
class Session:
    key_id: str
    csrf: str
    expires_at: float
    carry: dict[str, Any] = field(default_factory=dict)
    """What the next page shows once (after a POST, the redirect's target): a message, a verdict."""


class SessionStore:
    """Random session tokens → the key they were opened with and a CSRF token; nothing else is kept."""

    def __init__(self, minutes: int = 480) -> None:
        self.seconds = minutes * 60
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, key_id: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(key_id, secrets.token_urlsafe(32), time.time() + self.seconds)
        with self._lock:
            now = time.time()
            self._sessions = {t: s for t, s in self._sessions.items() if s.expires_at > now}
            self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires_at <= time.time():
                del self._sessions[token]
                return None
        return session

    def close(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)
