"""Request and response models: the HTTP contract as it appears in ``/openapi.json``."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, Field, create_model

from faceaudit.gallery.records import SubjectSummary, SubjectVerifyResult
from faceaudit.ledger import LedgerEntry
from faceaudit.operations.review import SearchStatus


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error: a stable ``code`` and a message that says what to do."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Me(BaseModel):
    principal: str
    key_id: str
    roles: list[str]


class FollowerOut(BaseModel):
    running: bool
    catch_ups: int
    errors: int


class IndexStatus(BaseModel):
    gallery_version: int
    """The version in the store: it grows by one with every enrolment and erasure, through any replica."""
    index_version: int
    """The version this replica's in-memory index reflects (-1 before it is built)."""
    follower: FollowerOut


class FaceQuality(BaseModel):
    inter_eye_px: float
    sharpness: float
    detector_score: float
    yaw: float


class DetectedFace(BaseModel):
    """One face, as ``faceaudit detect --json`` prints it."""

    box: list[float]
    landmarks: list[list[float]]
    score: float
    quality: FaceQuality
    chosen: bool = Field(False, description="the face the server's policy would use for a template")


class ComparedFace(BaseModel):
    box: list[float]
    n_faces: int
    policy: str


class VerifyOut(BaseModel):
    """As ``faceaudit verify --json`` prints it."""

    similarity: float
    threshold: float
    match: bool
    model: str
    images: list[ComparedFace] = Field(..., description="for each image: the chosen face, face count, policy")


class EnrolOut(BaseModel):
    subject_ref: str
    templates: int
    ledger_entry: int


class EraseOut(BaseModel):
    erased: str
    ledger_entry: int


class ExpireOut(BaseModel):
    erased: list[str]
    ledger_entry: int


class CandidateOut(BaseModel):
    rank: int
    subject_ref: str
    name: str | None
    similarity: float
    above_threshold: bool
    erased: bool = False


class IdentifyOut(BaseModel):
    """A candidate list for human review: it counts only after two other people confirm a candidate."""

    search_id: str
    candidates: list[CandidateOut]
    threshold: float
    model: str
    ledger_entry: int
    status: Literal["pending_review"]


class ReviewIn(BaseModel):
    decision: Literal["confirm", "reject"]
    subject_ref: str | None = Field(None, description="the confirmed candidate (required to confirm)")
    reason: str = Field(..., min_length=1, max_length=2000)


class ReviewRecord(BaseModel):
    principal: str
    key_id: str
    decision: str
    subject_ref: str | None
    reason: str
    ledger_entry: int
    created_at: str


class ReviewOut(BaseModel):
    """A review as stored; ``status`` is the search's status after it (see the README's review rule)."""

    search_id: str
    status: SearchStatus
    ledger_entry: int
    reviews: int
    note: str


class SearchOut(BaseModel):
    search_id: str
    searcher: str
    purpose: str
    case: str
    status: SearchStatus
    threshold: float
    ledger_entry: int
    created_at: str
    candidates: list[CandidateOut]
    reviews: list[ReviewRecord]
    reviews_needed: int = Field(2, description="how many reviewers must agree")
    confirmed_subject: str | None = None


class SearchSummary(BaseModel):
    search_id: str
    searcher: str
    purpose: str
    case: str
    status: SearchStatus
    created_at: str
    n_reviews: int = 0


def _model_of(cls: type, name: str, rename: dict[str, str] | None = None) -> type[BaseModel]:
    """A response model with exactly the fields of the domain dataclass ``cls`` (never copied by hand), some
    named as the wire names them (``rename``: field → wire name)."""
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        wire = (rename or {}).get(f.name, f.name)
        if f.default is not dataclasses.MISSING:
            fields[wire] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[wire] = (hints[f.name], Field(default_factory=f.default_factory))
        else:
            fields[wire] = (hints[f.name], ...)
    return create_model(name, __doc__=cls.__doc__, **fields)


SubjectOut = _model_of(SubjectSummary, "SubjectOut")
VerifySubjectOut = _model_of(
    SubjectVerifyResult, "VerifySubjectOut", {**SubjectVerifyResult.WIRE_NAMES, "ledger_seq": "ledger_entry"}
)


LedgerEntryOut = _model_of(LedgerEntry, "LedgerEntryOut")
"""A ledger entry with every field that its ``entry_hash`` covers (``auth`` is null in entries made before it was
recorded, and a null ``auth`` is not hashed): anyone can recompute each hash from this output."""


class LedgerOut(BaseModel):
    entries: list[LedgerEntryOut]  # type: ignore[valid-type]
    next_since: int | None = Field(None, description="pass as ?since= for the next page (null: no more)")
    ledger_entry: int


class LedgerVerifyOut(BaseModel):
    entries: int
    intact: bool
    first_bad: int | None = None
    message: str


class KeyIn(BaseModel):
    principal: str = Field(..., min_length=1, max_length=128)
    roles: list[str] = Field(..., min_length=1)
    expires: date | None = None
    rate_limit: str | None = Field(None, description="N/s, N/min or N/h (default: the server's)")


class KeyOut(BaseModel):
    key_id: str
    principal: str
    roles: list[str]
    created_at: str
    created_by: str
    expires: str | None
    rate_limit: str | None
    revoked_at: str | None


class NewKeyOut(BaseModel):
    key: str = Field(..., description="shown once; only its keyed hash is stored")
    key_id: str
    principal: str
    roles: list[str]
    expires: str | None
    ledger_entry: int


class RevokeOut(BaseModel):
    revoked: str
    ledger_entry: int


class ManifestAudit(BaseModel):
    manifest: str = Field(max_length=1024, description="a manifest CSV's name under the server's data folder")
    group_by: str | None = Field(None, max_length=128, description="label column(s), e.g. sex (default)")


class AuditJob(BaseModel):
    job_id: str
    state: Literal["queued", "running", "done", "failed", "interrupted"]
    progress: int
    message: str
    source: Literal["scores", "manifest"] = "scores"
    filename: str
    group_by: str | None
    created_by: str
    created_at: str
    updated_at: str
    ledger_entry: int | None = None
