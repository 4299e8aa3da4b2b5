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


def suspects_1to1(
    templates: np.ndarray,
    subject: np.ndarray,
    paths: Sequence[str],
    subject_ids: Sequence[str],
    block: int = 2048,
) -> dict:
    """Non-mated pairs far above the non-mated bulk (:data:`RULE`; float64 scores: blocked float32 GEMM, exact
    re-scoring within the proven bound of the threshold)."""
    subject = np.asarray(subject)
    u64 = unit64(templates)
    n = len(u64)
    ia = np.repeat(np.arange(n), NEIGHBOURS)
    ib = ia + np.tile(np.arange(1, NEIGHBOURS + 1), n)
    keep = ib < n
    ia, ib = ia[keep], ib[keep]
    keep = subject[ia] != subject[ib]
    if keep.sum() < 2:
        return _listing([], None, "non-mated comparisons")
    threshold = bulk_threshold(dot64(u64, u64, ia[keep], ib[keep]))
    u32 = u64.astype(np.float32)
    bound = score_bound(u32.shape[1])
    rows = []
    for r0 in range(0, len(u32), block):
        for c0 in range(r0, len(u32), block):  # the upper triangle in tiles: memory O(block²)
            s = u32[r0 : r0 + block] @ u32[c0 : c0 + block].T
            i, j = np.nonzero(s > threshold - bound)
            i, j = i + r0, j + c0
            keep = (j > i) & (subject[i] != subject[j])
            i, j = i[keep], j[keep]
            exact = dot64(u64, u64, i, j)
            hit = exact > threshold
            rows += _pair_rows(i[hit], j[hit], exact[hit], paths, subject_ids)
    return _listing(rows, threshold, "non-mated comparisons")


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
