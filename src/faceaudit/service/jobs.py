"""The blocking work behind the routes, run on the inference pool: decode, detect, embed, then the gallery call.

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

from faceaudit.errors import InputError
from faceaudit.imaging import DecodedImage, read_image
from faceaudit.service.auth import Principal
from faceaudit.service.state import Service


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


def enrol(
    service: Service,
    who: Principal,
    *,
    subject_ref: str,
    name: str,
    consent: Any,
    uploads: list[Upload],
    store_images: bool = False,
) -> dict[str, Any]:
    """Enrol a subject from its images, all or nothing; the index learns it at once."""
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
                subject_ref, images, name=name, consent=consent, operator=who.actor, store_images=True
            )
        return {
            "subject_ref": result.subject_ref,
            "templates": result.n_templates,
            "ledger_entry": result.ledger_seq,
        }
    crops = [_prepare(service, u, "reference") for u in uploads]
    vectors = service.engine.embed_crops(crops)
    with service.gallery_lock:
        result = service.gallery.enroll_templates(
            subject_ref,
            vectors,
            name=name,
            consent=consent,
            operator=who.actor,
            model_id=service.engine.model_id,
            source_sha256=[u.sha256 for u in uploads],
        )
    return {
        "subject_ref": result.subject_ref,
        "templates": result.n_templates,
        "ledger_entry": result.ledger_seq,
    }


def identify(
    service: Service, who: Principal, upload: Upload, *, purpose: str, case: str, top_k: int
) -> dict[str, Any]:
    """1:N search for human review; a refused probe is ledgered (as the CLI does) before the 422."""
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
    search_id = str(uuid.uuid4())
    service.store.add_search(
        search_id=search_id,
        principal=who.name,
        key_id=who.key_id,
        purpose=result.purpose,
        case_ref=result.case_ref,
        ledger_seq=result.ledger_seq,
        threshold=result.threshold,
        candidates=candidates,
        probe=service.probes.seal(upload.data, search_id),
    )
    return {
        "search_id": search_id,
        "candidates": candidates,
        "threshold": result.threshold,
        "model": result.model_id,
        "ledger_entry": result.ledger_seq,
        "status": "pending_review",
    }


def verify_subject(
    service: Service, who: Principal, upload: Upload, *, subject_ref: str, purpose: str, case: str
) -> dict[str, Any]:
    """1:1 comparison of a probe with one enrolled subject (logged by the gallery)."""
    image = _read(upload)  # decoded before the lock; errors name the field
    with service.gallery_lock:
        result = service.gallery.verify_subject(
            image, subject_ref, operator=who.actor, purpose=purpose, case=case
        )
    out = result.as_dict()
    out["ledger_entry"] = out.pop("ledger_seq")
    return out


def erase(service: Service, who: Principal, subject_ref: str, reason: str) -> dict[str, Any]:
    """Erase a subject (row, templates, index entries); searches keep only its pseudonym. The scrub comes last,
    so that the searches' old bytes are overwritten with the rest."""
    with service.gallery_lock:
        seq = service.gallery.erase(subject_ref, reason=reason, operator=who.actor, scrub=False)
        pseudonym = service.gallery.pseudonym(subject_ref)
    service.store.forget_subject(subject_ref, pseudonym)
    with service.gallery_lock:
        service.gallery.scrub_or_warn()
    return {"erased": subject_ref, "ledger_entry": seq}


def expire(service: Service, who: Principal, as_of: date | None) -> dict[str, Any]:
    """Erase every subject whose consent has expired."""
    with service.gallery_lock:
        erased = service.gallery.expire(as_of, operator=who.actor, scrub=False)
        seq = erased.ledger_seq  # not the ledger head: another replica may have appended since
        pseudonyms = [(ref, service.gallery.pseudonym(ref)) for ref in erased]
    for ref, pseudonym in pseudonyms:
        service.store.forget_subject(ref, pseudonym)
    if erased:
        with service.gallery_lock:
            service.gallery.scrub_or_warn()
    return {"erased": list(erased), "ledger_entry": seq}
