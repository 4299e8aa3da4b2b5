"""Refusals of requests without a live key, per client address: a rate limit (429 past it) and a ledger summary.

Anonymous traffic must not grow the ledger without bound, nor compete with real writes. Per client address and
minute, the first refusal of a request without a known key is one full ledger entry, and the rest of that
minute's refusals from the address (401s and the 429s past the limit) are counted and written as one summary
entry when the minute is over (seen at the next refusal from anyone, or when the server stops). So anonymous
traffic adds at most two entries per address and minute. Refusals of a known key (revoked, expired, wrong
secret) stay one entry each, until the address passes its limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SUMMARY_ROUTE = "*"


@dataclass(slots=True)
class _Window:
    minute: int
    refused: int = 0
    rate_limited: int = 0
    routes: set[str] = field(default_factory=set)


class AddressRefusals:
    """A token bucket of refusals per client address (``count`` per ``per`` seconds) and the minute summaries.

    ``record(params)`` writes one anonymous ``access_denied`` ledger entry; ``clock`` gives seconds (tests)."""

    def __init__(
        self,
        record: Callable[[dict[str, Any]], Any],
        count: int = 60,
        per: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._record = record
        self.count, self.per = count, per
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def over_limit(self, address: str) -> int | None:
        """Take one token for a refusal from ``address``: None within the limit, else the seconds to wait."""
        now = self._clock()
        rate = self.count / self.per
        with self._lock:
            tokens, last = self._buckets.get(address, (float(self.count), now))
            tokens = min(float(self.count), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[address] = (tokens, now)
                return max(1, int((1.0 - tokens) / rate + 0.999))
            self._buckets[address] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget full buckets: they are the same as new ones
                self._buckets = {a: b for a, b in self._buckets.items() if b[0] < self.count}
            return None

    def refused(self, address: str, params: dict[str, Any], *, rate_limited: bool = False) -> bool:
        """Count one refusal from ``address``; True when it is the minute's first 401 without a known key, to
        be ledgered in full by the caller (the others, and every 429, are summarised)."""
        minute = int(self._clock() // 60)
        due: list[tuple[str, _Window]] = []
        with self._lock:
            due = [(a, w) for a, w in self._windows.items() if w.minute < minute]
            for a, _ in due:
                del self._windows[a]
            window = self._windows.get(address)
            first = window is None and not rate_limited
            if window is None:
                window = self._windows[address] = _Window(minute)
            if not first:
                if rate_limited:
                    window.rate_limited += 1
                else:
                    window.refused += 1
                window.routes.add(str(params.get("route", "-")))
        for a, w in due:
            self._summarise(a, w)
        return first

    def flush(self) -> None:
        """Write every open minute's summary (the server is stopping)."""
        with self._lock:
            due, self._windows = list(self._windows.items()), {}
        for a, w in due:
            self._summarise(a, w)

    def _summarise(self, address: str, window: _Window) -> None:
        n = window.refused + window.rate_limited
        if n == 0:
            return
        start = datetime.fromtimestamp(window.minute * 60, UTC).strftime("%Y-%m-%dT%H:%MZ")
        self._record(
            {
                "route": SUMMARY_ROUTE,
                "status": 401,
                "reason": f"{n} more request(s) without a live key refused from {address} in the minute "
                f"from {start}",
                "client": address,
                "minute": start,
                "refused": window.refused,
                "rate_limited": window.rate_limited,
                "routes": sorted(window.routes)[:20],
            }
        )
