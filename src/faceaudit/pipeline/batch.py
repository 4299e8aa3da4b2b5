"""Embed every image of a manifest into one ``.npz`` file. One bad image never stops the batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from faceaudit.csvfile import read_csv_table
from faceaudit.errors import InputError, NoFaceError, UsageError
from faceaudit.pipeline.results import NPZ_FORMAT, BatchRow, EmbedResult, load_templates

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from faceaudit.pipeline.engine import Engine

CHUNK = 32
"""Images handed to a worker at a time (their crops are embedded as one batch)."""


def read_manifest_paths(manifest: str | os.PathLike, column: str = "path") -> list[str]:
    """The ``path`` column of a CSV manifest, in order (every cell must be filled)."""
    table = read_csv_table(manifest, what="manifest")
    table.require(column, what="manifest")
    paths = []
    for line, row in table.numbered():
        value = row[column].strip()
        if not value:
            raise InputError(manifest, f"line {line}: empty {column!r}")
        paths.append(value)
    return paths


# --- worker side -------------------------------------------------------------------------------------------

_WORKER_ENGINE: Engine | None = None


def _init_worker(model: str, policy: str, threads: int | None, options: dict) -> None:
    global _WORKER_ENGINE
    from faceaudit.pipeline.engine import Engine

    if threads:
        options = {**options, "threads": threads}
    _WORKER_ENGINE = Engine(model, policy=policy, **options)


def _worker_info() -> tuple[str, int, str]:
    assert _WORKER_ENGINE is not None  # set by _init_worker, the pool's initializer
    return _WORKER_ENGINE.model_id, _WORKER_ENGINE.dim, _WORKER_ENGINE.runtime


def _prepare_chunk(engine, files: Sequence[tuple[str, str | bytes]]) -> tuple[list, list[BatchRow]]:
    """Decode, detect and align each (label, full path or encoded image) pair: the aligned crops of the images
    with a face, and one :class:`BatchRow` per pair (``ok`` rows still without their template)."""
    crops, found = [], []
    for label, full in files:
        try:
            image = engine.load(full)
            crop, _, quality, n = engine.prepare(image, label)
            crops.append(crop)
            found.append(BatchRow("ok", n, None, quality))
        except NoFaceError:
            found.append(BatchRow("no_face"))
        except InputError as exc:
            found.append(BatchRow("error", reason=exc.reason))
        except Exception as exc:  # one bad image never stops the batch
            found.append(BatchRow("error", reason=f"{type(exc).__name__}: {exc}"))
    return crops, found


def _embed_prepared(engine, prepared: tuple[list, list[BatchRow]]) -> list[BatchRow]:
    """The rows of :func:`_prepare_chunk` with their templates: the crops go through the embedder as one batch,
    and each template goes back to its own row, in order."""
    crops, found = prepared
    vecs = iter(engine.embed_crops(crops)) if crops else iter(())
    return [replace(row, template=next(vecs)) if row.outcome == "ok" else row for row in found]


def _process_chunk(engine, files: Sequence[tuple[str, str | bytes]]) -> list[BatchRow]:
    """One :class:`BatchRow` per (label, full path or encoded image) pair; the chunk's crops are embedded as one
    batch."""
    return _embed_prepared(engine, _prepare_chunk(engine, files))


def _pipelined(engine, chunks: Sequence[Sequence[tuple[str, str]]]) -> Iterator[list[BatchRow]]:
    """:func:`_process_chunk` over ``chunks``, in order, with the next chunk decoded, detected and aligned on a
    second thread while this one embeds the current chunk (both runtimes release the GIL while they compute)."""
    from concurrent.futures import ThreadPoolExecutor

    if not chunks:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="faceaudit-detect") as detect:
        ahead = detect.submit(_prepare_chunk, engine, chunks[0])
        for following in [*chunks[1:], None]:
            prepared = ahead.result()
            if following is not None:
                ahead = detect.submit(_prepare_chunk, engine, following)
            yield _embed_prepared(engine, prepared)


def _worker_chunk(files: Sequence[tuple[str, str]]) -> list[BatchRow]:
    return _process_chunk(_WORKER_ENGINE, files)


class WorkerPool:
    """Worker processes, each holding its own loaded engine, reusable across :func:`embed_paths` calls.

    A long-running program (a service, a notebook embedding many batches) keeps one pool so that the models
    are loaded once per worker, not once per call. Workers are forked, unless this process already runs
    OpenVINO (whose thread pool does not survive ``fork()`` safely): then they start from a clean
    ``forkserver`` process, which, like ``spawn``, needs the ``if __name__ == "__main__":`` guard in a script.
    Each worker computes with ``threads`` threads (default: cores ÷ workers). Use it as a context manager, or
    call :meth:`close`.
    """

    def __init__(
        self,
        workers: int,
        *,
        model: str = "sface",
        policy: str = "central",
        threads: int | None = None,
        **model_options,
    ) -> None:
        import multiprocessing

        if workers < 1:
            raise UsageError("--workers must be at least 1")
        self.workers, self.model, self.policy = workers, model, policy
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        from faceaudit.models.forward import openvino_started

        methods = multiprocessing.get_all_start_methods()
        ctx: BaseContext
        if "fork" in methods and not openvino_started():
            ctx = multiprocessing.get_context("fork")
        elif "forkserver" in methods:
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(["faceaudit.pipeline.engine"])
            ctx = server
        else:
            ctx = multiprocessing.get_context()
        self.start_method = ctx.get_start_method()
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(model, policy, threads, model_options),
        )
        self._info: tuple[str, int, str] | None = None

    def info(self) -> tuple[str, int, str]:
        """The workers' model id, template dimension and runtime (waits until a worker has loaded its model)."""
        if self._info is None:
            self._info = self._executor.submit(_worker_info).result()
        return self._info

    def warm(self, sample: Sequence[str | os.PathLike] = (), timeout: float = 300.0) -> WorkerPool:
        """Start every worker and load its model now, rather than on the first batch.

        ``sample``: a few image paths that every worker processes once (results discarded), so that work done
        on first sight of an image size (YuNet's fixed-shape graph) is done before the real batch.
        """
        import time

        files = [(str(p), str(p)) for p in sample]
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while len(seen) < self.workers and time.monotonic() < deadline:
            seen.update(self._executor.map(_warm_worker, [files] * self.workers))
        self.info()
        return self

    def map(self, chunks: Sequence[Sequence[tuple[str, str]]]) -> Iterator[list[BatchRow]]:
        return self._executor.map(_worker_chunk, chunks)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_WARMED = False


def _warm_worker(files: Sequence[tuple[str, str]]) -> int:
    global _WARMED
    import time

    if not _WARMED:
        _process_chunk(_WORKER_ENGINE, files)
        _WARMED = True
    time.sleep(0.05)  # long enough that the other workers, once loaded, take some of these too
    return os.getpid()


def _chunks(files: list, workers: int) -> list[list]:
    """Chunks of at most CHUNK files, small enough that every worker gets several (load balance)."""
    size = max(1, min(CHUNK, -(-len(files) // (4 * workers)))) if workers > 1 else CHUNK
    return [files[i : i + size] for i in range(0, len(files), size)]


def embed_paths(
    paths: Sequence[str],
    root: str | os.PathLike = ".",
    *,
    model: str = "sface",
    policy: str = "central",
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    pool: WorkerPool | None = None,
    **model_options,
) -> EmbedResult:
    """Embed images (paths relative to ``root``) with ``workers`` processes. Failed rows get zero templates.

    ``pool`` reuses a :class:`WorkerPool` (its model, policy and workers then apply); otherwise a pool is
    started for this call when ``workers`` > 1, and the work runs in this process when ``workers`` is 1: there
    a second thread decodes, detects and aligns the next chunk while the current one is embedded (36.3 against
    44.3 ms an image with ``threads=1`` on 2 cores; docs/benchmarks.md, "Batched embedding").
    """
    from faceaudit.pipeline.engine import Engine

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "--root is not a directory")
    files = [(p, str(root / p)) for p in paths]
    if pool is not None:
        if model_options:
            raise UsageError(
                f"give model options to the WorkerPool, not with pool=: {', '.join(model_options)}"
            )
        model, policy, workers = pool.model, pool.policy, pool.workers
    chunks = _chunks(files, workers)
    results: list[BatchRow] = []

    def collect(chunk_results: Iterator[list[BatchRow]]) -> None:
        for chunk_result in chunk_results:
            results.extend(chunk_result)
            if progress:
                progress(len(chunk_result))

    if pool is None and workers == 1:
        engine = Engine(model, policy=policy, **model_options)
        collect(_pipelined(engine, chunks))
        model_id, dim, runtime = engine.model_id, engine.dim, engine.runtime
    elif pool is not None:
        collect(pool.map(chunks))
        model_id, dim, runtime = pool.info()
    else:
        with WorkerPool(workers, model=model, policy=policy, **model_options) as own:
            collect(own.map(chunks))
            model_id, dim, runtime = own.info()
    return EmbedResult.from_rows(paths, results, dim=dim, model_id=model_id, policy=policy, runtime=runtime)


__all__ = [
    "BatchRow",
    "EmbedResult",
    "NPZ_FORMAT",
    "WorkerPool",
    "embed_paths",
    "load_templates",
    "read_manifest_paths",
]
