"""The bounded inference pool: ``workers`` threads (one per core by default) and a short queue, then 503."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from faceaudit.service.errors import ApiError

T = TypeVar("T")


class InferencePool:
    """Run blocking work (decode, detect, embed, gallery calls) on ``workers`` threads.

    At most ``workers + queue`` jobs are admitted at once; one more is refused at once with 503 and a
    ``Retry-After`` header instead of waiting without bound. The models release the GIL, so threads share
    the loaded models and run in parallel on the cores.
    """

    def __init__(self, workers: int | None = None, queue: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.queue = self.workers if queue is None else max(0, queue)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="faceaudit-infer")
        self._slots = threading.BoundedSemaphore(self.workers + self.queue)
        self.retry_after = 1

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a pool thread; ApiError 503 when the pool and its queue are full."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(
                503,
                "busy",
                f"all {self.workers} inference workers and {self.queue} queue places are taken; retry shortly",
                headers={"Retry-After": str(self.retry_after)},
            )
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
