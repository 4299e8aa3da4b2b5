"""Two-person review of an identification search, as a state machine: pure rules, no storage.

The store calls :func:`check` and :func:`decide` *inside* the write transaction that inserts the review, and its
status update is guarded (``… WHERE status = <the status read>``), so reviewers who act at once are serialised
and a decided search never changes status.

The rule (EU AI Act Art. 14(5): no identification counts until two people have verified it):

* A search starts ``pending_review``. Its searcher may not review it; each other person reviews it once
  (principals are compared in canonical form: ``Reviewer-A`` and ``reviewer-a`` are one person).
* Two reviewers who confirm **the same candidate** make it ``confirmed``; two who reject make it ``rejected``.
* Two reviews that disagree (a confirm and a reject, or confirms of different candidates) make it ``disputed``.
  A dispute ends with **one** more review, by a third reviewer: confirming a candidate that one of the first
  two confirmed confirms the search (two people then agree on it); rejecting rejects it (no candidate can then
  gain the two confirmations an identification needs). A search therefore never waits without a way out.
* ``confirmed`` and ``rejected`` are final: later reviews are refused (409).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from faceaudit.accountable import same_principal
from faceaudit.errors import UsageError

REVIEWS_NEEDED = 2
"""How many people must agree before a search is decided."""


class SearchStatus(StrEnum):
    """Where a search stands in its review."""

    PENDING_REVIEW = "pending_review"
    DISPUTED = "disputed"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"

    @property
    def decided(self) -> bool:
        """Whether the status is final."""
        return self in (SearchStatus.CONFIRMED, SearchStatus.REJECTED)


class Decision(StrEnum):
    """A reviewer's decision about a search."""

    CONFIRM = "confirm"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Review:
    """One review: who, what they decided, and the candidate they confirmed (None for a rejection)."""

    principal: str
    decision: Decision
    subject_ref: str | None = None


class ReviewRefused(UsageError):
    """A review the rules do not allow; ``code`` and ``status`` say which rule (for the HTTP error)."""

    def __init__(self, code: str, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.field = code, status, field


def decide(reviews: Sequence[Review]) -> SearchStatus:
    """The status that ``reviews`` (in order) give a search, by the module's rule."""
    confirms = Counter(r.subject_ref for r in reviews if r.decision is Decision.CONFIRM)
    if confirms and confirms.most_common(1)[0][1] >= REVIEWS_NEEDED:
        return SearchStatus.CONFIRMED
    if sum(r.decision is Decision.REJECT for r in reviews) >= REVIEWS_NEEDED:
        return SearchStatus.REJECTED
    if len(reviews) > REVIEWS_NEEDED:  # a third review on a dispute that sided with nobody: rejected
        return SearchStatus.REJECTED
    if len(reviews) == REVIEWS_NEEDED:
        return SearchStatus.DISPUTED
    return SearchStatus.PENDING_REVIEW


def confirmed_subject(reviews: Iterable[Review]) -> str | None:
    """The candidate that two reviewers confirmed, or None."""
    confirms = Counter(r.subject_ref for r in reviews if r.decision is Decision.CONFIRM)
    ref, n = confirms.most_common(1)[0] if confirms else (None, 0)
    return ref if n >= REVIEWS_NEEDED else None


def check(
    search_id: str,
    searcher: str,
    status: SearchStatus,
    reviews: Sequence[Review],
    new: Review,
    live_candidates: set[str],
) -> Review:
    """``new`` as it will be stored, or :class:`ReviewRefused` naming the rule it breaks.

    ``live_candidates`` are the search's candidates that are still enrolled (an erased one can be rejected but
    never confirmed). A rejection that names a candidate keeps it only while it is live.
    """
    if same_principal(searcher, new.principal):
        raise ReviewRefused(
            "self_review", 403, "you made this search: two other people must review it (no self-review)"
        )
    if status.decided:
        raise ReviewRefused("already_decided", 409, f"search {search_id} is already {status.value}")
    if any(same_principal(r.principal, new.principal) for r in reviews):
        raise ReviewRefused(
            "already_reviewed", 409, f"{new.principal} has already reviewed search {search_id}"
        )
    ref = new.subject_ref if new.subject_ref in live_candidates else None
    if new.decision is Decision.CONFIRM:
        if ref is None:
            named = f" ({new.subject_ref!r} is not one)" if new.subject_ref else ""
            raise ReviewRefused(
                "invalid",
                422,
                f"subject_ref: to confirm, name one of the search's candidates{named}",
                "subject_ref",
            )
        if status is SearchStatus.DISPUTED and not any(
            r.decision is Decision.CONFIRM and r.subject_ref == ref for r in reviews
        ):
            raise ReviewRefused(
                "invalid",
                422,
                "subject_ref: this search is disputed; to resolve it, confirm a candidate that an earlier reviewer "
                "confirmed, or reject it",
                "subject_ref",
            )
    return Review(new.principal, new.decision, ref)


def may_review(search: dict, principal: str, roles: Iterable[str]) -> bool:
    """Whether ``principal`` (holding ``roles``) may review ``search`` now (a stored search, as
    :meth:`~faceaudit.operations.records.ServiceStore.get_search` returns it): the form a page offers follows
    the same rule the store enforces."""
    if "reviewer" not in set(roles) or SearchStatus(search["status"]).decided:
        return False
    if same_principal(search["searcher"], principal):
        return False
    return not any(same_principal(r["principal"], principal) for r in search["reviews"])


def reviews_to_decide(status: SearchStatus | str) -> int:
    """How many reviews a search with ``status`` takes in all before it is decided (a dispute takes a third)."""
    return REVIEWS_NEEDED + (1 if SearchStatus(status) is SearchStatus.DISPUTED else 0)


def progress_note(status: SearchStatus, n_reviews: int) -> str:
    """One sentence for the person who just reviewed: what the search needs now."""
    return {
        SearchStatus.CONFIRMED: "confirmed by two reviewers",
        SearchStatus.REJECTED: "rejected" + (" by two reviewers" if n_reviews == REVIEWS_NEEDED else ""),
        SearchStatus.DISPUTED: "the two reviews disagree: the search is disputed until a third reviewer resolves it",
    }.get(status, "a second reviewer's decision is still needed")
