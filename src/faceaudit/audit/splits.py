"""The 1:N split: which subjects are enrolled and which image of each forms the gallery, recorded in full.

A split is rebuilt from its record alone (no random numbers): the gallery is the recorded images, in the
recorded order; every other image of an enrolled subject is a mated search (in manifest order), every image of
a never-enrolled subject a non-mated search. The seeded draw (:func:`split_subjects`) is only how a new split
is chosen; ``audit.json`` records its result (``identification.split.gallery``), which ``--split FILE`` and
``verify-report --reproduce`` reuse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceaudit.errors import InputError


@dataclass(frozen=True, slots=True)
class Split:
    """Indices (into the templates) of the gallery, the mated and the non-mated searches."""

    gallery: np.ndarray
    mated: np.ndarray
    mate: np.ndarray
    """For each mated search, the index *in the gallery* of its subject's enrolled image."""
    non_mated: np.ndarray
    seed: int | None
    """The seed that drew it (None: not known, e.g. a split read from a file)."""
    enrolled_fraction: float
    """The share of subjects enrolled (enrolled subjects / subjects)."""


def split_from_gallery(
    subject: np.ndarray, gallery: Sequence[int] | np.ndarray, *, seed: int | None = None
) -> Split:
    """The split whose gallery is ``gallery`` (template indices, one per enrolled subject, in this order)."""
    subject = np.asarray(subject)
    gallery = np.asarray(gallery, np.intp)
    _, code = np.unique(subject, return_inverse=True)
    slot = np.full(code.max() + 1 if len(code) else 0, -1, np.intp)
    slot[code[gallery]] = np.arange(len(gallery))
    enrolled = slot[code] >= 0
    is_gallery = np.zeros(len(subject), bool)
    is_gallery[gallery] = True
    mated_rows = np.flatnonzero(enrolled & ~is_gallery)
    order = np.argsort(
        slot[code[mated_rows]], kind="stable"
    )  # grouped by gallery entry, manifest order within
    mated = mated_rows[order]
    n_subjects = len(slot)
    return Split(
        gallery,
        mated,
        slot[code[mated]],
        np.flatnonzero(~enrolled),
        seed,
        len(gallery) / n_subjects if n_subjects else 0.0,
    )


def split_subjects(subject: np.ndarray, *, enrolled_fraction: float = 0.5, seed: int = 0) -> Split:
    """The seeded FRVT-style split of subjects into enrolled (one gallery image each) and never enrolled."""
    subject = np.asarray(subject)
    rng = np.random.default_rng(seed)
    subjects = np.unique(subject)
    order = rng.permutation(len(subjects))
    n_enrolled = int(round(enrolled_fraction * len(subjects)))
    enrolled = np.zeros(len(subjects), bool)
    enrolled[order[:n_enrolled]] = True
    code = np.searchsorted(subjects, subject)
    gallery = []
    for s in np.flatnonzero(enrolled):
        images = np.flatnonzero(code == s)
        gallery.append(images[rng.integers(0, len(images))])
    return split_from_gallery(subject, np.array(gallery, np.intp), seed=seed)


def split_record(split: Split, subject_ids: Sequence[str], paths: Sequence[str]) -> list[list[str]]:
    """``[[subject_id, gallery image path], ...]`` in gallery order: the whole split, for ``audit.json``."""
    return [[str(subject_ids[i]), str(paths[i])] for i in split.gallery]


def read_split(path: str | os.PathLike) -> list[list[str]]:
    """The recorded gallery of a split file: an ``audit.json`` (its ``identification.split.gallery``) or a
    JSON file ``{"gallery": [[subject_id, path], ...]}``."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise InputError(path, f"cannot read the split file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"split file is not JSON ({exc})") from None
    record = doc.get("identification", {}).get("split", {}) if isinstance(doc, dict) else {}
    gallery = record.get("gallery") if "identification" in doc else doc.get("gallery")
    ok = isinstance(gallery, list) and all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e) for e in gallery
    )
    if not ok or not gallery:
        raise InputError(
            path,
            "no recorded split: expected 'gallery': [[subject_id, path], ...] (or an audit.json with one)",
        )
    return gallery


def split_from_record(
    record: Sequence[Sequence[str]], subject_ids: Sequence[str], paths: Sequence[str], subject: np.ndarray,
    source: str | os.PathLike = "split", seed: int | None = None,
) -> Split:  # fmt: skip
    """Rebuild a recorded split on this manifest's templates; every recorded image must be there, under the
    recorded subject. ``seed`` is the seed that first drew it, when known."""
    where = {p: i for i, p in enumerate(paths)}
    gallery = []
    for sid, p in record:
        if p not in where:
            raise InputError(source, f"gallery image {p!r} of the recorded split is not among the templates")
        i = where[p]
        if str(subject_ids[i]) != sid:
            raise InputError(
                source, f"gallery image {p!r} is recorded for subject {sid!r} but is {subject_ids[i]!r} here"
            )
        gallery.append(i)
    if len(set(np.asarray(subject)[gallery].tolist())) != len(gallery):
        raise InputError(source, "the recorded split enrols a subject twice")
    return split_from_gallery(subject, np.array(gallery, np.intp), seed=seed)
