"""A search index in Milvus (``--index milvus:URI``), for galleries larger than one machine's memory.

The gallery's store stays the source of truth. :meth:`MilvusIndex.build` compares the collection with the
store's templates (every id, and a sample of vectors bit for bit) and rebuilds it when they differ; enrolments
and erasures then update it in place, so every process that searches the collection sees them at once
(the collection is created with Strong consistency). Candidates come back with their vectors and are
re-scored here, so scores equal the exact index's scores for the same templates.

**Milvus holds plaintext templates.** The gallery seals templates at rest; a Milvus collection cannot search
sealed vectors, so encryption at rest inside Milvus (its object storage, its WAL, its backups) is the Milvus
operator's duty. See docs/scaling.md.

``URI`` is a milvus-lite file (a path ending in ``.db``; one process at a time) or a server address
(``http://host:19530``); ``$FACEAUDIT_MILVUS_TOKEN`` holds the server's token when it needs one. A query string
sets the index type for new collections and the connection timeout, e.g.
``milvus:http://host:19530?index_type=HNSW&M=32&timeout=10`` (default: FLAT on milvus-lite, HNSW on a server).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from faceaudit.errors import FaceAuditError, UsageError

PREFIX = "milvus:"
TOKEN_ENV = "FACEAUDIT_MILVUS_TOKEN"
MAX_TOP_K = 16_384
"""Milvus's largest ``limit`` for one search."""
_INSERT_BATCH = 5_000
_SAMPLE = 256


class MilvusIndexError(FaceAuditError):
    """The Milvus collection cannot be reached or does not match the gallery's store."""

    exit_code = 4


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Where a Milvus index lives: the client URI, whether it is a milvus-lite file, and index options."""

    uri: str
    lite: bool
    index_type: str
    params: dict[str, Any]
    timeout: float = 30.0


def is_milvus(kind: str) -> bool:
    """Whether an ``--index`` value names a Milvus index."""
    return kind.startswith(PREFIX)


def parse_target(kind: str) -> MilvusTarget:
    """``milvus:URI[?index_type=HNSW&M=32&efConstruction=200]`` → :class:`MilvusTarget`."""
    spec = kind[len(PREFIX) :]
    uri, _, query = spec.partition("?")
    if not uri:
        raise UsageError(
            "--index milvus:URI needs a milvus-lite file (e.g. milvus:gallery-milvus.db) or a URL"
        )
    lite = not re.match(r"^(https?|tcp|grpc|unix)://", uri)
    if lite and not uri.endswith(".db"):
        raise UsageError(
            f"--index {kind}: a milvus-lite file name must end in .db (or give http://host:19530)"
        )
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    index_type = options.pop("index_type", "FLAT" if lite else "HNSW").upper()
    try:
        timeout = float(options.pop("timeout", 30))
    except ValueError:
        raise UsageError(f"--index {kind}: timeout must be a number of seconds") from None
    params: dict[str, Any] = {k: int(v) if v.isdigit() else v for k, v in options.items()}
    if index_type == "HNSW":
        params = {"M": 32, "efConstruction": 200, **params}
    return MilvusTarget(os.path.abspath(uri) if lite else uri, lite, index_type, params, timeout)


def collection_name(gallery_id: str, model_id: str) -> str:
    """One collection per gallery and model (letters, digits and underscores, as Milvus requires)."""
    gid = re.sub(r"[^0-9A-Za-z_]", "_", gallery_id)
    return f"faceaudit_{gid}_{hashlib.sha256(model_id.encode()).hexdigest()[:12]}"


class MilvusIndex:
    """Top-k inner-product search in one Milvus collection; the same methods as ``TemplateIndex``."""

    def __init__(self, dim: int, kind: str, collection: str) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise UsageError("--index milvus:URI needs pymilvus: pip install 'faceaudit[milvus]'") from None
        self.dim = dim
        self.kind = kind
        self.target = parse_target(kind)
        self.collection = collection
        try:
            self._client = MilvusClient(
                self.target.uri, token=os.environ.get(TOKEN_ENV, ""), timeout=self.target.timeout
            )
        except Exception as exc:
            hint = (
                " (a milvus-lite file serves one process at a time: is another faceaudit using it?)"
                if self.target.lite
                else ""
            )
            raise MilvusIndexError(f"{self.target.uri}: cannot open Milvus: {exc}{hint}") from None
        self._n = self._count() if self._client.has_collection(collection) else 0

    # --- the collection ---------------------------------------------------------------------------------

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="vector",
            index_type=self.target.index_type,
            metric_type="IP",
            params=self.target.params,
        )
        self._client.create_collection(
            self.collection, schema=schema, index_params=index_params, consistency_level="Strong"
        )

    def _count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def stored_ids(self) -> np.ndarray:
        """Every id in the collection, sorted."""
        ids: list[int] = []
        iterator = self._client.query_iterator(self.collection, batch_size=16_384, output_fields=["id"])
        try:
            while batch := iterator.next():
                ids.extend(int(r["id"]) for r in batch)
        finally:
            iterator.close()
        return np.sort(np.asarray(ids, np.int64))

    def vectors_of(self, ids: np.ndarray) -> dict[int, np.ndarray]:
        """The stored vectors of these ids (those that exist)."""
        out: dict[int, np.ndarray] = {}
        for a in range(0, len(ids), 1000):
            rows = self._client.get(
                self.collection, ids=[int(i) for i in ids[a : a + 1000]], output_fields=["vector"]
            )
            out.update({int(r["id"]): np.asarray(r["vector"], np.float32) for r in rows})
        return out

    def differences(self, ids: np.ndarray, vectors: np.ndarray, sample: int = _SAMPLE) -> list[str]:
        """How the collection differs from the store's ``ids``/``vectors`` (empty when it matches): every id is
        compared, and the vectors of ``sample`` ids drawn at random, bit for bit."""
        if not self._client.has_collection(self.collection):
            return [f"collection {self.collection} does not exist"]
        ids = np.asarray(ids, np.int64)
        stored = self.stored_ids()
        problems = []
        missing, extra = np.setdiff1d(ids, stored), np.setdiff1d(stored, ids)
        if len(missing):
            problems.append(f"{len(missing)} template(s) of the store are missing (e.g. id {missing[0]})")
        if len(extra):
            problems.append(f"{len(extra)} template(s) not in the store are present (e.g. id {extra[0]})")
        if not problems and len(ids):
            rng = np.random.default_rng()
            pick = rng.choice(len(ids), size=min(sample, len(ids)), replace=False)
            got = self.vectors_of(ids[pick])
            bad = []
            for p in pick:
                stored_vector = got.get(int(ids[p]))
                if stored_vector is None or not np.array_equal(stored_vector, vectors[p]):
                    bad.append(int(ids[p]))
            if bad:
                problems.append(f"{len(bad)} sampled vector(s) differ from the store (e.g. id {bad[0]})")
        return problems

    # --- the TemplateIndex methods ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    def build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Make the collection hold exactly ``vectors`` under ``ids``: keep it when it already matches the store,
        otherwise drop and refill it; then check it against the store again."""
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        if self._client.has_collection(self.collection) and not self.differences(ids, vectors):
            self._n = len(ids)
            return
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)
        self._create()
        self._n = 0
        self.add(ids, vectors)
        self._client.flush(
            self.collection
        )  # seal the segments so that they get their index (else brute force)
        problems = self.differences(ids, vectors)
        if problems:
            raise MilvusIndexError(
                f"Milvus collection {self.collection} does not match the gallery after a rebuild: "
                + "; ".join(problems)
            )

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert templates (after an enrolment)."""
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        for a in range(0, len(ids), _INSERT_BATCH):
            rows = [
                {"id": int(i), "vector": v}
                for i, v in zip(ids[a : a + _INSERT_BATCH], vectors[a : a + _INSERT_BATCH], strict=True)
            ]
            self._client.insert(self.collection, rows)
        self._n += len(ids)

    def remove(self, ids: np.ndarray) -> int:
        """Delete templates by id (after an erasure); returns how many were there."""
        keys = [int(i) for i in np.asarray(ids, np.int64)]
        if not keys:
            return 0
        present = len(self._client.get(self.collection, ids=keys, output_fields=["id"]))
        self._client.delete(self.collection, ids=keys)
        self._n -= present
        return present

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the ``k`` most similar templates, best first, re-scored with their float32 vectors."""
        q = np.ascontiguousarray(query, np.float32).reshape(self.dim)
        k = min(int(k), self._n, MAX_TOP_K)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.target.index_type == "HNSW":
            params["params"] = {"ef": max(k, 128)}
        hits = self._client.search(
            self.collection, data=[q], limit=k, output_fields=["vector"], search_params=params
        )[0]
        if not hits:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = np.fromiter((h["id"] for h in hits), np.int64, len(hits))
        X = np.stack([np.asarray(h["entity"]["vector"], np.float32) for h in hits])
        scores = X @ q
        order = np.argsort(-scores, kind="stable")
        return ids[order], scores[order]

    def drop(self) -> None:
        """Delete the collection (its vectors are the plaintext copies of the gallery's templates)."""
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)
        self._n = 0

    def close(self) -> None:
        """Close the client (milvus-lite stops its server process)."""
        self._client.close()
