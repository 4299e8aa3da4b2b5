"""LISTEN for a PostgreSQL gallery's change notices, on a connection of its own, reconnecting when it is lost.

Every write transaction that changes the gallery version sends ``NOTIFY faceaudit_gallery, '<version>'`` as it
commits (see :meth:`PostgresGalleryRepository.write`). PostgreSQL delivers a notice only to sessions that were
listening when it was sent, so a listener that loses its connection may miss some: after reconnecting it
reports a change, and the follower catches up by comparing versions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

log = logging.getLogger("faceaudit.gallery")

RECONNECT_S = 1.0
"""How long to wait before trying again after a failed connection."""


class NotifyListener:
    """A :class:`~faceaudit.gallery.repository.ChangeListener` on PostgreSQL LISTEN/NOTIFY."""

    poll_s = 30.0
    """A version check at least this often, even without notices (a safety net, not the mechanism)."""

    def __init__(self, url: str, channel: str) -> None:
        self._url = url
        self._channel = channel
        self._conn: Any = None
        self._closed = threading.Event()
        self.notices = 0
        """How many notices arrived (for tests and benchmarks)."""
        self.reconnects = 0
        """How many times the connection was made again after the first."""
        self._connected_once = False

    def _connect(self) -> Any:
        import psycopg
        from psycopg import sql

        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        return conn

    def wait(self, timeout: float) -> bool:
        """Block until a notice arrives (True) or ``timeout`` seconds pass (False). After a lost connection it
        reconnects and returns True, since notices sent meanwhile were lost."""
        import psycopg

        if self._closed.is_set():
            return False
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._connect()
            except psycopg.Error as exc:
                log.warning("gallery change listener: cannot connect (%s); retrying", exc)
                self._closed.wait(min(timeout, RECONNECT_S))
                return True
            self.reconnects += self._connected_once
            self._connected_once = True
            return True  # (re)connected: whatever happened before is caught up by version
        try:
            got = sum(1 for _ in self._conn.notifies(timeout=timeout, stop_after=1))
            if got:  # drain whatever else is already queued: one catch-up serves them all
                got += sum(1 for _ in self._conn.notifies(timeout=0))
        except psycopg.Error as exc:
            log.warning("gallery change listener: connection lost (%s); reconnecting", exc)
            self._drop()
            return True
        self.notices += got
        return got > 0

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(
                Exception
            ):  # closing a broken connection may fail; it is gone either way
                conn.close()

    def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed.set()
        self._drop()
