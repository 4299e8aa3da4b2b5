"""The gallery's searches: 1:N identification and 1:1 checks against one subject, each logged with its reason.

:class:`Searching` is the part of :class:`~faceaudit.gallery.Gallery` that searches; it uses the gallery's
repository, sealer, live index and ledger, and adds no state of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from faceaudit.errors import InputError, PolicyError
from faceaudit.gallery.base import GalleryBase
from faceaudit.gallery.records import Candidate, IdentifyResult, SubjectNotFoundError, SubjectVerifyResult
from faceaudit.gallery.values import Actor, SearchRequest, VerificationRequest, utc_today
from faceaudit.ledger import utc_now

if TYPE_CHECKING:
    from faceaudit.gallery.index import TemplateIndex
    from faceaudit.imaging import DecodedImage, ImageSource


class Searching(GalleryBase):
    """Identification and 1:1 verification over an open gallery (mixed into ``Gallery``)."""

    def _probe(
        self, probe: ImageSource | DecodedImage, action: str, actor: Actor, started: str, **fields: Any
    ) -> tuple[np.ndarray, str]:
        """The probe's template and SHA-256; refused probes (unreadable, no face, quality gate) are logged, then
        raised."""
        from faceaudit.imaging import read_image

        engine = self.engine
        digest = None
        try:
            image = read_image(probe)
            digest = image.sha256
            crop, _, quality, _ = engine.prepare(image.pixels, image.source)
            reasons = self.quality_gate.check(quality)
            if reasons:
                raise InputError(image.source, "probe quality too low: " + "; ".join(reasons))
        except InputError as exc:
            with self._repo.write():
                self._record(
                    action,
                    actor,
                    started,
                    probe_sha256=self.photo_digest(digest),
                    result={"status": "refused", "reason": exc.reason},
                    **fields,
                )
            raise
        return engine.embed_crops([crop])[0], digest

    def _search_params(self, top_k: int, threshold: float | None = None) -> dict[str, Any]:
        engine = self.engine
        return {
            "model": engine.model_id,
            "threshold": engine.threshold if threshold is None else threshold,
            "top_k": top_k,
            "policy": engine.policy,
            "index": self.index_kind,
        }

    def identify(
        self,
        probe: ImageSource | DecodedImage,
        *,
        purpose: str,
        case: str,
        operator: str | Actor,
        top_k: int = 10,
    ) -> IdentifyResult:
        """1:N search: the ``top_k`` most similar subjects, each flagged above/below the threshold.

        It needs a purpose, a case reference and an operator (else PolicyError). The search, its reason and its
        candidates (as pseudonyms) are logged. There is no match verdict: a person reviews the candidates.
        """
        started = utc_now()
        request = SearchRequest.build(purpose, case, operator, top_k)
        params = self._search_params(request.top_k)
        vector, digest = self._probe(
            probe,
            "identify",
            request.operator,
            started,
            purpose=request.purpose,
            case_ref=request.case,
            params=params,
        )
        return self._search(request, vector, digest, started)

    def identify_template(
        self,
        vector: np.ndarray,
        *,
        probe_sha256: str,
        purpose: str,
        case: str,
        operator: str | Actor,
        top_k: int = 10,
        threshold: float | None = None,
        started_at: str | None = None,
    ) -> IdentifyResult:
        """1:N search with a probe template computed elsewhere (same model); logged like :meth:`identify`."""
        started = started_at or utc_now()
        request = SearchRequest.build(purpose, case, operator, top_k, threshold)
        return self._search(request, np.asarray(vector, np.float32), probe_sha256, started)

    def _search(
        self, request: SearchRequest, vector: np.ndarray, digest: str, started: str
    ) -> IdentifyResult:
        engine = self.engine
        threshold = engine.threshold if request.threshold is None else request.threshold
        params = self._search_params(request.top_k, threshold)
        index = self._ensure_index()
        candidates = self._candidates(index, vector, request.top_k, threshold)
        version = self._live.version
        with self._repo.write():
            entry = self._record(
                "identify",
                request.operator,
                started,
                version,
                purpose=request.purpose,
                case_ref=request.case,
                probe_sha256=self.photo_digest(digest),
                params=params,
                result={
                    "n_candidates": len(candidates),
                    "candidates": [
                        {
                            "subject": self.pseudonym(c.subject_ref),
                            "similarity": c.similarity,
                            "above_threshold": c.above_threshold,
                        }
                        for c in candidates
                    ],
                },
            )
        return IdentifyResult(
            candidates,
            threshold,
            engine.model_id,
            request.top_k,
            digest,
            request.purpose,
            request.case,
            request.operator.operator,
            self.gallery_id,
            version,
            entry.seq,
        )

    def _candidates(
        self, index: TemplateIndex, vector: np.ndarray, top_k: int, threshold: float
    ) -> list[Candidate]:
        today = utc_today().isoformat()
        fetch = min(len(index), top_k * 4)
        while True:
            ids, scores = index.search(vector, fetch)
            info = self._repo.candidate_rows([int(i) for i in ids])
            best: dict[str, tuple[float, str, str | None]] = {}
            for tid, score in zip(ids, scores, strict=True):
                row = info.get(int(tid))
                if row is None:
                    continue
                if row.consent_expires is not None and row.consent_expires <= today:
                    continue  # consent has expired: never searched, awaiting 'gallery expire'
                if row.subject_ref not in best or score > best[row.subject_ref][0]:
                    best[row.subject_ref] = (float(score), row.name, row.name_binding)
            if len(best) >= top_k or fetch >= len(index):
                break
            fetch = min(len(index), fetch * 4)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:top_k]
        return [
            Candidate(
                i + 1, ref, self._checked_name(ref, name, bound), round(score, 6), bool(score >= threshold)
            )
            for i, (ref, (score, name, bound)) in enumerate(ranked)
        ]

    def verify_subject(
        self,
        probe: ImageSource | DecodedImage,
        subject_ref: str,
        *,
        operator: str | Actor,
        purpose: str | None = None,
        case: str | None = None,
    ) -> SubjectVerifyResult:
        """1:1 comparison of a probe with one enrolled subject's references (the best one counts). Logged."""
        started = utc_now()
        request = VerificationRequest(subject_ref, operator, purpose, case)  # type: ignore[arg-type]
        engine = self.engine
        params = {
            "model": engine.model_id,
            "threshold": engine.threshold,
            "policy": engine.policy,
            "subject": self.pseudonym(request.subject_ref),
        }
        reason: dict[str, Any] = {"purpose": request.purpose, "case_ref": request.case, "params": params}
        row = self._repo.find_subject(request.subject_ref)
        blobs = [] if row is None else self._opened_templates(row.subject_ref, row.id, engine.model_id)
        refusal: Exception | None = None
        why = ""
        if row is None:
            refusal = SubjectNotFoundError(f"subject {request.subject_ref!r} is not enrolled")
            why = "not enrolled"
        elif row.consent_expires is not None and row.consent_expires <= utc_today().isoformat():
            refusal = PolicyError(
                f"the consent of subject {request.subject_ref!r} expired on {row.consent_expires}"
            )
            why = "consent expired"
        elif not blobs:
            refusal = SubjectNotFoundError(
                f"subject {request.subject_ref!r} has no template of model {engine.model_id}"
            )
            why = "no template of this model"
        if refusal is not None:  # every attempt is logged, so membership cannot be probed without a trace
            with self._repo.write():
                self._record(
                    "verify",
                    request.operator,
                    started,
                    result={"status": "refused", "reason": why},
                    **reason,
                )
            raise refusal
        assert row is not None
        vector, digest = self._probe(probe, "verify", request.operator, started, **reason)
        name = self._checked_name(row.subject_ref, row.name, row.name_binding)
        refs = np.stack(blobs)
        similarity = round(float(np.max(refs @ vector)), 6)
        above = bool(similarity >= engine.threshold)
        with self._repo.write():
            entry = self._record(
                "verify",
                request.operator,
                started,
                probe_sha256=self.photo_digest(digest),
                result={"similarity": similarity, "above_threshold": above, "n_references": len(refs)},
                **reason,
            )
        return SubjectVerifyResult(
            row.subject_ref,
            name,
            similarity,
            engine.threshold,
            above,
            len(refs),
            engine.model_id,
            digest,
            entry.seq,
        )

    def _opened_templates(self, subject_ref: str, subject_id: int, model_id: str) -> list[np.ndarray]:
        """The subject's templates of ``model_id``; every template of the subject is opened, so one whose model id
        or subject was altered is an integrity error rather than silently left out."""
        out = []
        for stored_model, blob in self._repo.sealed_templates_of(subject_id):
            bound = {"gallery_id": self.gallery_id, "subject_ref": subject_ref, "model_id": stored_model}
            vector = self._sealer.open(blob, **bound)
            if stored_model == model_id:
                out.append(vector)
        return out
