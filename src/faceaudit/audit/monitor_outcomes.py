"""Operational outcomes: what each reviewed 1:N search tells about the recogniser in operation (pure values).

An :class:`Outcome` is one stored search after review: when it ran, the model and threshold, each candidate's
rank, score and whether it was above the threshold, and what the reviewers decided (the confirmed subject, or
the rejection). The service's store builds them (``ServiceStore.outcomes``); :mod:`faceaudit.audit.monitor`
turns them into figures. Nothing here holds a name or a declared attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class OutcomeCandidate:
    """One candidate of a reviewed search (``subject``: its ref, or its pseudonym once erased)."""

    rank: int
    subject: str
    score: float
    above_threshold: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """One 1:N search and its review.

    ``status`` is ``confirmed``, ``rejected``, ``disputed`` or ``pending_review``; ``confirmed`` is the subject
    two reviewers agreed on (None otherwise); ``decided_at`` is the time of the deciding review (None while
    undecided); ``n_reviews`` counts the reviews (three means a dispute was resolved)."""

    search_id: str
    created_at: str
    threshold: float
    model: str | None
    status: str
    candidates: tuple[OutcomeCandidate, ...]
    confirmed: str | None = None
    decided_at: str | None = None
    n_reviews: int = 0

    @property
    def decided(self) -> bool:
        """Whether the reviewers reached a final decision."""
        return self.status in ("confirmed", "rejected")

    @property
    def was_disputed(self) -> bool:
        """Whether reviewers disagreed at some point (disputed now, or decided by a third review)."""
        return self.status == "disputed" or self.n_reviews > 2

    @property
    def top_score(self) -> float | None:
        """The rank-1 candidate's score (None for an empty candidate list)."""
        return self.candidates[0].score if self.candidates else None

    def confirmed_candidate(self) -> OutcomeCandidate | None:
        """The confirmed subject's candidate entry (None unless confirmed)."""
        if self.confirmed is None:
            return None
        return next((c for c in self.candidates if c.subject == self.confirmed), None)

    def false_candidates(self) -> list[OutcomeCandidate]:
        """Above-threshold candidates that the reviewers rejected: every one of a rejected search, and every one
        but the confirmed subject of a confirmed search (none while undecided)."""
        if not self.decided:
            return []
        return [c for c in self.candidates if c.above_threshold and c.subject != self.confirmed]

    def is_miss(self) -> bool:
        """A confirmed search whose confirmed subject scored below the threshold or was not at rank 1."""
        c = self.confirmed_candidate()
        return c is not None and (not c.above_threshold or c.rank != 1)

    def delay_s(self) -> float | None:
        """Seconds from the search to its deciding review (None while undecided)."""
        if self.decided_at is None:
            return None
        return (parse_time(self.decided_at) - parse_time(self.created_at)).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """As plain data (for tests and offline checks; never written into monitor.json)."""
        return {
            "search_id": self.search_id,
            "created_at": self.created_at,
            "threshold": self.threshold,
            "model": self.model,
            "status": self.status,
            "confirmed": self.confirmed,
            "decided_at": self.decided_at,
            "n_reviews": self.n_reviews,
            "candidates": [
                {"rank": c.rank, "subject": c.subject, "score": c.score, "above_threshold": c.above_threshold}
                for c in self.candidates
            ],
        }


def parse_time(text: str) -> datetime:
    """A stored UTC timestamp (ISO 8601, ``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def outcome_of(
    search: Mapping[str, Any], reviews: Sequence[Mapping[str, Any]], confirmed: str | None
) -> Outcome:
    """An :class:`Outcome` from a stored search (``search_id``, ``created_at``, ``threshold``, ``model``,
    ``status``, ``candidates``) and its reviews in order (each with ``created_at``)."""
    candidates = tuple(
        OutcomeCandidate(
            int(c["rank"]), str(c["subject_ref"]), float(c["similarity"]), bool(c["above_threshold"])
        )
        for c in search["candidates"]
    )
    status = str(search["status"])
    decided = status in ("confirmed", "rejected")
    return Outcome(
        search_id=str(search["search_id"]),
        created_at=str(search["created_at"]),
        threshold=float(search["threshold"]),
        model=search.get("model"),
        status=status,
        candidates=candidates,
        confirmed=confirmed if status == "confirmed" else None,
        decided_at=str(reviews[-1]["created_at"]) if decided and reviews else None,
        n_reviews=len(reviews),
    )
