"""Keep a long-running process's search index in step with a gallery that other processes also change.

A service replica holds its own in-memory index. :class:`IndexFollower` runs one background thread that waits on
the store's change listener (PostgreSQL LISTEN/NOTIFY; a half-second poll on SQLite) and, on every notice and
at least every ``poll_s`` seconds, catches the index up by version (``Gallery.sync_index``). After a lost
connection it reconnects and catches up the same way, so no change is missed for good.

The follower makes other replicas' changes visible within a notice's round trip instead of at the next search.
It is not what makes erasure safe: every search still checks the gallery version first and catches up, and
candidates are read back from the store, so an erased subject is never returned once its erasure has answered.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faceaudit.gallery.gallery import Gallery
    from faceaudit.gallery.repository import ChangeListener

log = logging.getLogger("faceaudit.gallery")


class IndexFollower:
    """A background thread that catches ``gallery``'s index up after other processes' changes.

    ``lock`` is held around each catch-up (the service's gallery lock, since one gallery connection serves one
    call at a time).
    """

    def __init__(self, gallery: Gallery, lock: AbstractContextManager | None = None) -> None:
        self._gallery = gallery
        self._lock = lock if lock is not None else nullcontext()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: ChangeListener | None = None
        self.catch_ups = 0
        """How many catch-ups changed the index."""
        self.errors = 0

    def start(self) -> IndexFollower:
        """Start following (idempotent); returns self."""
        if self._thread is None:
            self._listener = self._gallery.change_listener()
            self._thread = threading.Thread(target=self._run, name="faceaudit-index-follower", daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the listener."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _run(self) -> None:
        listener = self._listener
        assert listener is not None
        next_check = 0.0  # catch up at once: changes may have landed since the index was built
        while not self._stop.is_set():
            notice = listener.wait(min(0.5, max(0.0, next_check - time.monotonic())))
            if self._stop.is_set():
                return
            if notice or time.monotonic() >= next_check:
                self.sync()
                next_check = time.monotonic() + listener.poll_s

    def sync(self) -> tuple[int, int]:
        """One catch-up now, under the lock; errors are logged and counted, never raised (the next search
        catches up on its own)."""
        try:
            with self._lock:
                added, removed = self._gallery.sync_index()
        except Exception as exc:  # noqa: BLE001 - a follower must outlive a store hiccup
            self.errors += 1
            log.warning("index follower: catch-up failed (%s); the next search catches up instead", exc)
            self._stop.wait(1.0)
            return 0, 0
        if added or removed:
            self.catch_ups += 1
            log.info("index follower: +%d / -%d templates", added, removed)
        return added, removed
