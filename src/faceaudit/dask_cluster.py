"""Dask clients for the distributed commands (``--dask ADDRESS`` or ``--dask local:N``).

dask.distributed is optional: ``pip install 'faceaudit[dask]'``. A ``local:N`` cluster binds to 127.0.0.1 only
and is stopped when the block ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

from faceaudit.errors import FaceAuditError, UsageError

LOCAL_PREFIX = "local:"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError("--dask needs dask.distributed: pip install 'faceaudit[dask]'") from None
    return distributed


@contextlib.contextmanager
def dask_client(address: str, *, timeout: float = 30) -> Iterator[Any]:
    """A connected ``distributed.Client`` for ``address`` (``local:N`` starts a LocalCluster on 127.0.0.1);
    ``timeout`` is how long to wait for a scheduler, in seconds."""
    distributed = _distributed()
    if address.startswith(LOCAL_PREFIX):
        try:
            n = int(address[len(LOCAL_PREFIX) :])
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"--dask {address!r}: give local:N with N >= 1 workers, or a scheduler address")
        with (
            distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # a free port on loopback (never 8787 on all interfaces)
                silence_logs=40,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"--dask {address!r}: cannot reach the Dask scheduler ({exc})") from None
    with client:
        yield client


class DaskTaskError(FaceAuditError):
    """A Dask task failed or was cancelled (a worker died, or data it needed was lost)."""


def scatter_once(client: Any, data: Any) -> Any:
    """``data`` on every worker, once, under a key of its own.

    Never under a content hash (Dask's default): a second call with equal data would reuse the first call's key
    while the scheduler may still be releasing it, and its tasks would find the data gone.
    """
    return client.scatter(data, broadcast=True, hash=False)


def completed(client: Any, futures: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """``(future, result)`` as each task finishes; a failed or cancelled task raises :class:`DaskTaskError`
    and the tasks not yet finished are cancelled."""
    futures = list(futures)
    try:
        for future, result in _distributed().as_completed(futures, with_results=True):
            if isinstance(result, BaseException):  # as_completed hands back a cancellation instead of raising
                raise DaskTaskError(
                    f"Dask task {future.key} did not finish: {type(result).__name__}: {result}"
                )
            yield future, result
    except DaskTaskError:
        client.cancel(futures)
        raise
    except Exception as exc:
        client.cancel(futures)
        raise DaskTaskError(f"a Dask task failed: {type(exc).__name__}: {exc}") from exc


def worker_memory(client: Any) -> dict[str, dict[str, int]]:
    """Each worker's current and peak resident memory in bytes (Linux ``VmRSS``/``VmHWM``)."""

    def read() -> dict[str, int]:
        out = {}
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
        return out

    return client.run(read)
