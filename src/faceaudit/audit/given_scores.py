"""Auditing another system's comparison scores (a CSV), after the input checks of :mod:`.hygiene`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from faceaudit.audit.analysis import DEFAULT_TARGETS, analyse
from faceaudit.audit.candidate_lists import audit_candidate_lists, is_candidate_list
from faceaudit.audit.counts import count_scores
from faceaudit.audit.fairness import alphas
from faceaudit.audit.grid import ScoreGrid
from faceaudit.audit.headline import headline
from faceaudit.audit.headline_1n import identification_headline
from faceaudit.audit.hygiene import PAIR_COLUMNS, ScoreChecks, far_outliers, require_resolvable
from faceaudit.audit.identification import DEFAULT_RANK
from faceaudit.audit.identification import DEFAULT_TARGETS as DEFAULT_FPIRS
from faceaudit.audit.pairs import ScoreTable, load_scores
from faceaudit.audit.result import AuditResult
from faceaudit.audit.run import faceaudit_version, targets_of
from faceaudit.errors import InputError
from faceaudit.imaging import sha256_file

__all__ = ["audit_scores", "check_scores"]


def check_scores(
    path: object, st: ScoreTable, n_bins: int, lower_is_better: bool
) -> tuple[ScoreGrid, ScoreChecks]:
    """The score grid for ``st`` (set by the bulk, not by far outliers), and what the checks found."""
    outlier, fences = far_outliers(st.scores, st.mated)
    inliers = st.scores[~outlier]
    grid = ScoreGrid.from_scores(inliers, n_bins=n_bins, higher_is_better=not lower_is_better)
    require_resolvable(path, st.scores, grid, st.lines)
    warn = []
    lines = tuple(int(v) for v in st.lines[outlier])
    if lines:
        shown = ", ".join(map(str, lines[:5])) + (", …" if len(lines) > 5 else "")
        warn.append(
            f"{len(lines)} far outlier scores (outside [{fences[0]:.6g}, {fences[1]:.6g}], far beyond the bulk; "
            f"lines {shown}): they are counted at the end of the score range and do not set the bins; check "
            "whether they are sentinels (e.g. 999 for a failed comparison)"
        )
    if st.n_duplicates_removed:
        warn.append(
            f"{st.n_duplicates_removed} repeated pairs removed (--dedupe): the first row of each pair is kept"
        )
    if not st.has_pair_ids:
        warn.append(
            f"the scores file has no {'/'.join(PAIR_COLUMNS)} columns, so repeated pairs (which would count "
            "twice) cannot be checked"
        )
    checks = ScoreChecks(len(lines), lines, fences, st.n_duplicates_removed, warn)
    return grid, checks


def audit_scores(
    scores_csv: str | os.PathLike,
    *,
    group_by: str | Sequence[str] | None = None,
    lower_is_better: bool = False,
    target_fmr: float | Sequence[float] = DEFAULT_TARGETS,
    alpha: float | dict[str, float] = 0.5,
    bootstrap: int = 0,
    label_source: str | None = None,
    dataset: str | None = None,
    n_bins: int = 20_000,
    dedupe: bool = False,
    target_fpir: Sequence[float] = DEFAULT_FPIRS,
    rank: int = DEFAULT_RANK,
) -> AuditResult:
    """Audit another system's comparison scores (``score``, ``mated``, and the group of each side).

    The score grid spans the bulk of the scores in about ``n_bins`` bins; ``lower_is_better`` for distances.
    Bad input is refused with its line (see :mod:`faceaudit.audit.hygiene`); ``dedupe`` keeps the first row of
    each repeated (image_a, image_b) pair instead of refusing the file. A file with a ``search_id`` column is
    a 1:N candidate list (:mod:`faceaudit.audit.candidate_lists`), audited at ``target_fpir`` and ``rank``.
    Bootstrap intervals need subjects, which a scores file does not carry, so ``bootstrap`` is ignored.
    """
    if is_candidate_list(scores_csv):
        return _audit_candidate_lists(scores_csv, group_by, target_fpir, rank, label_source, dataset)
    targets = targets_of(target_fmr)
    st = load_scores(scores_csv, group_by, label_source_text=label_source, dedupe=dedupe)
    if len(st.scores) == 0:
        raise InputError(scores_csv, "scores file has no rows")
    grid, checks = check_scores(scores_csv, st, n_bins, lower_is_better)
    counts = count_scores(st.scores, st.mated, st.group_a, st.group_b, st.groups, grid)
    warn = list(checks.warnings)
    if bootstrap:
        warn.append(
            "--bootstrap needs subject ids, which a scores file lacks: Clopper–Pearson intervals only"
        )
    config = {
        "input": "scores",
        "dataset": dataset or Path(scores_csv).name,
        "scores": str(scores_csv),
        "scores_sha256": st.sha256,
        "group_by": group_by,
        "model_id": "external scores",
        "policy": None,
        "target_fmr": targets,
        "alpha": alphas(alpha),
        "lower_is_better": lower_is_better,
        "label_source": st.label_source,
        "n_comparisons": int(len(st.scores)),
        "input_checks": checks.as_dict(),
        "comparison": f"given scores; a score {'<=' if lower_is_better else '>='} threshold is a match",
        "same_group_rule": "a comparison counts for group g when both sides are in g",
        "faceaudit_version": faceaudit_version(),
    }
    result = analyse(counts, targets=targets, alpha=alpha, config=config, warnings=warn)
    result.headline = headline(result)
    return result


def _audit_candidate_lists(path, group_by, target_fpir, rank, label_source, dataset) -> AuditResult:
    ident, config = audit_candidate_lists(
        path,
        group_by=group_by,
        target_fpir=targets_of(target_fpir),
        rank=rank,
        label_source_text=label_source,
    )
    config.update(
        dataset=dataset or config["dataset"],
        candidate_lists_sha256=sha256_file(path),
        model_id="external candidate lists",
        policy=None,
        faceaudit_version=faceaudit_version(),
    )
    result = AuditResult(config=config, targets=[], warnings=list(ident.warnings), identification=ident)
    result.headline = identification_headline(result)
    return result
