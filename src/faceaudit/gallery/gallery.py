"""The :class:`Gallery`: consented enrolment, purpose-bound 1:N identification, 1:1 checks and real erasure.

Every change and every search appends one ledger entry inside the same SQLite transaction. Subjects appear in
the ledger only as keyed pseudonyms (HMAC-SHA256 of the subject ref under a key derived from the gallery key),
from their first entry on; names never enter the ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceaudit.errors import InputError, PolicyError, UsageError
from faceaudit.gallery import store
from faceaudit.gallery.crypto import NONCE_BYTES, TemplateSealer, load_key
from faceaudit.gallery.index import INDEX_KINDS, TemplateIndex
from faceaudit.gallery.records import (
    Candidate,
    Consent,
    EnrollResult,
    IdentifyResult,
    SubjectExistsError,
    SubjectNotFoundError,
    SubjectVerifyResult,
    require_field,
    utc_today,
)
from faceaudit.imaging import read_source
from faceaudit.ledger import Ledger, LedgerEntry, ledger_key_from_env, utc_now
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore
from faceaudit.pipeline.quality import QualityGate

if TYPE_CHECKING:
    from faceaudit.imaging import ImageSource
    from faceaudit.pipeline.engine import Engine

GALLERY_FORMAT = "faceaudit.gallery/1"


def default_key_file(db: str | os.PathLike) -> Path:
    """Where ``gallery init`` keeps the key when ``FACEAUDIT_KEY`` is unset: next to the database."""
    return Path(f"{os.fspath(db)}.key")


@dataclass(slots=True)
class _Reference:
    vector: np.ndarray
    quality: dict
    source_sha256: str
    image: bytes | None = field(default=None, repr=False)


def _read_source(source: ImageSource) -> tuple[Any, str, str]:
    """(decodable data, label, SHA-256 hex) of an image given as a path, bytes or an array."""
    if isinstance(source, np.ndarray):
        return source, "<array>", hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    data, label = read_source(source)
    return data, label, hashlib.sha256(data).hexdigest()


class Gallery:
    """An encrypted gallery of consented subjects in one SQLite file, with its accountability ledger.

    ``key`` is the 32-byte gallery key (bytes, hex or base64); without it, ``$FACEAUDIT_KEY`` and then
    ``key_file`` (default ``PATH.key``) are tried. A wrong or missing key raises
    :class:`~faceaudit.gallery.crypto.GalleryKeyError` before anything is written. ``create`` makes a new gallery
    when ``path`` does not exist. ``engine`` is the recognition engine (a default SFace engine is made on first
    use). The ledger is HMAC-signed when ``ledger_key`` (default ``$FACEAUDIT_LEDGER_KEY``) is set.
    """

    def __init__(
        self,
        path: str | os.PathLike = "faceaudit.db",
        key: str | bytes | None = None,
        *,
        key_file: str | os.PathLike | None = None,
        engine: Engine | None = None,
        create: bool = True,
        index: str = "exact",
        quality_gate: QualityGate | None = None,
        ledger_key: bytes | None = None,
        operator: str | None = None,
    ) -> None:
        self.path = Path(path)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            raise store.GalleryNotFoundError(
                f"{self.path}: no gallery here; create one with 'faceaudit gallery init --db {self.path}'"
            )
        if index not in INDEX_KINDS:
            raise UsageError(f"--index must be one of {', '.join(INDEX_KINDS)}")
        self._sealer = TemplateSealer(
            load_key(key, key_file if key_file is not None else default_key_file(path))
        )
        self._engine = engine
        self.quality_gate = quality_gate or QualityGate()
        self._conn = store.connect(self.path, create=True)
        try:
            meta = store.read_meta(self._conn)
            if meta:
                self._sealer.check_key(bytes.fromhex(meta["key_check"]), meta["gallery_id"], str(self.path))
                store.migrate(self._conn)
            else:
                self._initialise(index, operator or os.environ.get("FACEAUDIT_OPERATOR") or _os_user())
                meta = store.read_meta(self._conn)
                self._sealer.check_key(bytes.fromhex(meta["key_check"]), meta["gallery_id"], str(self.path))
        except BaseException:
            self._conn.close()
            raise
        self.gallery_id = meta["gallery_id"]
        self.index_kind = meta.get("index_kind", "exact")
        self._ledger = Ledger(
            SQLiteLedgerStore(self._conn), key=ledger_key if ledger_key is not None else ledger_key_from_env()
        )
        self._index: TemplateIndex | None = None
        self._index_version = -1
        self._index_model = ""

    # --- lifecycle --------------------------------------------------------------------------------------

    def _initialise(self, index: str, operator: str) -> None:
        store.migrate(self._conn)
        ledger = Ledger(SQLiteLedgerStore(self._conn), key=ledger_key_from_env())
        with self._write():
            if store.read_meta(self._conn):  # another process initialised it meanwhile
                return
            gallery_id = str(uuid.uuid4())
            meta = {
                "format": GALLERY_FORMAT,
                "gallery_id": gallery_id,
                "created_at": utc_now(),
                "version": "0",
                "index_kind": index,
                "key_check": self._sealer.key_check(gallery_id).hex(),
            }
            self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            ledger.append(
                "configure",
                operator,
                gallery_id=gallery_id,
                gallery_version=0,
                params={
                    "event": "init",
                    "index": index,
                    "schema_version": store.SCHEMA_VERSION,
                    "ledger_signed": ledger.key is not None,
                },
            )

    def close(self) -> None:
        """Close the database (checkpointing the WAL) and drop the in-memory index."""
        if self._index is not None:
            self._index.close()
            self._index = None
        self._conn.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The recognition engine (made on first use)."""
        if self._engine is None:
            from faceaudit.pipeline.engine import Engine

            self._engine = Engine()
        return self._engine

    @property
    def ledger(self) -> Ledger:
        """The accountability ledger of this gallery."""
        return self._ledger

    @property
    def version(self) -> int:
        """The gallery version: it grows by one with every enrolment and erasure."""
        return int(self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])

    def pseudonym(self, subject_ref: str) -> str:
        """The keyed hash that stands for ``subject_ref`` in the ledger."""
        return self._sealer.pseudonym(subject_ref)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _bump_version(self) -> int:
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
        return self.version

    def _record(
        self, action: str, actor: str, started_at: str, version: int | None = None, **fields: Any
    ) -> LedgerEntry:
        return self._ledger.append(
            action,
            actor,
            started_at=started_at,
            gallery_id=self.gallery_id,
            gallery_version=self.version if version is None else version,
            **fields,
        )

    # --- queries ----------------------------------------------------------------------------------------

    def has_subject(self, subject_ref: str) -> bool:
        """Whether ``subject_ref`` is enrolled."""
        return (
            self._conn.execute("SELECT 1 FROM subjects WHERE subject_ref = ?", (subject_ref,)).fetchone()
            is not None
        )

    def subjects(self) -> list[dict[str, Any]]:
        """Every enrolled subject with its consent record and number of templates."""
        rows = self._conn.execute(
            "SELECT s.subject_ref, s.display_name, s.consent_basis, s.consent_by, s.consent_at, s.consent_expires, "
            "s.created_at, COUNT(t.id) FROM subjects s LEFT JOIN templates t ON t.subject_id = s.id "
            "GROUP BY s.id ORDER BY s.id"
        ).fetchall()
        keys = (
            "subject_ref",
            "name",
            "consent_basis",
            "consent_by",
            "consent_at",
            "consent_expires",
            "created_at",
            "n_templates",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- enrolment --------------------------------------------------------------------------------------

    def enroll(
        self,
        subject_ref: str,
        images: Sequence[ImageSource],
        *,
        name: str,
        consent: Consent,
        operator: str,
        store_images: bool = False,
    ) -> EnrollResult:
        """Enrol a subject from reference images, all or nothing.

        Every image must hold a face that passes the quality gate (else InputError, exit 3, naming the reason);
        the consent record must be complete (else ConsentError). Templates are sealed with AES-256-GCM; the images
        themselves are stored (sealed too) only when ``store_images``.
        """
        started = utc_now()
        subject_ref = require_field(subject_ref, "enrolment needs a subject ref")
        require_field(name, "enrolment needs the subject's name (--name)")
        require_field(operator, "enrolment needs the operator's name (--operator)")
        consent.validate()
        if not images:
            raise UsageError("enrolment needs at least one reference image")
        engine = self.engine
        crops, refs = [], []
        for source in images:
            data, label, digest = _read_source(source)
            crop, _, quality, n_faces = engine.prepare(engine.load(data), label)
            reasons = self.quality_gate.check(quality)
            if reasons:
                raise InputError(label, "reference quality too low: " + "; ".join(reasons))
            crops.append(crop)
            q = {**quality.as_dict(), "n_faces": n_faces, "policy": engine.policy}
            refs.append(
                _Reference(np.empty(0), q, digest, data if store_images and isinstance(data, bytes) else None)
            )
        for ref, vector in zip(refs, engine.embed_crops(crops), strict=True):
            ref.vector = vector
        return self._store_subject(
            subject_ref,
            refs,
            name=name,
            consent=consent,
            operator=operator,
            model_id=engine.model_id,
            started_at=started,
        )

    def enroll_templates(
        self,
        subject_ref: str,
        templates: np.ndarray,
        *,
        name: str,
        consent: Consent,
        operator: str,
        model_id: str,
        source_sha256: Sequence[str] | None = None,
    ) -> EnrollResult:
        """Enrol a subject from templates computed elsewhere (same model as searches will use)."""
        started = utc_now()
        consent.validate()
        templates = np.asarray(templates, np.float32).reshape(len(templates), -1)
        digests = list(source_sha256) if source_sha256 is not None else ["" for _ in templates]
        refs = [_Reference(v, {}, d) for v, d in zip(templates, digests, strict=True)]
        return self._store_subject(
            subject_ref,
            refs,
            name=name,
            consent=consent,
            operator=operator,
            model_id=model_id,
            started_at=started,
        )

    def enroll_many(
        self,
        records: Iterable[tuple[str, str, np.ndarray]],
        *,
        consent: Consent,
        operator: str,
        model_id: str,
        batch_size: int = 1000,
    ) -> int:
        """Bulk enrolment of ``(subject_ref, name, templates)`` records, ``batch_size`` subjects per transaction.

        Each subject still gets its own ledger entry; a batch commits or rolls back as a whole. Returns the count.
        """
        consent.validate()
        n = 0
        batch: list[tuple[str, str, np.ndarray]] = []

        def flush() -> None:
            if not batch:
                return
            started = utc_now()
            added_ids, added_vectors = [], []
            with self._write():
                before = self.version
                for subject_ref, name, templates in batch:
                    templates = np.asarray(templates, np.float32).reshape(len(templates), -1)
                    refs = [_Reference(v, {}, "") for v in templates]
                    ids, _ = self._insert_subject(
                        subject_ref,
                        refs,
                        name=name,
                        consent=consent,
                        operator=operator,
                        model_id=model_id,
                        started_at=started,
                    )
                    added_ids += ids
                    added_vectors.append(templates)
                version = self.version
            self._after_change(
                before, version, add=(model_id, np.array(added_ids), np.concatenate(added_vectors))
            )
            batch.clear()

        for record in records:
            batch.append(record)
            n += 1
            if len(batch) >= batch_size:
                flush()
        flush()
        return n

    def _store_subject(
        self,
        subject_ref: str,
        refs: list[_Reference],
        *,
        name: str,
        consent: Consent,
        operator: str,
        model_id: str,
        started_at: str,
    ) -> EnrollResult:
        with self._write():
            before = self.version
            ids, entry = self._insert_subject(
                subject_ref,
                refs,
                name=name,
                consent=consent,
                operator=operator,
                model_id=model_id,
                started_at=started_at,
            )
            version = entry.gallery_version
        self._after_change(
            before,
            version,
            add=(model_id, np.array(ids), np.stack([r.vector for r in refs]).astype(np.float32)),
        )
        return EnrollResult(subject_ref, len(refs), ids, entry.seq)

    def _insert_subject(
        self,
        subject_ref: str,
        refs: list[_Reference],
        *,
        name: str,
        consent: Consent,
        operator: str,
        model_id: str,
        started_at: str,
    ) -> tuple[list[int], LedgerEntry]:
        """Insert one subject, its sealed templates and its ledger entry, inside the caller's transaction."""
        now = utc_now()
        seal = self._sealer
        conn = self._conn
        if self.has_subject(subject_ref):
            raise SubjectExistsError(
                f"subject {subject_ref!r} is already enrolled; erase it first to re-enrol"
            )
        cur = conn.execute(
            "INSERT INTO subjects (subject_ref, display_name, consent_basis, consent_by, consent_at, "
            "consent_expires, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                subject_ref,
                name.strip(),
                consent.basis.strip(),
                consent.recorded_by.strip(),
                now,
                consent.expires.isoformat() if consent.expires else None,
                now,
            ),
        )
        subject_id = cur.lastrowid
        ids = []
        for ref in refs:
            sealed = seal.seal(
                ref.vector, gallery_id=self.gallery_id, subject_ref=subject_ref, model_id=model_id
            )
            image = None
            if ref.image is not None:
                image = seal.seal_bytes(
                    ref.image, seal.associated_data("image", self.gallery_id, subject_ref, model_id)
                )
            cur = conn.execute(
                "INSERT INTO templates (subject_id, model_id, quality, source_sha256, sealed, image, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    subject_id,
                    model_id,
                    json.dumps(ref.quality, sort_keys=True),
                    ref.source_sha256,
                    sealed,
                    image,
                    now,
                ),
            )
            ids.append(int(cur.lastrowid))
        version = self._bump_version()
        entry = self._record(
            "enroll",
            operator,
            started_at,
            version,
            params={
                "model": model_id,
                "consent_basis": consent.basis.strip(),
                "consent_by": consent.recorded_by.strip(),
                "consent_expires": consent.expires.isoformat() if consent.expires else None,
                "images_stored": any(r.image is not None for r in refs),
            },
            result={
                "subject": self.pseudonym(subject_ref),
                "n_templates": len(refs),
                "source_sha256": [r.source_sha256 for r in refs],
            },
        )
        return ids, entry

    # --- the in-memory index ------------------------------------------------------------------------------

    def _after_change(
        self, before: int, version: int, *, add: tuple | None = None, remove: list[int] | None = None
    ) -> None:
        if self._index is None:
            return
        if self._index_version != before:  # another process changed the gallery meanwhile
            self._index_version = -1
            return
        if add is not None and add[0] == self._index_model:
            self._index.add(add[1], add[2])
        if remove:
            self._index.remove(np.array(remove, np.int64))
        self._index_version = version

    def _ensure_index(self) -> TemplateIndex:
        model_id = self.engine.model_id
        if self._index is not None and self._index_version == self.version and self._index_model == model_id:
            return self._index
        self.rebuild_index(model_id)
        assert self._index is not None
        return self._index

    def rebuild_index(self, model_id: str | None = None) -> int:
        """Rebuild the search index from the sealed templates in the database; returns the template count."""
        model_id = model_id or self.engine.model_id
        self._conn.execute("BEGIN")  # one consistent snapshot for the version and the rows
        try:
            version = self.version
            n = int(
                self._conn.execute(
                    "SELECT COUNT(*) FROM templates WHERE model_id = ?", (model_id,)
                ).fetchone()[0]
            )
            cursor = self._conn.execute(
                "SELECT t.id, s.subject_ref, t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id "
                "WHERE t.model_id = ? ORDER BY t.id",
                (model_id,),
            )
            ids, vectors = self._open_templates(cursor, n, model_id)
        finally:
            self._conn.execute("COMMIT")
        dim = vectors.shape[1] if len(vectors) else (self._engine.dim if self._engine is not None else 128)
        if self._index is not None:
            self._index.close()
        index = TemplateIndex(dim, self.index_kind)
        index.build(ids, vectors)
        self._index, self._index_version, self._index_model = index, version, model_id
        return len(ids)

    def _open_templates(self, cursor: sqlite3.Cursor, n: int, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        ids = np.empty(n, np.int64)
        vectors: np.ndarray | None = None
        decrypt = self._sealer._aead.decrypt
        prefix = f"faceaudit\x1ftemplate\x1fv1\x1f{self.gallery_id}\x1f"
        suffix = f"\x1f{model_id}"
        i = 0
        while rows := cursor.fetchmany(4096):
            for tid, subject_ref, blob in rows:
                if i >= n:
                    break
                try:
                    data = decrypt(
                        blob[:NONCE_BYTES], blob[NONCE_BYTES:], (prefix + subject_ref + suffix).encode()
                    )
                except Exception:
                    # the same check, with the clear error
                    self._sealer.open(
                        blob, gallery_id=self.gallery_id, subject_ref=subject_ref, model_id=model_id
                    )
                    raise
                if vectors is None:
                    vectors = np.empty((n, len(data) // 4), np.float32)
                vectors[i] = np.frombuffer(data, "<f4")
                ids[i] = tid
                i += 1
        if vectors is None:
            return ids[:0], np.zeros((0, self._engine.dim if self._engine is not None else 128), np.float32)
        return ids[:i], vectors[:i]

    # --- search -----------------------------------------------------------------------------------------

    def _probe(
        self, probe: ImageSource, action: str, operator: str, started: str, **fields: Any
    ) -> tuple[np.ndarray, str]:
        """The probe's template and SHA-256; refused probes (no face, quality gate) are logged, then raised."""
        data, label, digest = _read_source(probe)
        engine = self.engine
        try:
            crop, _, quality, _ = engine.prepare(engine.load(data), label)
            reasons = self.quality_gate.check(quality)
            if reasons:
                raise InputError(label, "probe quality too low: " + "; ".join(reasons))
        except InputError as exc:
            with self._write():
                self._record(
                    action,
                    operator,
                    started,
                    probe_sha256=digest,
                    result={"status": "refused", "reason": exc.reason},
                    **fields,
                )
            raise
        return engine.embed_crops([crop])[0], digest

    def identify(
        self, probe: ImageSource, *, purpose: str, case: str, operator: str, top_k: int = 10
    ) -> IdentifyResult:
        """1:N search: the ``top_k`` most similar subjects, each flagged above/below the threshold.

        It needs a purpose, a case reference and an operator (else PolicyError). The search, its reason and its
        candidates (as pseudonyms) are logged. There is no match verdict: a person reviews the candidates.
        """
        started = utc_now()
        purpose = require_field(purpose, "identification needs a stated purpose (--purpose)", PolicyError)
        case = require_field(case, "identification needs a case reference (--case)", PolicyError)
        operator = require_field(
            operator, "identification needs the operator's name (--operator)", PolicyError
        )
        if top_k < 1:
            raise UsageError("--top-k must be at least 1")
        engine = self.engine
        params = self._search_params(top_k)
        vector, digest = self._probe(
            probe, "identify", operator, started, purpose=purpose, case_ref=case, params=params
        )
        return self.identify_template(
            vector,
            probe_sha256=digest,
            purpose=purpose,
            case=case,
            operator=operator,
            top_k=top_k,
            started_at=started,
            threshold=engine.threshold,
        )

    def _search_params(self, top_k: int, threshold: float | None = None) -> dict[str, Any]:
        engine = self.engine
        return {
            "model": engine.model_id,
            "threshold": engine.threshold if threshold is None else threshold,
            "top_k": top_k,
            "policy": engine.policy,
            "index": self.index_kind,
        }

    def identify_template(
        self,
        vector: np.ndarray,
        *,
        probe_sha256: str,
        purpose: str,
        case: str,
        operator: str,
        top_k: int = 10,
        threshold: float | None = None,
        started_at: str | None = None,
    ) -> IdentifyResult:
        """1:N search with a probe template computed elsewhere (same model); logged like :meth:`identify`."""
        started = started_at or utc_now()
        purpose = require_field(purpose, "identification needs a stated purpose (--purpose)", PolicyError)
        case = require_field(case, "identification needs a case reference (--case)", PolicyError)
        operator = require_field(
            operator, "identification needs the operator's name (--operator)", PolicyError
        )
        engine = self.engine
        threshold = engine.threshold if threshold is None else float(threshold)
        params = self._search_params(top_k, threshold)
        index = self._ensure_index()
        candidates = self._candidates(index, np.asarray(vector, np.float32), top_k, threshold)
        with self._write():
            entry = self._record(
                "identify",
                operator,
                started,
                self._index_version,
                purpose=purpose,
                case_ref=case,
                probe_sha256=probe_sha256,
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
            top_k,
            probe_sha256,
            purpose,
            case,
            operator,
            self.gallery_id,
            self._index_version,
            entry.seq,
        )

    def _candidates(
        self, index: TemplateIndex, vector: np.ndarray, top_k: int, threshold: float
    ) -> list[Candidate]:
        today = utc_today().isoformat()
        fetch = min(len(index), top_k * 4)
        while True:
            ids, scores = index.search(vector, fetch)
            best: dict[str, tuple[float, str]] = {}
            for chunk in range(0, len(ids), 500):
                part = [int(i) for i in ids[chunk : chunk + 500]]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT t.id, s.subject_ref, s.display_name, s.consent_expires FROM templates t "
                    f"JOIN subjects s ON s.id = t.subject_id WHERE t.id IN ({marks})",
                    part,
                ).fetchall()
                info = {r[0]: r[1:] for r in rows}
                for tid, score in zip(part, scores[chunk : chunk + 500], strict=True):
                    if tid not in info:
                        continue
                    ref, name, expires = info[tid]
                    if expires is not None and expires <= today:
                        continue  # consent has expired: never searched, awaiting 'gallery expire'
                    if ref not in best or score > best[ref][0]:
                        best[ref] = (float(score), name)
            if len(best) >= top_k or fetch >= len(index):
                break
            fetch = min(len(index), fetch * 4)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:top_k]
        return [
            Candidate(i + 1, ref, name, round(score, 6), bool(score >= threshold))
            for i, (ref, (score, name)) in enumerate(ranked)
        ]

    def verify_subject(
        self,
        probe: ImageSource,
        subject_ref: str,
        *,
        operator: str,
        purpose: str | None = None,
        case: str | None = None,
    ) -> SubjectVerifyResult:
        """1:1 comparison of a probe with one enrolled subject's references (the best one counts). Logged."""
        started = utc_now()
        operator = require_field(operator, "verification needs the operator's name (--operator)", PolicyError)
        engine = self.engine
        row = self._conn.execute(
            "SELECT id, display_name, consent_expires FROM subjects WHERE subject_ref = ?", (subject_ref,)
        ).fetchone()
        if row is None:
            raise SubjectNotFoundError(f"subject {subject_ref!r} is not enrolled")
        if row[2] is not None and row[2] <= utc_today().isoformat():
            raise PolicyError(f"the consent of subject {subject_ref!r} expired on {row[2]}")
        params = {
            "model": engine.model_id,
            "threshold": engine.threshold,
            "policy": engine.policy,
            "subject": self.pseudonym(subject_ref),
        }
        vector, digest = self._probe(
            probe, "verify", operator, started, purpose=purpose, case_ref=case, params=params
        )
        blobs = self._conn.execute(
            "SELECT sealed FROM templates WHERE subject_id = ? AND model_id = ?", (row[0], engine.model_id)
        ).fetchall()
        if not blobs:
            raise SubjectNotFoundError(f"subject {subject_ref!r} has no template of model {engine.model_id}")
        refs = np.stack(
            [
                self._sealer.open(
                    b[0], gallery_id=self.gallery_id, subject_ref=subject_ref, model_id=engine.model_id
                )
                for b in blobs
            ]
        )
        similarity = round(float(np.max(refs @ vector)), 6)
        above = bool(similarity >= engine.threshold)
        with self._write():
            entry = self._record(
                "verify",
                operator,
                started,
                purpose=purpose,
                case_ref=case,
                probe_sha256=digest,
                params=params,
                result={"similarity": similarity, "above_threshold": above, "n_references": len(refs)},
            )
        return SubjectVerifyResult(
            subject_ref,
            row[1],
            similarity,
            engine.threshold,
            above,
            len(refs),
            engine.model_id,
            digest,
            entry.seq,
        )

    # --- erasure ----------------------------------------------------------------------------------------

    def erase(self, subject_ref: str, *, reason: str, operator: str, vacuum: bool = False) -> int:
        """Erase a subject for real: its row, its templates (and images), its index entries; returns the ledger seq.

        ``secure_delete`` zeroes the deleted bytes and a TRUNCATE checkpoint moves them into the file and empties
        the WAL; ``vacuum`` also rewrites the whole file.
        """
        started = utc_now()
        reason = require_field(reason, "erasure needs a reason (--reason)")
        operator = require_field(operator, "erasure needs the operator's name (--operator)")
        with self._write() as conn:
            before = self.version
            row = conn.execute("SELECT id FROM subjects WHERE subject_ref = ?", (subject_ref,)).fetchone()
            if row is None:
                raise SubjectNotFoundError(f"subject {subject_ref!r} is not enrolled (already erased?)")
            tids = [
                r[0] for r in conn.execute("SELECT id FROM templates WHERE subject_id = ?", row).fetchall()
            ]
            conn.execute("DELETE FROM templates WHERE subject_id = ?", row)
            conn.execute("DELETE FROM subjects WHERE id = ?", row)
            version = self._bump_version()
            entry = self._record(
                "erase",
                operator,
                started,
                version,
                purpose=reason,
                result={"subject": self.pseudonym(subject_ref), "n_templates": len(tids)},
            )
        self._after_change(before, version, remove=tids)
        self.scrub(vacuum=vacuum)
        return entry.seq

    def expire(self, as_of: date | None = None, *, operator: str) -> list[str]:
        """Erase every subject whose consent has expired by ``as_of`` (default today); returns their refs."""
        started = utc_now()
        as_of = as_of or utc_today()
        with self._write() as conn:
            before = self.version
            rows = conn.execute(
                "SELECT id, subject_ref FROM subjects WHERE consent_expires IS NOT NULL AND "
                "consent_expires <= ? ORDER BY id",
                (as_of.isoformat(),),
            ).fetchall()
            tids: list[int] = []
            for subject_id, _ in rows:
                tids += [
                    r[0] for r in conn.execute("SELECT id FROM templates WHERE subject_id = ?", (subject_id,))
                ]
                conn.execute("DELETE FROM templates WHERE subject_id = ?", (subject_id,))
                conn.execute("DELETE FROM subjects WHERE id = ?", (subject_id,))
            version = self._bump_version() if rows else before
            self._record(
                "expire",
                operator,
                started,
                version,
                params={"as_of": as_of.isoformat()},
                result={
                    "n_subjects": len(rows),
                    "subjects": [self.pseudonym(r[1]) for r in rows],
                    "n_templates": len(tids),
                },
            )
        self._after_change(before, version, remove=tids)
        if rows:
            self.scrub()
        return [r[1] for r in rows]

    def scrub(self, *, vacuum: bool = False) -> None:
        """Checkpoint the WAL into the file and truncate it (and VACUUM if asked), so erased bytes are gone."""
        if vacuum:
            self._conn.execute("VACUUM")
        for _ in range(50):
            busy, _, _ = store.checkpoint(self._conn)
            if not busy:
                return
            import time

            time.sleep(0.1)
        raise PolicyError(
            "erasure committed, but another process holds the database open, so the WAL could not be "
            "truncated yet; run 'faceaudit gallery erase' again later or close the other process"
        )


def _os_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "unknown"
