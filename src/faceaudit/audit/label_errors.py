"""Suspected label errors, and removing images an auditor rules out (``--exclude FILE``).

A non-mated comparison (or 1:N search's best candidate) that sits far above the non-mated bulk, more than
:data:`Z` robust standard deviations (1.4826 × the median absolute deviation) above its median, is most often
the same person under two names, or two images swapped. One such pair can set the threshold at a low target, so
the report lists them (both images, score) as a warning and in ``audit.json`` (``label_check``); the auditor
decides, and may exclude images with a reason. faceaudit never relabels anything itself. The bulk of 1:1 is
estimated from each template against the next :data:`NEIGHBOURS` in manifest order (no random numbers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from faceaudit.audit.exact import dot64, score_bound, unit64
from faceaudit.audit.pairs import Manifest, read_csv
from faceaudit.errors import InputError
from faceaudit.imaging import sha256_file

Z = 6.0
"""How many robust standard deviations above the non-mated median a score must be to be listed."""
NEIGHBOURS = 64
RULE = f"non-mated score more than {Z:g} robust standard deviations (1.4826·MAD) above the non-mated median"
LISTED = 200
"""At most this many suspects are listed (all are counted)."""


def exclude_images(m: Manifest, path: str | os.PathLike | dict) -> tuple[Manifest, dict]:
    """``m`` without the images listed in ``path`` (CSV: ``path``, optional ``reason``), and what was removed.

    ``path`` may also be a report's recorded ``config.excluded`` (as ``verify-report --reproduce`` passes it)."""
    if isinstance(path, dict):
        drop = np.isin(m.frame["path"].str.strip().to_numpy(), path["paths"])
        frame = m.frame[~drop].reset_index(drop=True)
        return replace(m, frame=frame, group_index=m.group_index[~drop], subject=m.subject[~drop]), path
    df = read_csv(path, "exclude file")
    if "path" not in df.columns:
        raise InputError(
            path, "exclude file needs a 'path' column (one image to remove per row; 'reason' optional)"
        )
    listed = df["path"].str.strip().to_numpy()
    paths = m.frame["path"].str.strip().to_numpy()
    known = set(paths.tolist())
    for i, p in enumerate(listed):
        if p not in known:
            raise InputError(path, f"line {i + 2}: {p!r} is not in the manifest")
    reasons = df["reason"].str.strip() if "reason" in df.columns else None
    drop = np.isin(paths, listed)
    keep = ~drop
    frame = m.frame[keep].reset_index(drop=True)
    kept = replace(m, frame=frame, group_index=m.group_index[keep], subject=m.subject[keep])
    by_reason: dict[str, int] = {}
    for r in reasons if reasons is not None else ["(no reason given)"] * len(listed):
        by_reason[r or "(no reason given)"] = by_reason.get(r or "(no reason given)", 0) + 1
    facts = {
        "file": Path(path).name,
        "sha256": sha256_file(path),
        "images_excluded": int(drop.sum()),
        "reasons": by_reason,
        "paths": sorted(set(listed.tolist())),
    }
    return kept, facts


def bulk_threshold(scores: np.ndarray) -> float:
    """median + Z · 1.4826 · MAD of non-mated ``scores``."""
    med = float(np.median(scores))
    return med + Z * 1.4826 * float(np.median(np.abs(scores - med)))


def _listing(rows: list[dict], threshold: float | None, what: str) -> dict:
    rows.sort(key=lambda r: -r["score"])
    return {"rule": RULE, "threshold": threshold, "what": what, "count": len(rows), "listed": rows[:LISTED]}


def suspects_1n(
    top_score: np.ndarray,
    top_candidate: np.ndarray,
    mate_score: np.ndarray,
    mated: np.ndarray,
    probe_path: Sequence[str],
    probe_subject: Sequence[str],
    gallery_path: Sequence[str],
    gallery_subject: Sequence[str],
) -> dict:
    """Non-mated searches whose best candidate scores far above the non-mated searches' bulk (:data:`RULE`)."""
    if (~mated).sum() < 2:
        return _listing([], None, "non-mated searches")
    threshold = bulk_threshold(top_score[~mated])
    rows = [
        {
            "probe": str(probe_path[int(i)]),
            "probe_subject": str(probe_subject[int(i)]),
            "candidate": str(gallery_path[int(top_candidate[i])]),
            "candidate_subject": str(gallery_subject[int(top_candidate[i])]),
            "score": float(top_score[i]),
        }  # fmt: skip
        for i in np.flatnonzero(~mated & (top_score > threshold))
    ]
    return _listing(rows, threshold, "non-mated searches")


def bulk_threshold_1to1(templates: np.ndarray, subject: np.ndarray, block: int = 512) -> float | None:
    """:func:`bulk_threshold` of the non-mated comparisons of each template with the next :data:`NEIGHBOURS`
    (None with fewer than two of them): a band of the score matrix, one float64 GEMM per ``block`` rows."""
    subject = np.asarray(subject)
    u64 = unit64(templates)
    n = len(u64)
    r = np.arange(block)[:, None]
    k = np.arange(1, NEIGHBOURS + 1)[None, :]
    parts = [np.zeros(0)]
    for i0 in range(0, n, block):
        s = u64[i0 : i0 + block] @ u64[i0 : i0 + block + NEIGHBOURS].T
        rows, cols = np.broadcast_arrays(r[: len(s)], r[: len(s)] + k)
        ok = (cols < s.shape[1]) & (subject[i0 + rows] != subject[np.minimum(i0 + cols, n - 1)])
        parts.append(s[rows[ok], cols[ok]])
    scores = np.concatenate(parts)
    return bulk_threshold(scores) if len(scores) >= 2 else None


def suspects_1to1(
    templates: np.ndarray,
    subject: np.ndarray,
    paths: Sequence[str],
    subject_ids: Sequence[str],
    block: int = 2048,
    *,
    threshold: float | None = None,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Non-mated pairs far above the non-mated bulk (:data:`RULE`), scored exactly in float64.

    ``candidates`` (index pairs) are every non-mated pair that may score above ``threshold`` (as the
    comparator keeps them, :class:`~faceaudit.audit.comparator.Keep`); without them, a pass of blocked
    float32 GEMMs finds them, within the proven bound of the threshold.
    """
    subject = np.asarray(subject)
    if threshold is None:
        threshold = bulk_threshold_1to1(templates, subject)
    if threshold is None:
        return _listing([], None, "non-mated comparisons")
    u64 = unit64(templates)
    i, j = candidates if candidates is not None else _candidates(u64, threshold, block)
    i, j = np.minimum(i, j), np.maximum(i, j)
    keep = (j > i) & (subject[i] != subject[j])
    i, j = i[keep], j[keep]
    order = np.lexsort((j, i, j // block, i // block))  # the blocked pass's order (ties keep it)
    i, j = i[order], j[order]
    exact = dot64(u64, u64, i, j)
    hit = exact > threshold
    return _listing(
        _pair_rows(i[hit], j[hit], exact[hit], paths, subject_ids), threshold, "non-mated comparisons"
    )


def _candidates(u64: np.ndarray, threshold: float, block: int) -> tuple[np.ndarray, ...]:
    """Index pairs (i < j) whose float32 score lies above ``threshold`` less the proven bound (mated pairs
    included: :func:`suspects_1to1` drops them)."""
    u32 = u64.astype(np.float32)
    bound = score_bound(u32.shape[1])
    parts_i, parts_j = [np.zeros(0, np.intp)], [np.zeros(0, np.intp)]
    for r0 in range(0, len(u32), block):
        for c0 in range(r0, len(u32), block):  # the upper triangle in tiles: memory O(block²)
            s = u32[r0 : r0 + block] @ u32[c0 : c0 + block].T
            i, j = np.nonzero(s > threshold - bound)
            i, j = i + r0, j + c0
            parts_i.append(i[j > i])
            parts_j.append(j[j > i])
    return np.concatenate(parts_i), np.concatenate(parts_j)


def _pair_rows(ia, ib, scores, paths, subject_ids) -> list[dict]:
    rows = []
    for a, b, v in zip(ia, ib, scores, strict=True):
        rows.append({"image_a": str(paths[a]), "subject_a": str(subject_ids[a]), "image_b": str(paths[b]),
                     "subject_b": str(subject_ids[b]), "score": float(v)})  # fmt: skip
    return rows


def warning(check: dict) -> str | None:
    """The report's warning for a suspect listing, or None when there is none."""
    if not check.get("count"):
        return None
    first = check["listed"][0]
    a, b = (
        (first.get("probe"), first.get("candidate"))
        if "probe" in first
        else (first["image_a"], first["image_b"])
    )
    return (
        f"{check['count']} {check['what']} score far above the non-mated bulk (over {check['threshold']:.4f}, "
        f"{Z:g} robust standard deviations above its median): "
        f"possible label errors (one person under two names, or swapped images), e.g. {a} and {b} "
        f"({first['score']:.4f}); listed in audit.json (label_check). Review them; --exclude FILE (columns path, "
        "reason) removes images, and the report states what was excluded and why"
    )
