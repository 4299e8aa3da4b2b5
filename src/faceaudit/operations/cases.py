"""The use cases: one function for each thing a person does through the service (and its console).

Each takes the :class:`~faceaudit.operations.context.Context`, the authenticated
:class:`~faceaudit.operations.context.Caller` and typed values, owns the lock and the transaction, and returns
plain records for the surface to render. Routes and console pages only parse, call one of these and render.

Decoding, detection and embedding run without any lock (the models are thread-safe); only the gallery call
holds the gallery lock. Every bad image raises :class:`InputError` naming the form field and the file name.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from faceaudit.accountable import AccountableText, SubjectRef
from faceaudit.errors import InputError, UsageError
from faceaudit.gallery.declared import DeclaredAttributes
from faceaudit.gallery.values import Consent
from faceaudit.imaging import DecodedImage, read_image
from faceaudit.operations.audit_requests import (  # noqa: F401  (use cases, re-exported)
    refuse_audit,
    start_audit,
    start_manifest_audit,
)
from faceaudit.operations.context import Caller
from faceaudit.operations.context import Context as Service
from faceaudit.operations.key_records import LastAdminKey  # noqa: F401  (raised by revoke_key, re-exported)
from faceaudit.operations.review import Decision, Review, SearchStatus, progress_note


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded image: its bytes and the label that names it in errors (``field (filename)``)."""

    data: bytes
    label: str
    field: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _read(upload: Upload) -> DecodedImage:
    """Decode once; errors name the form field and the file name."""
    return read_image(upload.data, name=upload.label)


def _decode(upload: Upload) -> np.ndarray:
    return _read(upload).pixels


def _prepare(service: Service, upload: Upload, gate: str) -> np.ndarray:
    """The aligned crop of the chosen face; InputError when there is none or it fails the quality gate."""
    engine = service.engine
    crop, _, quality, _ = engine.prepare(_decode(upload), upload.label)
    reasons = service.gallery.quality_gate.check(quality)
    if reasons:
        raise InputError(upload.label, f"{gate} quality too low: " + "; ".join(reasons))
    return crop


def detect(service: Service, upload: Upload) -> list[dict[str, Any]]:
    """Every face with its quality, as ``detect --json``."""
    return [f.as_dict() for f in service.engine.detect(_decode(upload))]


def verify(service: Service, a: Upload, b: Upload) -> dict[str, Any]:
    """1:1 comparison of two images, as ``verify --json``."""
    from faceaudit.pipeline.engine import VerifyResult

    engine = service.engine
    ta = engine.template(_decode(a), name=a.label)
    tb = engine.template(_decode(b), name=b.label)
    similarity = round(float(engine.compare(ta.vector, tb.vector)), 6)
    match = bool(similarity >= engine.threshold)
    return VerifyResult(similarity, engine.threshold, match, engine.model_id, a=ta, b=tb).as_dict()


def check_photos(service: Service, uploads: list[Upload]) -> list[dict[str, Any]]:
    """Each photo's quality-gate result, storing nothing: ``{"photo", "passed", "reasons"}`` per upload (an
    unreadable photo or one without a face fails with the reason)."""
    results = []
    for u in uploads:
        try:
            _prepare(service, u, "reference")
            results.append({"photo": u.label, "passed": True, "reasons": []})
        except InputError as exc:
            results.append({"photo": u.label, "passed": False, "reasons": [exc.reason]})
    return results


def own_enrolments(service: Service, who: Caller, limit: int = 20) -> list[dict[str, Any]]:
    """The enrolments ``who`` made, newest first, of subjects still enrolled (an erased one is a pseudonym in
    the ledger and is left out): ref, name, when, templates."""
    from faceaudit.accountable import same_principal

    with service.gallery_lock:
        by_pseudonym = {service.gallery.pseudonym(s["subject_ref"]): s for s in service.gallery.subjects()}
    out = []
    for e in reversed(service.store.ledger_page(0, 10**9)):
        if e["action"] != "enroll" or not same_principal(e.get("actor") or "", who.name):
            continue
        subject = by_pseudonym.get((e.get("result") or {}).get("subject", ""))
        if subject is not None:
            out.append({**subject, "enrolled_at": e["started_at"], "ledger_entry": e["seq"]})
        if len(out) >= limit:
            break
    return out


def enrol(
    service: Service,
    who: Caller,
    *,
    subject_ref: SubjectRef,
    name: AccountableText,
    consent: Consent,
    uploads: list[Upload],
    store_images: bool = False,
    declared: DeclaredAttributes | None = None,
) -> dict[str, Any]:
    """Enrol a subject from its images, all or nothing; the index learns it at once. ``declared``: attributes the
    person declared, for bias monitoring only (see :mod:`faceaudit.gallery.declared`)."""
    subject_ref = SubjectRef(subject_ref)
    name = AccountableText(name, "name")
    with service.gallery_lock:
        if service.gallery.has_subject(subject_ref):  # refuse before spending inference on it
            from faceaudit.gallery import SubjectExistsError

            raise SubjectExistsError(
                f"subject {subject_ref!r} is already enrolled; erase it first to re-enrol"
            )
    if store_images:  # the gallery keeps the encoded images (sealed) beside the templates
        images = [read_image(u.data, name=u.label, keep_encoded=True) for u in uploads]
        with service.gallery_lock:
            result = service.gallery.enroll(
                subject_ref,
                images,
                name=name,
                consent=consent,
                operator=who.actor,
                store_images=True,
                declared=declared,
            )
    else:
        vectors = service.engine.embed_crops([_prepare(service, u, "reference") for u in uploads])
        with service.gallery_lock:
            result = service.gallery.enroll_templates(
                subject_ref,
                vectors,
                name=name,
                consent=consent,
                operator=who.actor,
                model_id=service.engine.model_id,
                source_sha256=[u.sha256 for u in uploads],
                declared=declared,
            )
    return {
        "subject_ref": result.subject_ref,
        "templates": result.n_templates,
        "ledger_entry": result.ledger_seq,
    }


def identify(
    service: Service,
    who: Caller,
    upload: Upload,
    *,
    purpose: AccountableText,
    case: AccountableText,
    top_k: int,
) -> dict[str, Any]:
    """1:N search for human review; a refused probe is ledgered (as the CLI does) before the 422. The search is
    stored for review with its candidates; one erased meanwhile is stored as its pseudonym."""
    purpose, case = AccountableText(purpose, "purpose"), AccountableText(case, "case")
    engine = service.engine
    try:
        crop = _prepare(service, upload, "probe")
    except InputError as exc:
        service.store.record(
            "identify",
            who.actor,
            purpose=purpose,
            case_ref=case,
            probe_sha256=upload.sha256,
            params={
                "model": engine.model_id,
                "threshold": engine.threshold,
                "top_k": top_k,
                "policy": engine.policy,
                "index": service.gallery.index_kind,
            },
            result={"status": "refused", "reason": exc.reason},
        )
        raise
    vector = engine.embed_crops([crop])[0]
    with service.gallery_lock:
        result = service.gallery.identify_template(
            vector, probe_sha256=upload.sha256, purpose=purpose, case=case, operator=who.actor, top_k=top_k
        )
    candidates = [c.as_dict() for c in result.candidates]
    pseudonyms = {c.subject_ref: service.gallery.pseudonym(c.subject_ref) for c in result.candidates}
    search_id = str(uuid.uuid4())
    stored = service.store.add_search(
        search_id=search_id,
        principal=who.name,
        key_id=who.key_id,
        purpose=purpose,
        case_ref=case,
        ledger_seq=result.ledger_seq,
        threshold=result.threshold,
        candidates=candidates,
        pseudonyms=pseudonyms,
        probe=service.probes.seal(upload.data, search_id),
        model=result.model_id,
    )
    return {
        "search_id": search_id,
        "candidates": stored,
        "threshold": result.threshold,
        "model": result.model_id,
        "ledger_entry": result.ledger_seq,
        "status": SearchStatus.PENDING_REVIEW.value,
    }


def verify_subject(
    service: Service,
    who: Caller,
    upload: Upload,
    *,
    subject_ref: SubjectRef,
    purpose: AccountableText,
    case: AccountableText,
) -> dict[str, Any]:
    """1:1 comparison of a probe with one enrolled subject (logged by the gallery)."""
    subject_ref = SubjectRef(subject_ref)
    purpose, case = AccountableText(purpose, "purpose"), AccountableText(case, "case")
    image = _read(upload)  # decoded before the lock; errors name the field
    with service.gallery_lock:
        result = service.gallery.verify_subject(
            image, subject_ref, operator=who.actor, purpose=purpose, case=case
        )
    out = result.as_dict()
    out["ledger_entry"] = out.pop("ledger_seq")
    return out


def erase(service: Service, who: Caller, subject_ref: SubjectRef, reason: AccountableText) -> dict[str, Any]:
    """Erase a subject: its row, templates and index entries go, and every stored search and review keeps only its
    pseudonym, in the gallery's one transaction; then the scrub."""
    subject_ref = SubjectRef(subject_ref)
    reason = AccountableText(reason, "reason")
    with service.gallery_lock:
        seq = service.gallery.erase(subject_ref, reason=reason, operator=who.actor)
    return {"erased": subject_ref, "ledger_entry": seq}


def withdraw_declared(
    service: Service, who: Caller, subject_ref: SubjectRef, reason: AccountableText
) -> dict[str, Any]:
    """Delete a subject's declared attributes (the subject stays enrolled); ledgered."""
    with service.gallery_lock:
        seq = service.gallery.withdraw_declared(SubjectRef(subject_ref), reason=reason, operator=who.actor)
    return {"subject_ref": SubjectRef(subject_ref), "ledger_entry": seq}


def expire(service: Service, who: Caller, as_of: date | None) -> dict[str, Any]:
    """Erase every subject whose consent has expired (as :func:`erase` does, in one transaction)."""
    with service.gallery_lock:
        erased = service.gallery.expire(as_of, operator=who.actor)
    return {"erased": list(erased), "ledger_entry": erased.ledger_seq}


def review(
    service: Service,
    who: Caller,
    search_id: str,
    *,
    decision: Decision | str,
    subject_ref: SubjectRef | str | None,
    reason: AccountableText | str,
) -> dict[str, Any]:
    """Confirm or reject a candidate of someone else's search. The rules (no self-review, one review a person,
    decided searches are final, disputes) are checked in the store's transaction; a refusal raises
    :class:`~faceaudit.operations.review.ReviewRefused`."""
    reason = AccountableText(reason, "reason")
    ref = SubjectRef.optional(subject_ref, "subject_ref")
    status, entry, n = service.store.add_review(
        search_id,
        Review(who.name, Decision(decision), ref),
        key_id=who.key_id,
        reason=reason,
        actor=who.actor,
        pseudonym=service.gallery.pseudonym,
    )
    return {
        "search_id": search_id,
        "status": status.value,
        "ledger_entry": entry.seq,
        "reviews": n,
        "note": progress_note(status, n),
    }


def read_ledger(service: Service, who: Caller, since: int, limit: int, fmt: str = "json") -> dict[str, Any]:
    """A page of ledger entries after ``since`` (every hashed field, so each ``entry_hash`` can be recomputed),
    itself logged as an ``export``."""
    from faceaudit.ledger import utc_now

    started = utc_now()
    rows = service.store.ledger_page(since, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    entry = service.store.record(
        "export",
        who.actor,
        started_at=started,
        params={"since": since, "limit": limit, "format": fmt},
        result={"n_entries": len(rows)},
    )
    return {"entries": rows, "next_since": rows[-1]["seq"] if more else None, "ledger_entry": entry.seq}


def create_key(
    service: Service,
    who: Caller,
    *,
    principal: str,
    roles: str | list[str] | tuple[str, ...],
    expires: str | date | None = None,
    rate_limit: str | None = None,
) -> dict[str, Any]:
    """Make a key for ``principal`` (stored as its keyed hash, ledgered); the key itself is returned once."""
    from faceaudit.gallery.values import utc_today

    new = service.hasher.create(
        service.store,
        principal=principal,
        roles=roles,
        actor=who.actor,
        expires=expires,
        rate_limit=rate_limit,
        today=utc_today(),
    )
    r = new.record
    return {
        "key": new.key,
        "key_id": r.key_id,
        "principal": r.principal,
        "roles": list(r.roles),
        "expires": r.expires,
        "ledger_entry": new.ledger_entry.seq,
    }


def revoke_key(service: Service, who: Caller, key_id: str) -> dict[str, Any]:
    """Revoke a live key from its next request on (ledgered); :class:`KeyNotFoundError` when there is none;
    :class:`LastAdminKey` for the last live admin key (no one could manage keys through the service after it)."""
    entry = service.store.revoke_key(key_id, actor=who.actor, keep_an_admin=True)
    if entry is None:
        raise KeyNotFoundError(f"no live key {key_id!r} (unknown or already revoked)")
    return {"revoked": key_id, "ledger_entry": entry.seq}


class KeyNotFoundError(UsageError):
    """No live key has this id."""


def view_probe(service: Service, who: Caller, search_id: str) -> bytes:
    """The probe image of a search still waiting for review, opened from its seal; each view is a ledger entry.
    :class:`~faceaudit.operations.records.SearchNotFoundError` once it is decided (the probe is gone)."""
    from faceaudit.operations.records import SearchNotFoundError

    search = service.store.get_search(search_id)
    blob = service.store.sealed_probe(search_id)
    if search is None or blob is None:
        raise SearchNotFoundError(
            "no probe image: the search is decided, or was made before probes were kept"
        )
    data = service.probes.open(blob, search_id)
    service.store.record(
        "view_probe",
        who.actor,
        purpose=search["purpose"],
        case_ref=search["case"],
        params={"search_id": search_id},
    )
    return data


def browse_ledger(
    service: Service, who: Caller, filters: dict[str, AccountableText | str], page: int, page_size: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the ledger entries that match ``filters`` (operator, action, purpose, case: substrings; date:
    a prefix of ``started_at``), newest first, and how many match; the view is an ``export`` entry naming the
    filters."""
    checks = {"operator": "actor", "action": "action", "purpose": "purpose", "case": "case_ref"}

    def matches(e: dict[str, Any]) -> bool:
        for name, key in checks.items():
            want = filters.get(name)
            if want and want.lower() not in (e.get(key) or "").lower():
                return False
        return not filters.get("date") or e["started_at"].startswith(str(filters["date"]))

    rows = [e for e in service.store.ledger_page(0, 10**9) if matches(e)][::-1]  # newest first
    entries = rows[page * page_size : (page + 1) * page_size]
    service.store.record(
        "export",
        who.actor,
        params={"via": "console", "filters": {k: str(v) for k, v in filters.items()}, "page": page},
        result={"n_entries": len(entries)},
    )
    return entries, len(rows)
