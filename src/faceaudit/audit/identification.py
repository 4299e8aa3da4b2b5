"""1:N identification differentials, the FRVT Part 3 protocol: FNIR and FPIR per probe group at one threshold.

- **Split** (:mod:`faceaudit.audit.splits`). Subjects are shuffled with a seed; a fraction is enrolled, one
  image of each (chosen with the same seed) forms the gallery, their other images are mated searches, and
  every image of a never-enrolled subject is a non-mated search. The report records the gallery in full.
- **Search.** Blocked float32 GEMM against the whole gallery, keeping the top ``L`` candidates of each search
  and, for a mated search, its mate's score and rank, all exact in float64: every float32 score within the
  proven rounding bound of a deciding score is re-scored in float64 (:mod:`faceaudit.audit.exact`). Memory is
  O(block × gallery), whatever the number of searches.
- **Rank** of the mate: 1 + the number of non-mate gallery entries scoring at or above it (a tie counts
  against the mate).
- **Rates** at a global threshold τ set on all non-mated searches for each target FPIR:
  FPIR(τ) = share of non-mated searches whose top candidate scores ≥ τ; FNIR(r, τ) = share of mated searches
  whose mate is not returned at rank ≤ r with a score ≥ τ.
- **Who is wrongly returned:** the groups of the candidates (top ``L``, score ≥ τ) of non-mated searches,
  per probe group, beside the gallery's composition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit.audit.exact import dot64, score_bound, unit64
from faceaudit.audit.metrics import NOT_MEASURABLE, Rate, make_rate
from faceaudit.audit.splits import Split, split_subjects  # noqa: F401 (re-exported: the 1:N API)

SCHEMA = "faceaudit.identification/1"
DEFAULT_TARGETS = (1e-2, 1e-3)
DEFAULT_RANK = 10
BLOCK = 1024


@dataclass(slots=True)
class Searches:
    """Top-``L`` candidate lists (gallery index, score; best first) and, for mated searches, the mate's
    score and rank (``mate_rank`` 0 for non-mated searches)."""

    candidates: np.ndarray
    scores: np.ndarray
    mate_score: np.ndarray
    mate_rank: np.ndarray


def _top_exact(s32, p64, g64, lo, top, bound):
    """Exact top-``top`` (gallery index, float64 score; best first, ties by index) of each row of ``s32``.

    Every entry within 2·bound of the row's ``top``-th float32 score is re-scored in float64: an entry below
    that cannot be in the exact top ``top``."""
    kth = -np.partition(-s32, top - 1, axis=1)[:, top - 1]
    rows, cols = np.nonzero(s32 >= (kth - 2 * bound)[:, None])
    exact = dot64(p64, g64, rows + lo, cols)
    order = np.lexsort((cols, -exact, rows))
    rows, cols, exact = rows[order], cols[order], exact[order]
    start = np.searchsorted(rows, np.arange(len(s32)))
    keep = np.arange(len(rows)) - start[rows] < top
    return cols[keep].reshape(len(s32), top), exact[keep].reshape(len(s32), top)


def _mate_exact(s32, p64, g64, lo, rows, mates, bound):
    """Exact float64 mate scores and ranks (1 + non-mates scoring at or above the mate) of ``rows``.

    A non-mate whose float32 score is 2·bound or more above the mate's float32 score is above it exactly, one
    2·bound or more below is below; those in between are re-scored in float64."""
    ms64 = dot64(p64, g64, rows + lo, mates)
    ms32 = s32[rows, mates][:, None]
    sr = s32[rows]
    above = (sr >= ms32 + 2 * bound).sum(axis=1)
    r, c = np.nonzero((sr >= ms32 - 2 * bound) & (sr < ms32 + 2 * bound))
    near = c != mates[r]
    r, c = r[near], c[near]
    tied_or_above = dot64(p64, g64, rows[r] + lo, c) >= ms64[r]
    return ms64, 1 + above + np.bincount(r[tied_or_above], minlength=len(rows))


def search(
    gallery: np.ndarray,
    probes: np.ndarray,
    mate: np.ndarray,
    *,
    top: int = DEFAULT_RANK,
    block: int = BLOCK,
    progress: Callable[[int], None] | None = None,
) -> Searches:
    """Search every probe against the gallery in blocks of ``block`` probes (one SGEMM each).

    ``mate[i]`` is the gallery index of probe i's mate, or -1 for a non-mated search. Scores, candidate
    lists and mate ranks are those of float64 cosine scores: the SGEMM's float32 scores are re-scored in
    float64 wherever they lie within the proven rounding bound (:mod:`faceaudit.audit.exact`) of a score
    that decides a candidate list or a rank.
    """
    g64, p64 = unit64(gallery), unit64(probes)
    g, p = g64.astype(np.float32), p64.astype(np.float32)
    bound = score_bound(g.shape[1])
    n, size = len(p), len(g)
    top = min(top, size)
    cand = np.empty((n, top), np.intp)
    score = np.empty((n, top), np.float64)
    mate_score = np.full(n, np.nan, np.float64)
    mate_rank = np.zeros(n, np.intp)
    mate = np.asarray(mate, np.intp)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        s = p[lo:hi] @ g.T
        if top:
            cand[lo:hi], score[lo:hi] = _top_exact(s, p64, g64, lo, top, bound)
        m = mate[lo:hi]
        rows = np.flatnonzero(m >= 0)
        if len(rows):
            mate_score[lo + rows], mate_rank[lo + rows] = _mate_exact(s, p64, g64, lo, rows, m[rows], bound)
        if progress:
            progress(hi - lo)
    return Searches(cand, score, mate_score, mate_rank)


def fpir_threshold(top_scores: np.ndarray, target: float) -> float | None:
    """The lowest threshold at which at most ``target`` of the non-mated searches return a candidate.

    Just above the top score of the first search that must not match: the next value up in the scores' own
    precision (float64 for :func:`search`'s exact scores), so that ties never push FPIR over the target.
    """
    t = np.sort(np.asarray(top_scores))[::-1]
    if len(t) == 0:
        return None
    allowed = math.floor(target * len(t) + 1e-9)
    if allowed >= len(t):
        return float(t[-1])
    return float(np.nextafter(t[allowed], np.array(np.inf, t.dtype)))


def fpir_rate(fp: int, searches: int, target: float, threshold_ok: bool = True) -> Rate:
    """A probe group's FPIR, with the 1:1 rule per group: with no false positive it is measurable only from
    3/target non-mated searches (rule of three), and only at a threshold the data support."""
    need = math.ceil(3 / target)
    if fp > 0 or searches == 0 or (threshold_ok and searches >= need):
        return make_rate(fp, searches)
    why = f"0 false positives in {searches} non-mated searches; need {need}"
    if not threshold_ok:
        why = f"too few non-mated searches overall for FPIR {target:g}"
    return make_rate(fp, searches, measurable=False, note=f"{NOT_MEASURABLE}: {why}")


@dataclass(frozen=True, slots=True)
class IdentificationRates:
    """One probe group's 1:N error rates at the global threshold."""

    group: str
    fnir_rank1: Rate
    fnir_rank_r: Rate
    fpir: Rate


@dataclass(frozen=True, slots=True)
class IdentificationTarget:
    """Everything measured at one target FPIR: τ, the per-group rates and who is wrongly returned."""

    target_fpir: float
    threshold: float | None
    measurable: bool
    rates: dict[str, IdentificationRates] = field(default_factory=dict)
    false_positive_groups: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class IdentificationResult:
    """The 1:N audit: split facts, gallery composition and one :class:`IdentificationTarget` per target."""

    groups: list[str]
    rank: int
    split: dict
    gallery_composition: dict[str, int]
    targets: list[IdentificationTarget]
    warnings: list[str] = field(default_factory=list)
    bootstrap: dict = field(default_factory=dict)
    """Subject-clustered intervals (:mod:`faceaudit.audit.ident_bootstrap`), keyed by target FPIR."""
    splits: dict = field(default_factory=dict)
    """The spread across repeated splits (``--splits K``), keyed by target FPIR."""
    label_check: dict = field(default_factory=dict)
    """Non-mated searches above the median mate score (:mod:`faceaudit.audit.label_errors`)."""

    @property
    def candidate_groups(self) -> list[str]:
        """Column names of the false-positive composition table."""
        return [*self.groups, "unlabelled"]

    def to_dict(self) -> dict:
        """The versioned ``identification`` block of ``audit.json``."""

        def rate(r: Rate) -> dict:
            return {"value": r.value, "errors": r.errors, "trials": r.trials, "ci_low": r.ci_low,
                    "ci_high": r.ci_high, "ci_method": r.ci_method, "note": r.note}  # fmt: skip

        return {
            "schema": SCHEMA,
            "rank": self.rank,
            "split": self.split,
            "gallery_composition": self.gallery_composition,
            "rank_rule": "rank = 1 + non-mate gallery entries scoring at or above the mate (ties count against)",
            "targets": [
                {
                    "target_fpir": t.target_fpir,
                    "threshold": t.threshold,
                    "measurable": t.measurable,
                    "by_group": {
                        g: {
                            "fnir_rank1": rate(r.fnir_rank1),
                            f"fnir_rank{self.rank}": rate(r.fnir_rank_r),
                            "fpir": rate(r.fpir),
                        }  # fmt: skip
                        for g, r in t.rates.items()
                    },
                    "false_positive_candidates": t.false_positive_groups,
                }
                for t in self.targets
            ],
            "warnings": self.warnings,
            **({"bootstrap": self.bootstrap} if self.bootstrap else {}),
            **({"splits": self.splits} if self.splits else {}),
            **({"label_check": self.label_check} if self.label_check else {}),
        }


def identification_rates(
    searches: Searches,
    probe_group: np.ndarray,
    mated: np.ndarray,
    gallery_group: np.ndarray,
    groups: Sequence[str],
    *,
    targets: Sequence[float] = DEFAULT_TARGETS,
    rank: int = DEFAULT_RANK,
) -> list[IdentificationTarget]:
    """FNIR at rank 1 and ``rank`` and FPIR per probe group at the global τ of each target FPIR.

    ``probe_group``/``gallery_group``: group index per search / gallery entry (-1: no label); ``mated``: bool
    per search.
    """
    top = searches.scores[:, 0] if searches.scores.shape[1] else np.full(len(mated), -np.inf)
    out = []
    for target in targets:
        tau = fpir_threshold(top[~mated], target)
        n_nm = int((~mated).sum())
        measurable = tau is not None and n_nm >= math.ceil(3 / target)
        if tau is None:
            out.append(IdentificationTarget(target, None, False))
            continue
        rates, composition = {}, {}
        for g_i, g in enumerate(groups):
            sel = probe_group == g_i
            m, nm = sel & mated, sel & ~mated
            hit1 = (searches.mate_rank[m] == 1) & (searches.mate_score[m] >= tau)
            hit_r = (searches.mate_rank[m] <= rank) & (searches.mate_score[m] >= tau)
            n_m = int(m.sum())
            rates[g] = IdentificationRates(
                g,
                make_rate(n_m - int(hit1.sum()), n_m),
                make_rate(n_m - int(hit_r.sum()), n_m),
                fpir_rate(int((top[nm] >= tau).sum()), int(nm.sum()), target, measurable),
            )
            above = searches.scores[nm] >= tau
            cand_groups = gallery_group[searches.candidates[nm][above]]
            composition[g] = {
                name: int((cand_groups == c).sum()) for c, name in [*enumerate(groups), (-1, "unlabelled")]
            }
        out.append(IdentificationTarget(target, tau, measurable, rates, composition))
    return out
