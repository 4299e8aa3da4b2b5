"""Helpers shared by the benchmark scripts: LFW loading, cached embedding, and tables."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from faceaudit.pipeline.batch import EmbedResult, embed_paths, load_templates


@contextmanager
def postgres_url(url: str | None, name: str) -> Iterator[str]:
    """``url``; without one, a new database ``name`` in a throwaway PostgreSQL cluster (``tests/pg_cluster.py``,
    Debian's server), stopped when the block ends."""
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg_cluster import start_cluster

    cluster = start_cluster()
    try:
        yield cluster.create_database(name)
    finally:
        cluster.stop()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def cached_embed(
    paths: list[str],
    root: Path,
    cache: Path,
    model: str,
    policy: str,
    workers: int,
    **model_options,
) -> tuple[EmbedResult, float]:
    """Embed ``paths`` (or load them from ``cache``); returns the result and the seconds spent embedding."""
    if cache.is_file():
        res = load_templates(cache)
        if res.policy == policy and set(paths) <= set(res.paths):
            return subset(res, paths), float("nan")
    t0 = time.perf_counter()
    done = [0]

    tty = sys.stderr.isatty()

    def tick(n: int) -> None:
        before = done[0]
        done[0] += n
        if tty:
            print(f"\r  {model}/{policy}: {done[0]}/{len(paths)} images", end="", file=sys.stderr, flush=True)
        elif done[0] * 10 // len(paths) > before * 10 // len(paths):
            print(f"  {model}/{policy}: {done[0]}/{len(paths)} images", file=sys.stderr, flush=True)

    res = embed_paths(
        paths, root, model=model, policy=policy, workers=workers, progress=tick, **model_options
    )
    print(file=sys.stderr)
    elapsed = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    res.save(cache)
    return res, elapsed


def subset(res: EmbedResult, paths: list[str]) -> EmbedResult:
    """The rows of ``res`` for ``paths``, in that order."""
    return res.take(res.rows_of(paths))


def print_table(headers: list[str], rows: list[list[object]]) -> str:
    """Print and return a GitHub-markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    text = "\n".join(lines)
    print(text)
    return text


def scores_for_pairs(res: EmbedResult, a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of path pairs; pairs with a failed side get -inf. Returns (scores, failed_mask)."""
    index = {p: i for i, p in enumerate(res.paths)}
    ia = np.array([index[p] for p in a])
    ib = np.array([index[p] for p in b])
    ok = res.ok
    failed = ~(ok[ia] & ok[ib])
    scores = (res.templates[ia] * res.templates[ib]).sum(axis=1).astype(np.float64)
    scores[failed] = -np.inf
    return scores, failed
