"""Enrolment: consented subjects from reference images or from templates, alone or in bulk, all or nothing.

:class:`Enrolling` is the part of :class:`~faceaudit.gallery.Gallery` that enrols; it uses the gallery's
repository, sealer, live index and ledger, and adds no state of its own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from faceaudit.errors import InputError, UsageError
from faceaudit.gallery.base import GalleryBase
from faceaudit.gallery.declared import DeclaredAttributes
from faceaudit.gallery.records import EnrollResult, SubjectExistsError
from faceaudit.gallery.repository import NewSubject, NewTemplate
from faceaudit.gallery.values import Actor, Consent, EnrolmentRequest
from faceaudit.ledger import utc_now

if TYPE_CHECKING:
    from faceaudit.imaging import DecodedImage, ImageSource
    from faceaudit.ledger import LedgerEntry

_Refs = list[tuple[dict, str, bytes | None]]
"""Per template: its quality record, the SHA-256 of its source image, the encoded image to store (or None)."""


class Enrolling(GalleryBase):
    """Enrolment over an open gallery (mixed into ``Gallery``)."""

    def enroll(
        self,
        subject_ref: str,
        images: Sequence[ImageSource | DecodedImage],
        *,
        name: str,
        consent: Consent,
        operator: str | Actor,
        store_images: bool = False,
        declared: DeclaredAttributes | None = None,
    ) -> EnrollResult:
        """Enrol a subject from reference images, all or nothing.

        ``images`` are decoded images (:func:`faceaudit.imaging.read_image`) or paths/bytes/arrays, which are read
        once with that helper. Every image must hold a face that passes the quality gate (else InputError, exit
        3, naming the file and the reason); the consent record must be complete (else ConsentError). Templates are
        sealed with AES-256-GCM; the encoded images are stored (sealed too) only when ``store_images``.
        ``declared`` are attributes the person declared, for bias monitoring only (sealed apart, erased with the
        subject, never searched or shown per person; the ledger holds a keyed hash of them).
        """
        started = utc_now()
        request = EnrolmentRequest.build(subject_ref, name, consent, operator, declared)
        if not images:
            raise UsageError("enrolment needs at least one reference image")
        from faceaudit.imaging import read_image

        engine = self.engine
        crops, refs = [], []
        for source in images:
            image = read_image(source, keep_encoded=store_images)
            crop, _, quality, n_faces = engine.prepare(image.pixels, image.source)
            reasons = self.quality_gate.check(quality)
            if reasons:
                raise InputError(image.source, "reference quality too low: " + "; ".join(reasons))
            crops.append(crop)
            q = {**quality.as_dict(), "n_faces": n_faces, "policy": engine.policy}
            refs.append((q, image.sha256, image.encoded if store_images else None))
        vectors = engine.embed_crops(crops)
        return self._store_subjects([(request, vectors, refs)], engine.model_id, started)[0]

    def enroll_templates(
        self,
        subject_ref: str,
        templates: np.ndarray,
        *,
        name: str,
        consent: Consent,
        operator: str | Actor,
        model_id: str,
        source_sha256: Sequence[str] | None = None,
        declared: DeclaredAttributes | None = None,
    ) -> EnrollResult:
        """Enrol a subject from templates computed elsewhere (same model as searches will use); ``declared`` as
        in :meth:`enroll`."""
        started = utc_now()
        request = EnrolmentRequest.build(subject_ref, name, consent, operator, declared)
        vectors = _as_templates(templates)
        digests = list(source_sha256) if source_sha256 is not None else ["" for _ in vectors]
        refs = [({}, d, None) for d in digests]
        if len(refs) != len(vectors):
            raise UsageError(f"{len(vectors)} templates but {len(refs)} source_sha256 values")
        return self._store_subjects([(request, vectors, refs)], model_id, started)[0]

    def enroll_many(
        self,
        records: Iterable[tuple[str, str, np.ndarray]],
        *,
        consent: Consent,
        operator: str | Actor,
        model_id: str,
        batch_size: int = 1000,
    ) -> int:
        """Bulk enrolment of ``(subject_ref, name, templates)`` records, ``batch_size`` subjects per transaction.

        Each subject gets its own ledger entry and is checked like :meth:`enroll`; a batch commits or rolls back
        as a whole. Returns the count.
        """
        actor = Actor.of(operator, "enrolment needs the operator's name (--operator)")
        consent.validate()
        n = 0
        batch: list[tuple[EnrolmentRequest, np.ndarray, _Refs]] = []
        for subject_ref, name, templates in records:
            vectors = _as_templates(templates)
            batch.append(
                (
                    EnrolmentRequest(subject_ref, name, consent, actor),
                    vectors,
                    [({}, "", None)] * len(vectors),
                )
            )
            n += 1
            if len(batch) >= batch_size:
                self._store_bulk(batch, model_id, utc_now())
                batch = []
        if batch:
            self._store_bulk(batch, model_id, utc_now())
        return n

    def _store_bulk(
        self,
        batch: list[tuple[EnrolmentRequest, np.ndarray, _Refs]],
        model_id: str,
        started_at: str,
    ) -> None:
        """What :meth:`_store_subjects` stores (the same rows, one ledger entry per subject, the version up by one
        per subject), in multi-row statements: the batch's rows in a few round trips, in one transaction. The requests
        carry no declared attributes (:meth:`enroll_many` takes none)."""
        now = utc_now()
        refs = [request.subject_ref for request, _, _ in batch]
        repeated = {r for r, count in Counter(refs).items() if count > 1}
        added_ids: list[int] = []
        with self._repo.write():
            before = self._repo.version()
            taken = self._repo.taken_refs(refs)
            clash = next((r for r in refs if r in taken or r in repeated), None)
            if clash is not None:
                raise SubjectExistsError(f"subject {clash!r} is already enrolled; erase it first to re-enrol")
            subject_ids = self._repo.insert_subjects(
                [_new_subject(self, request, now) for request, _, _ in batch]
            )
            rows = [
                (subject_id, _new_template(self, request.subject_ref, model_id, vector, ref, now))
                for subject_id, (request, vectors, refs_) in zip(subject_ids, batch, strict=True)
                for vector, ref in zip(vectors, refs_, strict=True)
            ]
            added_ids = self._repo.insert_templates(rows)
            version = before + len(batch)
            self._repo.set_version(version)
            self._ledger.append_many(
                [
                    self._enrol_entry(request, refs_, len(vectors), model_id, started_at, before + i + 1, {})
                    for i, (request, vectors, refs_) in enumerate(batch)
                ]
            )
        self._live.after_change(
            before, version, add=(model_id, np.array(added_ids), np.concatenate([v for _, v, _ in batch]))
        )

    def _store_subjects(
        self,
        batch: list[tuple[EnrolmentRequest, np.ndarray, _Refs]],
        model_id: str,
        started_at: str,
    ) -> list[EnrollResult]:
        """Insert subjects with their sealed templates and one ledger entry each, in one transaction."""
        results, added_ids, added_vectors = [], [], []
        with self._repo.write():
            before = self._repo.version()
            for request, vectors, refs in batch:
                ids, entry = self._insert_subject(request, vectors, refs, model_id, started_at)
                results.append(EnrollResult(request.subject_ref, len(ids), ids, entry.seq))
                added_ids += ids
                added_vectors.append(vectors)
            version = self._repo.version()
        self._live.after_change(
            before, version, add=(model_id, np.array(added_ids), np.concatenate(added_vectors))
        )
        return results

    def _insert_subject(
        self,
        request: EnrolmentRequest,
        vectors: np.ndarray,
        refs: _Refs,
        model_id: str,
        started_at: str,
    ) -> tuple[list[int], LedgerEntry]:
        """Insert one subject, its sealed templates and its ledger entry, inside the caller's transaction."""
        now = utc_now()
        ref = request.subject_ref
        if self._repo.find_subject(ref) is not None:
            raise SubjectExistsError(f"subject {ref!r} is already enrolled; erase it first to re-enrol")
        subject_id = self._repo.insert_subject(_new_subject(self, request, now))
        ids = [
            self._repo.insert_template(subject_id, _new_template(self, ref, model_id, vector, r, now))
            for vector, r in zip(vectors, refs, strict=True)
        ]
        params: dict[str, object] = {}
        if request.declared is not None:
            sealed = self._sealer.seal_declared(
                request.declared.to_json(now), gallery_id=self.gallery_id, subject_ref=ref
            )
            self._repo.insert_declared(subject_id, sealed, now)
            params["declared"] = self._sealer.ledger_digest("declared", ref, request.declared.canonical())
            params["declared_consent"] = self._sealer.ledger_digest(
                "consent", request.declared.consent.basis, request.declared.consent.recorded_by
            )
        version = self._repo.bump_version()
        entry = self._ledger.append(
            **self._enrol_entry(request, refs, len(ids), model_id, started_at, version, params)
        )
        return ids, entry

    def _enrol_entry(
        self,
        request: EnrolmentRequest,
        refs: _Refs,
        n_templates: int,
        model_id: str,
        started_at: str,
        version: int,
        params: dict[str, object],
    ) -> dict[str, Any]:
        """The keyword arguments of the ``enroll`` ledger entry of one subject (see :meth:`Ledger.append`)."""
        consent = request.consent
        return {
            "action": "enroll",
            "actor": request.operator.operator,
            "auth": request.operator.ledger_auth(),
            "started_at": started_at,
            "gallery_id": self.gallery_id,
            "gallery_version": version,
            "params": {
                "model": model_id,
                "consent": self._sealer.ledger_digest("consent", consent.basis, consent.recorded_by),
                "consent_expires": consent.expires.isoformat() if consent.expires else None,
                "images_stored": any(r[2] is not None for r in refs),
                **params,
            },
            "result": {
                "subject": self.pseudonym(request.subject_ref),
                "n_templates": n_templates,
                "source_hmac": [self._sealer.ledger_digest("photo", r[1]) for r in refs],
            },
        }


def _new_subject(gallery: Enrolling, request: EnrolmentRequest, now: str) -> NewSubject:
    """The subject row of an enrolment request."""
    consent = request.consent
    return NewSubject(
        request.subject_ref,
        request.name,
        consent.basis,
        consent.recorded_by,
        consent.expires.isoformat() if consent.expires else None,
        now,
        gallery._sealer.name_binding(gallery.gallery_id, request.subject_ref, request.name),
    )


def _new_template(
    gallery: Enrolling, subject_ref: str, model_id: str, vector: np.ndarray, ref: tuple, now: str
) -> NewTemplate:
    """One sealed template row (and its sealed image, if any), bound to its gallery, subject and model."""
    quality, digest, encoded = ref
    bound = {"gallery_id": gallery.gallery_id, "subject_ref": subject_ref, "model_id": model_id}
    return NewTemplate(
        model_id,
        json.dumps(quality, sort_keys=True),
        digest,
        gallery._sealer.seal(vector, **bound),
        None if encoded is None else gallery._sealer.seal_image(encoded, **bound),
        now,
    )


def _as_templates(templates: np.ndarray) -> np.ndarray:
    """Templates as an N×dim float32 array (at least one row)."""
    vectors = np.asarray(templates, np.float32)
    vectors = vectors.reshape(len(vectors), -1) if vectors.ndim != 1 else vectors.reshape(1, -1)
    if len(vectors) == 0 or vectors.shape[1] == 0:
        raise UsageError("enrolment needs at least one template")
    return vectors
