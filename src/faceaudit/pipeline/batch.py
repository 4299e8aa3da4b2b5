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


def embed_paths(
    paths: Sequence[str],
    root: str | os.PathLike = ".",
    *,
    model: str = "sface",
    policy: str = "central",
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    **model_options,
) -> EmbedResult:
    """Embed images (paths relative to ``root``) with ``workers`` processes. Failed rows get zero templates."""
    from faceaudit.pipeline.engine import Engine

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "--root is not a directory")
    files = [(p, str(root / p)) for p in paths]
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    engine = Engine(model, policy=policy, **model_options) if workers == 1 else None
    model_id = engine.model_id if engine else None

    def run() -> Iterator[list[tuple]]:
        if engine is not None:
            for chunk in chunks:
                yield _process_chunk(engine, chunk)
            return
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(model, policy, threads, model_options)
        ) as ex:
            yield from ex.map(_worker_chunk, chunks)

    results: list[tuple] = []
    for chunk_result in run():
        results.extend(chunk_result)
        if progress:
            progress(len(chunk_result))
    if engine is None:  # the workers had their own; the main process needs the model's id and dimension
        engine = Engine(model, policy=policy, **model_options)
        model_id = engine.model_id
    dim = engine.dim
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
    )


def is_error(status: str) -> bool:
    """True for rows that failed to decode (not ``ok`` and not ``no_face``)."""
    return status.startswith("error")


__all__ = [
    "EmbedResult",
    "embed_paths",
    "load_templates",
    "read_manifest_paths",
    "is_error",
    "FaceAuditError",
]
