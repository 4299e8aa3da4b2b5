"""Embed every image of a manifest into one ``.npz`` file. One bad image never stops the batch."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceaudit.errors import FaceAuditError, InputError, NoFaceError, UsageError

CHUNK = 32
"""Images handed to a worker at a time (their crops are embedded as one batch)."""

NPZ_FORMAT = "faceaudit.templates/1"


@dataclass(slots=True)
class EmbedResult:
    """Per-image results of a batch, aligned with ``paths``."""

    paths: list[str]
    templates: np.ndarray
    status: list[str]
    n_faces: np.ndarray
    detector_score: np.ndarray
    inter_eye_px: np.ndarray
    sharpness: np.ndarray
    yaw: np.ndarray
    model_id: str
    policy: str
    runtime: str = ""
    """Where detection and embedding ran (e.g. ``detector=openvino-f32 embedder=openvino-bf16``)."""

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == "ok" for s in self.status], dtype=bool)

    def save(self, out: str | os.PathLike) -> None:
        """Write the npz (atomically: a partial file never replaces a good one)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez(
            tmp,
            templates=self.templates.astype(np.float32),
            path=np.array(self.paths, dtype=str),
            status=np.array(self.status, dtype=str),
            n_faces=self.n_faces.astype(np.int32),
            detector_score=self.detector_score.astype(np.float32),
            inter_eye_px=self.inter_eye_px.astype(np.float32),
            sharpness=self.sharpness.astype(np.float32),
            yaw=self.yaw.astype(np.float32),
            model_id=np.array(self.model_id),
            policy=np.array(self.policy),
            runtime=np.array(self.runtime),
            format=np.array(NPZ_FORMAT),
        )
        os.replace(tmp, out)


def load_templates(path: str | os.PathLike) -> EmbedResult:
    """Read an npz written by :func:`embed_paths` / ``faceaudit embed``."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a faceaudit templates file ({exc})") from None
    with z:
        missing = {"templates", "path", "status", "n_faces", "model_id", "policy"} - set(z.files)
        if missing:
            raise InputError(path, f"templates file lacks arrays: {', '.join(sorted(missing))}")
        n = len(z["path"])

        def opt(name: str) -> np.ndarray:
            return z[name] if name in z.files else np.full(n, np.nan, np.float32)

        return EmbedResult(
            paths=[str(p) for p in z["path"]],
            templates=z["templates"].astype(np.float32),
            status=[str(s) for s in z["status"]],
            n_faces=z["n_faces"].astype(np.int32),
            detector_score=opt("detector_score"),
            inter_eye_px=opt("inter_eye_px"),
            sharpness=opt("sharpness"),
            yaw=opt("yaw"),
            model_id=str(z["model_id"]),
            policy=str(z["policy"]),
            runtime=str(z["runtime"]) if "runtime" in z.files else "",
        )


def read_manifest_paths(manifest: str | os.PathLike, column: str = "path") -> list[str]:
    """The ``path`` column of a CSV manifest, in order."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise InputError(
                    manifest, f"manifest has no {column!r} column (columns: {reader.fieldnames})"
                )
            paths = []
            for line, row in enumerate(reader, start=2):
                value = (row.get(column) or "").strip()
                if not value:
                    raise InputError(manifest, f"line {line}: empty {column!r}")
                paths.append(value)
    except FileNotFoundError:
        raise InputError(manifest, "manifest file not found") from None
    except UnicodeDecodeError:
        raise InputError(manifest, "manifest is not UTF-8 text") from None
    return paths


# --- worker side -------------------------------------------------------------------------------------------

_WORKER_ENGINE = None


def _init_worker(model: str, policy: str, threads: int | None, options: dict) -> None:
    global _WORKER_ENGINE
    from faceaudit.pipeline.engine import Engine

    if threads:
        options = {**options, "threads": threads}
    _WORKER_ENGINE = Engine(model, policy=policy, **options)


def _worker_info() -> tuple[str, int, str]:
    return _WORKER_ENGINE.model_id, _WORKER_ENGINE.dim, _WORKER_ENGINE.runtime


def _process_chunk(engine, files: Sequence[tuple[str, str]]) -> list[tuple]:
    """Return per-file (status, n_faces, template|None, quality tuple) for (label, fullpath) pairs."""
    crops, rows = [], []
    for label, full in files:
        try:
            image = engine.load(full)
            crop, face, q, n = engine.prepare(image, label)
            crops.append(crop)
            rows.append(["ok", n, len(crops) - 1, (q.detector_score, q.inter_eye_px, q.sharpness, q.yaw)])
        except NoFaceError:
            rows.append(["no_face", 0, None, None])
        except InputError as exc:
            rows.append([f"error: {exc.reason}", 0, None, None])
        except Exception as exc:  # one bad image never stops the batch
            rows.append([f"error: {type(exc).__name__}: {exc}", 0, None, None])
    vecs = engine.embed_crops(crops) if crops else None
    out = []
    for status, n, idx, q in rows:
        out.append((status, n, None if idx is None else vecs[idx], q))
    return out


def _worker_chunk(files: Sequence[tuple[str, str]]) -> list[tuple]:
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
        if "fork" in methods and not openvino_started():
            ctx = multiprocessing.get_context("fork")
        elif "forkserver" in methods:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["faceaudit.pipeline.engine"])
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

    def map(self, chunks: Sequence[Sequence[tuple[str, str]]]) -> Iterator[list[tuple]]:
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
    started for this call when ``workers`` > 1, and the work runs in this process when ``workers`` is 1.
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
    results: list[tuple] = []

    def collect(chunk_results: Iterator[list[tuple]]) -> None:
        for chunk_result in chunk_results:
            results.extend(chunk_result)
            if progress:
                progress(len(chunk_result))

    if pool is None and workers == 1:
        engine = Engine(model, policy=policy, **model_options)
        collect(_process_chunk(engine, chunk) for chunk in chunks)
        model_id, dim, runtime = engine.model_id, engine.dim, engine.runtime
    elif pool is not None:
        collect(pool.map(chunks))
        model_id, dim, runtime = pool.info()
    else:
        with WorkerPool(workers, model=model, policy=policy, **model_options) as own:
            collect(own.map(chunks))
            model_id, dim, runtime = own.info()
    templates = np.zeros((len(files), dim), np.float32)
    quals = np.full((len(files), 4), np.nan, np.float32)
    for i, (_, _, vec, q) in enumerate(results):
        if vec is not None:
            templates[i] = vec
            quals[i] = q
    return EmbedResult(
        paths=list(paths),
        templates=templates,
        status=[r[0] for r in results],
        n_faces=np.array([r[1] for r in results], np.int32),
        detector_score=quals[:, 0],
        inter_eye_px=quals[:, 1],
        sharpness=quals[:, 2],
        yaw=quals[:, 3],
        model_id=model_id,
        policy=policy,
        runtime=runtime,
    )


def is_error(status: str) -> bool:
    """True for rows that failed to decode (not ``ok`` and not ``no_face``)."""
    return status.startswith("error")


__all__ = [
    "EmbedResult",
    "WorkerPool",
    "embed_paths",
    "load_templates",
    "read_manifest_paths",
    "is_error",
    "FaceAuditError",
]
