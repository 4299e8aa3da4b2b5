"""1:N input from another system: a candidate-list CSV, audited like ``audit-identification``'s searches.

One row per returned candidate: ``search_id``, ``mated`` (1 when the searched person is enrolled), ``rank``,
``score``, ``is_mate`` (1 when the candidate is the searched person), and the groups of the probe and of the
candidate: ``probe_group``/``candidate_group``, or ``probe_<label>``/``candidate_<label>`` with ``--group-by``.
A search that returned nothing has one row with empty ``rank`` and ``score``. A mate missing from the list
counts as not found at any rank.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from faceaudit.audit.identification import (
    DEFAULT_RANK,
    DEFAULT_TARGETS,
    IdentificationResult,
    Searches,
    identification_rates,
)
from faceaudit.audit.pairs import check_columns, group_labels, label_source, parse_group_by, read_csv
from faceaudit.errors import InputError

SEARCH_COLUMNS = ("search_id", "mated", "rank", "score", "is_mate")


def is_candidate_list(path: str | os.PathLike) -> bool:
    """True when the CSV's header has a ``search_id`` column."""
    with open(path, encoding="utf-8-sig") as fh:
        return "search_id" in [c.strip() for c in fh.readline().split(",")]


def _flag(path, df: pd.DataFrame, col: str) -> np.ndarray:
    txt = df[col].str.strip().str.lower()
    bad = ~txt.isin(["1", "0", "true", "false"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(path, f"line {i + 2}: {col} {df[col].iloc[i]!r} is not 1 or 0")
    return txt.isin(["1", "true"]).to_numpy()


def audit_candidate_lists(
    path: str | os.PathLike,
    *,
    group_by: str | Sequence[str] | None = None,
    target_fpir: Sequence[float] = DEFAULT_TARGETS,
    rank: int = DEFAULT_RANK,
    label_source_text: str | None = None,
) -> tuple[IdentificationResult, dict]:
    """The 1:N rates per probe group from a candidate-list CSV, and the facts for ``audit.json``'s config."""
    df = read_csv(path, "candidate-list file")
    cols = parse_group_by(group_by) if group_by else ["group"]
    need = [*SEARCH_COLUMNS, *(f"{side}_{c}" for side in ("probe", "candidate") for c in cols)]
    check_columns(df, need, path, what="column")
    mated_row, is_mate = _flag(path, df, "mated"), _flag(path, df, "is_mate")
    score = pd.to_numeric(df["score"].str.strip(), errors="coerce").to_numpy(np.float64)
    rank_col = pd.to_numeric(df["rank"].str.strip(), errors="coerce").to_numpy(np.float64)
    listed = df["score"].str.strip() != ""
    bad = listed.to_numpy() & ~(np.isfinite(score) & np.isfinite(rank_col) & (rank_col >= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            path, f"line {i + 2}: score {df['score'].iloc[i]!r} or rank {df['rank'].iloc[i]!r} is not valid"
        )
    probe_gi, groups = group_labels(
        pd.concat([df[[f"probe_{c}" for c in cols]].set_axis(cols, axis=1),
                   df[[f"candidate_{c}" for c in cols]].set_axis(cols, axis=1)], ignore_index=True), cols
    )  # fmt: skip
    n = len(df)
    cand_gi = probe_gi[n:]
    probe_gi = probe_gi[:n]
    sid, first = np.unique(df["search_id"].str.strip().to_numpy(), return_index=True)
    search_of = np.searchsorted(sid, df["search_id"].str.strip().to_numpy())
    n_search = len(sid)
    width = max(rank, 1)
    cand = np.full((n_search, width), n, np.intp)  # index n: "no candidate" (group -2)
    scores = np.full((n_search, width), -np.inf, np.float64)
    mate_score = np.full(n_search, -np.inf)
    mate_rank = np.full(n_search, np.iinfo(np.intp).max // 2, np.intp)
    rows = np.flatnonzero(listed.to_numpy())
    for i in rows:
        s, r = search_of[i], int(rank_col[i])
        if r <= width:
            cand[s, r - 1], scores[s, r - 1] = i, score[i]
        if is_mate[i]:
            mate_score[s], mate_rank[s] = score[i], r
    searches = Searches(cand, scores, mate_score, mate_rank)
    targets = identification_rates(
        searches,
        probe_gi[first],
        mated_row[first],
        np.append(cand_gi, -2),
        groups,
        targets=target_fpir,
        rank=rank,
    )
    mated = mated_row[first]
    facts = {
        "searches": int(n_search),
        "mated_searches": int(mated.sum()),
        "non_mated_searches": int((~mated).sum()),
        "rule": "given candidate lists; a search's best candidate is its rank-1 row",
    }
    ident = IdentificationResult(list(groups), rank, facts, {}, targets, [])
    config = {
        "input": "candidate lists",
        "dataset": Path(path).name,
        "candidate_lists": str(path),
        "label_source": label_source(df, cols, label_source_text),
        "group_by": cols,
    }
    return ident, config
