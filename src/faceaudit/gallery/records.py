"""The gallery's value types: the consent record and the results of enrolment, identification and 1:1 checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from faceaudit.errors import ConsentError, UsageError


class SubjectNotFoundError(UsageError):
    """The subject ref is not enrolled in this gallery."""


class SubjectExistsError(UsageError):
    """The subject ref is already enrolled."""


def require_field(value: str | None, what: str, exc: type[Exception] = UsageError) -> str:
    if value is None or not str(value).strip():
        raise exc(what)
    return str(value).strip()


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class Consent:
    """The consent record of a subject: its legal basis, who recorded it, and an optional expiry date.

    Consent is valid up to the day before ``expires``: on ``expires`` it has expired.
    """

    basis: str
    recorded_by: str
    expires: date | None = None

    def validate(self, today: date | None = None) -> None:
        """Raise ConsentError unless the record is complete and unexpired."""
        require_field(
            self.basis,
            "enrolment needs a consent record: give the consent basis (--consent-basis)",
            ConsentError,
        )
        require_field(
            self.recorded_by,
            "enrolment needs a consent record: say who recorded it (--consent-by)",
            ConsentError,
        )
        if self.expires is not None and self.expires <= (today or utc_today()):
            raise ConsentError(
                f"the consent expires on {self.expires.isoformat()}, which is not in the future"
            )


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate of a 1:N search. ``above_threshold`` informs the person who decides; it is no verdict."""

    rank: int
    subject_ref: str
    name: str
    similarity: float
    above_threshold: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IdentifyResult:
    """A candidate list for human review, with what was searched, why, and where it was logged."""

    candidates: list[Candidate]
    threshold: float
    model_id: str
    top_k: int
    probe_sha256: str
    purpose: str
    case_ref: str
    operator: str
    gallery_id: str
    gallery_version: int
    ledger_seq: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidates": [c.as_dict() for c in self.candidates],
            "n_candidates": len(self.candidates),
            "n_above_threshold": sum(c.above_threshold for c in self.candidates),
            "decision": None,
            "note": "candidate list for human review; faceaudit makes no match decision",
            "threshold": self.threshold,
            "model": self.model_id,
            "top_k": self.top_k,
            "probe_sha256": self.probe_sha256,
            "purpose": self.purpose,
            "case": self.case_ref,
            "operator": self.operator,
            "gallery": {"id": self.gallery_id, "version": self.gallery_version},
            "ledger_seq": self.ledger_seq,
        }


@dataclass(frozen=True, slots=True)
class SubjectVerifyResult:
    """A 1:1 comparison of a probe with one enrolled subject (its best-matching reference)."""

    subject_ref: str
    name: str
    similarity: float
    threshold: float
    above_threshold: bool
    n_references: int
    model_id: str
    probe_sha256: str
    ledger_seq: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject_ref": self.subject_ref,
            "name": self.name,
            "similarity": self.similarity,
            "threshold": self.threshold,
            "above_threshold": self.above_threshold,
            "n_references": self.n_references,
            "model": self.model_id,
            "probe_sha256": self.probe_sha256,
            "ledger_seq": self.ledger_seq,
        }


@dataclass(frozen=True, slots=True)
class EnrollResult:
    """What an enrolment stored."""

    subject_ref: str
    n_templates: int
    template_ids: list[int]
    ledger_seq: int
