"""The gallery's result types: enrolment, identification and 1:1 checks (requests live in :mod:`.values`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from faceaudit.errors import UsageError
from faceaudit.gallery.values import Consent, utc_today


class SubjectNotFoundError(UsageError):
    """The subject ref is not enrolled in this gallery."""


class SubjectExistsError(UsageError):
    """The subject ref is already enrolled."""


class ScrubPendingWarning(UserWarning):
    """An erasure committed, but its bytes stay in the WAL until another process closes the gallery and a scrub
    (``faceaudit gallery scrub``) checkpoints it; the gallery records the scrub as pending."""


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
class SubjectSummary:
    """An enrolled subject as :meth:`Gallery.subjects <faceaudit.gallery.Gallery.subjects>` lists it: the consent
    record and the number of templates, never a template."""

    subject_ref: str
    name: str
    consent_basis: str
    consent_by: str
    consent_at: str
    consent_expires: str | None
    created_at: str
    n_templates: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    WIRE_NAMES: ClassVar[dict[str, str]] = {"model_id": "model"}
    """Fields that the JSON output (``verify-subject --json``, the HTTP API) names differently."""

    def as_dict(self) -> dict[str, Any]:
        return {self.WIRE_NAMES.get(k, k): v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class EnrollResult:
    """What an enrolment stored."""

    subject_ref: str
    n_templates: int
    template_ids: list[int]
    ledger_seq: int


class ExpiredSubjects(list):
    """The refs that :meth:`Gallery.expire <faceaudit.gallery.Gallery.expire>` erased (a list of str), with the
    seq of the ledger entry that recorded the expiry (``ledger_seq``), so that a caller never has to guess it
    from the ledger's head, which another replica may have moved meanwhile."""

    def __init__(self, refs: list[str], ledger_seq: int) -> None:
        super().__init__(refs)
        self.ledger_seq = ledger_seq


__all__ = [
    "ExpiredSubjects",
    "Candidate",
    "Consent",
    "EnrollResult",
    "IdentifyResult",
    "ScrubPendingWarning",
    "SubjectExistsError",
    "SubjectNotFoundError",
    "SubjectSummary",
    "SubjectVerifyResult",
    "utc_today",
]
