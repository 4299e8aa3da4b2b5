"""Manifests and score files: who is who (subjects), which group each image or comparison belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faceaudit.audit.hygiene import PAIR_COLUMNS, duplicate_rows, require_finite
from faceaudit.csvfile import FIRST_DATA_LINE, read_csv_table
from faceaudit.errors import InputError, UsageError
from faceaudit.imaging import sha256_file

UNLABELLED = -1
DEFAULT_LABEL_SOURCE = "label columns of the input, source not stated"
GROUP_SEP = "/"


file_sha256 = sha256_file
"""SHA-256 of a file's bytes (the manifest hash recorded in ``audit.json``)."""


def read_csv(path: str | os.PathLike, what: str = "CSV file") -> pd.DataFrame:
    """A CSV as strings (empty cells stay empty strings), read by :func:`faceaudit.csvfile.read_csv_table`."""
    table = read_csv_table(path, what=what)
    return pd.DataFrame(list(table.rows), columns=list(table.columns), dtype=str)


def parse_group_by(group_by: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"sex,race"`` or ``["sex", "race"]`` → ``["sex", "race"]``."""
    cols = [c.strip() for c in (group_by.split(",") if isinstance(group_by, str) else group_by)]
    cols = [c for c in cols if c]
    if not cols:
        raise UsageError("--group-by needs at least one label column, e.g. --group-by sex")
    return cols


def check_columns(df: pd.DataFrame, columns: list[str], path: object, what: str = "group column") -> None:
    """UsageError naming the unknown columns and the ones that exist."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(
            f"unknown {what}{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} in {path}; "
            f"its columns are: {', '.join(df.columns)}"
        )


def group_labels(df: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """Group index of each row (-1 when any label is empty) and the sorted group names (``a/b`` joined)."""
    values = [df[c].astype(str).str.strip().to_numpy(dtype=object) for c in columns]
    empty = np.zeros(len(df), bool)
    for v in values:
        empty |= v == ""
    names = values[0]
    for v in values[1:]:
        names = names + GROUP_SEP + v
    codes, uniques = pd.factorize(pd.Series(names, dtype=object))
    groups = sorted(set(uniques[np.unique(codes[~empty])])) if (~empty).any() else []
    lookup = np.array([groups.index(u) if u in groups else UNLABELLED for u in uniques], np.intp)
    idx = np.where(empty, UNLABELLED, lookup[codes] if len(lookup) else UNLABELLED).astype(np.intp)
    return idx, groups


def subject_codes(subject_ids: pd.Series) -> np.ndarray:
    """Integer subject code per row; an empty subject id is a person of its own (a fresh code)."""
    s = subject_ids.astype(str).str.strip().to_numpy()
    codes, _ = pd.factorize(pd.Series(s))
    codes = codes.astype(np.intp)
    empty = s == ""
    codes[empty] = codes.max(initial=-1) + 1 + np.arange(int(empty.sum()))
    return codes


def label_source(df: pd.DataFrame, columns: list[str], given: str | None = None) -> str:
    """Where the labels came from: ``given``, else a summary of ``*_label_source`` columns, else a default."""
    if given:
        return given
    src_cols = [c for c in df.columns if c.endswith("_label_source")]
    parts = []
    for c in src_cols:
        counts = df[c].astype(str).str.strip().replace("", "(blank)").value_counts()
        vals = "; ".join(f"{v} ({n})" for v, n in counts.items())
        parts.append(f"{c}: {vals}")
    return " | ".join(parts) if parts else DEFAULT_LABEL_SOURCE


@dataclass(frozen=True, slots=True)
class Manifest:
    """An audit manifest: paths, subjects and labels, with its hash."""

    path: Path
    frame: pd.DataFrame
    group_by: list[str]
    group_index: np.ndarray
    groups: list[str]
    subject: np.ndarray
    sha256: str
    label_source: str


def load_manifest(path: str | os.PathLike, group_by, *, label_source_text: str | None = None) -> Manifest:
    """Read and check a manifest with ``path``, ``subject_id`` and the ``group_by`` label columns."""
    df = read_csv(path, "manifest")
    cols = parse_group_by(group_by)
    if "path" not in df.columns:
        raise InputError(path, f"manifest has no 'path' column (columns: {', '.join(df.columns)})")
    if "subject_id" not in df.columns:
        raise InputError(
            path, "manifest has no 'subject_id' column (leave it empty for one image per person)"
        )
    check_columns(df, cols, path)
    if (df["path"].str.strip() == "").any():
        line = int(np.flatnonzero((df["path"].str.strip() == "").to_numpy())[0]) + 2
        raise InputError(path, f"line {line}: empty 'path'")
    gi, groups = group_labels(df, cols)
    return Manifest(
        path=Path(path),
        frame=df,
        group_by=cols,
        group_index=gi,
        groups=groups,
        subject=subject_codes(df["subject_id"]),
        sha256=file_sha256(path),
        label_source=label_source(df, cols, label_source_text),
    )


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """A scores CSV: one comparison a row."""

    scores: np.ndarray
    mated: np.ndarray
    group_a: np.ndarray
    group_b: np.ndarray
    groups: list[str]
    sha256: str
    label_source: str
    lines: np.ndarray
    has_pair_ids: bool = False
    n_duplicates_removed: int = 0


def load_scores(
    path: str | os.PathLike, group_by=None, *, label_source_text: str | None = None, dedupe: bool = False
) -> ScoreTable:
    """Read a scores CSV: ``score``, ``mated`` (1/0) and ``group_a``/``group_b`` or ``<label>_a``/``<label>_b``.

    With ``image_a``/``image_b`` columns a pair that comes twice (in either order) is refused, or, with
    ``dedupe``, only its first row is kept. A non-finite score is refused with its line.
    """
    df = read_csv(path, "scores file")
    lines = np.arange(FIRST_DATA_LINE, FIRST_DATA_LINE + len(df))
    has_pair_ids = all(c in df.columns for c in PAIR_COLUMNS)
    n_removed = 0
    if has_pair_ids:
        dup, earlier = duplicate_rows(
            list(df[PAIR_COLUMNS[0]].str.strip()), list(df[PAIR_COLUMNS[1]].str.strip())
        )
        n_removed = int(dup.sum())
        if n_removed and not dedupe:
            i = int(np.flatnonzero(dup)[0])
            raise InputError(
                path,
                f"line {lines[i]}: the pair ({df[PAIR_COLUMNS[0]].iloc[i]}, {df[PAIR_COLUMNS[1]].iloc[i]}) "
                f"repeats line {lines[earlier[i]]} ({n_removed} repeated rows in all; a repeated pair would "
                "count twice): remove them, or pass --dedupe to keep the first row of each pair",
            )
        df, lines = df[~dup].reset_index(drop=True), lines[~dup]
    for col in ("score", "mated"):
        if col not in df.columns:
            raise InputError(path, f"scores file has no {col!r} column (columns: {', '.join(df.columns)})")
    if group_by:
        cols = parse_group_by(group_by)
        need = [f"{c}_{s}" for c in cols for s in "ab"]
        check_columns(df, need, path, what="label column")
    elif {"group_a", "group_b"} <= set(df.columns):
        cols = ["group"]
    else:
        not_labels = {"subject", "subject_id", "path", "image", "template", "id"}
        cols = sorted(
            {c[:-2] for c in df.columns if c.endswith("_a") and f"{c[:-2]}_b" in df.columns} - not_labels
        )
        if not cols:
            raise UsageError(f"{path}: give group_a/group_b columns, or <label>_a/<label>_b with --group-by")
    raw = list(df["score"])
    scores = pd.to_numeric(df["score"].str.strip(), errors="coerce").to_numpy(np.float64)
    require_finite(path, scores, raw, lines)
    mated_txt = df["mated"].str.strip().str.lower()
    mated_map = {"1": True, "0": False, "true": True, "false": False}
    unknown = ~mated_txt.isin(list(mated_map))
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(path, f"line {lines[i]}: mated {df['mated'].iloc[i]!r} is not 1 or 0")
    side_a = df[[f"{c}_a" for c in cols]].set_axis(cols, axis=1)
    side_b = df[[f"{c}_b" for c in cols]].set_axis(cols, axis=1)
    both = pd.concat([side_a, side_b], ignore_index=True)
    gi, groups = group_labels(both, cols)
    n = len(df)
    return ScoreTable(
        scores=scores,
        mated=mated_txt.map(mated_map).to_numpy(bool),
        group_a=gi[:n],
        group_b=gi[n:],
        groups=groups,
        sha256=file_sha256(path),
        label_source=label_source(df, cols, label_source_text),
        lines=lines,
        has_pair_ids=has_pair_ids,
        n_duplicates_removed=n_removed,
    )
