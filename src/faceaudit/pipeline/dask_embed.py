"""Embedding on a Dask cluster: each worker process loads the model once and embeds chunks of images.

The client reads each image's bytes and sends them with the task, so workers need no shared file system; a file
the client cannot read becomes an error row, as in :func:`~faceaudit.pipeline.batch.embed_paths`. Rows come
back in the manifest's order, in the same :class:`~faceaudit.pipeline.batch.EmbedResult`.

``address`` is a scheduler address or ``local:N`` (see :func:`faceaudit.dask_cluster.dask_client`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faceaudit.dask_cluster import completed, dask_client
from faceaudit.errors import InputError, UsageError
from faceaudit.imaging import read_source
from faceaudit.pipeline.batch import _process_chunk
from faceaudit.pipeline.results import BatchRow, EmbedResult

CHUNK = 32
"""Images per task."""

_ENGINES: dict[tuple, Any] = {}
"""The engines loaded in this (worker) process, by (model, policy, options)."""


def _engine(model: str, policy: str, options: tuple) -> Any:
    key = (model, policy, options)
    if key not in _ENGINES:
        from faceaudit.pipeline.engine import Engine

        _ENGINES[key] = Engine(model, policy=policy, **dict(options))
    return _ENGINES[key]


def _embed_chunk(
    model: str, policy: str, options: tuple, files: Sequence[tuple[str, bytes]]
) -> list[BatchRow]:
    return _process_chunk(_engine(model, policy, options), files)


def _engine_info(model: str, policy: str, options: tuple) -> tuple[str, int, str]:
    e = _engine(model, policy, options)
    return e.model_id, e.dim, e.runtime


def embed_paths_dask(
    paths: Sequence[str],
    root: str | os.PathLike = ".",
    *,
    address: str | None = None,
    client: Any = None,
    model: str = "sface",
    policy: str = "central",
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    **model_options: Any,
) -> EmbedResult:
    """:func:`~faceaudit.pipeline.batch.embed_paths` on a Dask cluster (give ``client`` or ``address``)."""
    if client is None:
        if address is None:
            raise UsageError("embed_paths_dask needs a Dask client or a scheduler address")
        with dask_client(address) as c:
            return embed_paths_dask(
                paths,
                root,
                client=c,
                model=model,
                policy=policy,
                chunk=chunk,
                progress=progress,
                **model_options,
            )
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "--root is not a directory")
    options = tuple(sorted(model_options.items()))
    results: list[BatchRow | None] = [None] * len(paths)
    futures = {}
    for a in range(0, len(paths), chunk):
        files, where = [], []
        for i in range(a, min(a + chunk, len(paths))):
            try:
                files.append((paths[i], read_source(root / paths[i], name=paths[i])[0]))
                where.append(i)
            except InputError as exc:
                results[i] = BatchRow("error", reason=exc.reason)
        if files:
            futures[client.submit(_embed_chunk, model, policy, options, files, pure=False)] = where
    info = client.submit(_engine_info, model, policy, options, pure=False)
    for future, rows in completed(client, futures):
        for i, row in zip(futures[future], rows, strict=True):
            results[i] = row
        if progress:
            progress(len(rows))
        future.release()
    model_id, dim, runtime = info.result()
    done = [row for row in results if row is not None]
    assert len(done) == len(paths)  # every image has its row: a read error's or its chunk's
    return EmbedResult.from_rows(
        paths, done, dim=dim, model_id=model_id, policy=policy, runtime=f"{runtime} (dask)"
    )
