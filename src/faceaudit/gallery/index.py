"""The in-memory search index over decrypted templates (FAISS), rebuilt from the database on open.

``kind="exact"`` (the default) returns the exact top-k by inner product. Below ``SQ_MIN`` templates it is a
plain matrix product. Above, a FAISS 8-bit scalar quantizer (one shard per core, searched in parallel) ranks
candidates by approximate score, and the candidates are re-scored with the float32 templates. The result is
*certified* exact: every template's reconstruction error ``err_i = ||x_i - x̂_i||`` is measured when it is
added, so its true score is at most its approximate score plus ``err_i``. Search widens until the k-th exact
score exceeds the best approximate score left out plus the largest error, and falls back to a full scan
otherwise. Templates whose error is unusually large are always scored exactly.

``kind="hnsw"`` uses FAISS HNSW (approximate; for very large galleries), re-scored exactly.

Removal wipes the row and marks it dead; the structures are compacted when many rows are dead.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

INDEX_KINDS = ("exact", "hnsw")
SQ_MIN = 20_000
"""Below this many templates the exact kind is a plain matrix product."""
_SLACK = 1e-4  # float32 rounding in FAISS's distance loops, with a wide margin


class TemplateIndex:
    """Top-k inner-product search over L2-normalised templates, addressed by integer ids (template row ids)."""

    def __init__(self, dim: int, kind: str = "exact", *, shards: int | None = None) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, not {kind!r}")
        self.dim = dim
        self.kind = kind
        self._n_shards = max(1, shards or min(os.cpu_count() or 1, 8))
        self._pool: ThreadPoolExecutor | None = None
        self._reset(0)

    def _reset(self, capacity: int) -> None:
        self._X = np.zeros((max(capacity, 16), self.dim), np.float32)
        self._ids = np.zeros(max(capacity, 16), np.int64)
        self._alive = np.zeros(max(capacity, 16), bool)
        self._n = 0
        self._dead = 0
        self._sq: list[faiss.Index] = []  # exact kind: SQ8 shards over contiguous row ranges
        self._sq_start: list[int] = []
        self._eps0 = 0.0
        self._outliers = np.zeros(0, np.int64)
        self._hnsw: faiss.Index | None = None

    def __len__(self) -> int:
        return self._n - self._dead

    # --- building ---------------------------------------------------------------------------------------

    def build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the contents with ``vectors`` (N×dim float32) under ``ids``."""
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        n = len(ids)
        self._reset(n)
        self._X[:n] = vectors
        self._ids[:n] = ids
        self._alive[:n] = True
        self._n = n
        if self.kind == "hnsw":
            self._hnsw = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            self._hnsw.hnsw.efConstruction = 80
            self._hnsw.hnsw.efSearch = 128
            if n:
                self._hnsw.add(self._X[:n])
        elif n >= SQ_MIN:
            self._build_sq()

    def _build_sq(self) -> None:
        n = self._n
        X = self._X[:n]
        self._sq, self._sq_start = [], []
        errors = np.empty(n, np.float32)
        bounds = np.linspace(0, n, self._n_shards + 1).astype(int)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            sq = faiss.IndexScalarQuantizer(
                self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            sq.train(X)  # min/max of every dimension over all templates: nothing is clipped
            sq.add(X[a:b])
            errors[a:b] = self._reconstruction_error(sq, X[a:b])
            self._sq.append(sq)
            self._sq_start.append(int(a))
        self._errors = errors
        self._eps0 = float(errors.max()) if n else 0.0
        self._outliers = np.zeros(0, np.int64)

    @staticmethod
    def _reconstruction_error(sq: faiss.Index, X: np.ndarray) -> np.ndarray:
        out = np.empty(len(X), np.float32)
        for a in range(0, len(X), 65536):
            chunk = X[a : a + 65536]
            out[a : a + len(chunk)] = np.linalg.norm(sq.sa_decode(sq.sa_encode(chunk)) - chunk, axis=1)
        return out

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._ids):
            return
        cap = max(need, 2 * len(self._ids))
        X = np.zeros((cap, self.dim), np.float32)
        X[: self._n] = self._X[: self._n]
        ids = np.zeros(cap, np.int64)
        ids[: self._n] = self._ids[: self._n]
        alive = np.zeros(cap, bool)
        alive[: self._n] = self._alive[: self._n]
        self._X, self._ids, self._alive = X, ids, alive

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add templates (after an enrolment)."""
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        if not len(ids):
            return
        self._grow(len(ids))
        a, b = self._n, self._n + len(ids)
        self._X[a:b] = vectors
        self._ids[a:b] = ids
        self._alive[a:b] = True
        self._n = b
        if self._hnsw is not None:
            self._hnsw.add(vectors)
        elif self._sq:
            last = self._sq[-1]
            last.add(vectors)
            err = self._reconstruction_error(last, vectors)
            self._errors = np.concatenate([self._errors, err])
            wide = np.nonzero(err > self._eps0)[0] + a
            if len(wide):
                self._outliers = np.concatenate([self._outliers, wide])
        elif self.kind == "exact" and self._n >= SQ_MIN:
            self._build_sq()

    def remove(self, ids: np.ndarray) -> int:
        """Remove templates by id (after an erasure); their vectors are overwritten in memory. Returns the count."""
        ids = np.asarray(ids, np.int64)
        hit = np.nonzero(np.isin(self._ids[: self._n], ids) & self._alive[: self._n])[0]
        self._alive[hit] = False
        self._X[hit] = 0.0
        self._dead += len(hit)
        if self._dead > 1000 and self._dead > 0.1 * self._n:
            live = self._alive[: self._n]
            self.build(self._ids[: self._n][live].copy(), self._X[: self._n][live].copy())
        return len(hit)

    # --- saved state (for the index file) -------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """The built index as named arrays (dead rows compacted first), so that :meth:`from_state` restores it
        without building again: the templates, their ids and the serialised FAISS structures."""
        if self._dead:
            live = self._alive[: self._n]
            self.build(self._ids[: self._n][live].copy(), self._X[: self._n][live].copy())
        n = self._n
        out: dict[str, np.ndarray] = {"X": self._X[:n], "ids": self._ids[:n]}
        if self._hnsw is not None:
            out["hnsw"] = faiss.serialize_index(self._hnsw)
        elif self._sq:
            for i, sq in enumerate(self._sq):
                out[f"sq{i}"] = faiss.serialize_index(sq)
            out["sq_start"] = np.asarray(self._sq_start, np.int64)
            out["errors"] = self._errors
            out["outliers"] = self._outliers
            out["eps0"] = np.asarray([self._eps0], np.float32)
        return out

    @classmethod
    def from_state(cls, dim: int, kind: str, arrays: dict[str, np.ndarray]) -> TemplateIndex:
        """The index saved by :meth:`state` (the arrays are used in place: they must be writable)."""
        index = cls(dim, kind)
        X, ids = arrays["X"].reshape(-1, dim), arrays["ids"]
        n = len(ids)
        if len(X) != n:
            raise ValueError(f"{len(X)} templates for {n} ids")
        if n:
            index._X, index._ids, index._alive, index._n = X, ids, np.ones(n, bool), n
        if "hnsw" in arrays:
            index._hnsw = faiss.deserialize_index(arrays["hnsw"])
        elif "sq_start" in arrays:
            index._sq_start = [int(a) for a in arrays["sq_start"]]
            index._sq = [faiss.deserialize_index(arrays[f"sq{i}"]) for i in range(len(index._sq_start))]
            index._errors = arrays["errors"]
            index._outliers = arrays["outliers"]
            index._eps0 = float(arrays["eps0"][0])
        elif kind == "hnsw" or (kind == "exact" and n >= SQ_MIN):
            index.build(ids, X)  # saved before its structures existed: build them
        return index

    # --- search -----------------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the ``k`` most similar templates, best first."""
        q = np.ascontiguousarray(query, np.float32).reshape(self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self._hnsw is not None:
            pos = self._search_hnsw(q, k)
        elif self._sq:
            pos = self._search_certified(q, k)
        else:
            pos = self._brute(q, k)
        scores = self._X[pos] @ q
        order = np.argsort(-scores, kind="stable")
        return self._ids[pos[order]], scores[order]

    def _brute(self, q: np.ndarray, k: int) -> np.ndarray:
        scores = self._X[: self._n] @ q
        scores[~self._alive[: self._n]] = -np.inf
        if k >= self._n:
            return np.nonzero(self._alive[: self._n])[0]
        return np.argpartition(-scores, k - 1)[:k]

    def _search_hnsw(self, q: np.ndarray, k: int) -> np.ndarray:
        assert self._hnsw is not None  # called only for the hnsw kind, once built
        want = k
        while True:
            fetch = min(self._n, want + self._dead)
            _, labels = self._hnsw.search(q[None], fetch)
            pos = labels[0][labels[0] >= 0]
            pos = pos[self._alive[pos]]
            if len(pos) >= k or fetch >= self._n:
                return pos[:k] if len(pos) >= k else pos
            want *= 2

    def _shard_search(self, q: np.ndarray, kp: int) -> tuple[np.ndarray, np.ndarray]:
        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            d, lab = self._sq[i].search(q[None], kp)
            keep = lab[0] >= 0
            return d[0][keep], lab[0][keep] + self._sq_start[i]

        if len(self._sq) == 1:
            parts = [one(0)]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(self._sq), thread_name_prefix="faceaudit-index")
            parts = list(self._pool.map(one, range(len(self._sq))))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _search_certified(self, q: np.ndarray, k: int) -> np.ndarray:
        qnorm = float(np.linalg.norm(q))
        kp = max(64, 4 * k)
        while kp < self._n // 4:
            approx, pos = self._shard_search(q, kp)
            order = np.argsort(-approx)[:kp]
            approx, pos = approx[order], pos[order]
            cand = np.union1d(pos, self._outliers)
            cand = cand[self._alive[cand]]
            if len(cand) >= k:
                exact = self._X[cand] @ q
                top = np.argpartition(-exact, k - 1)[:k]
                kth = float(exact[top].min())
                left_out_bound = float(approx[-1]) + self._eps0 * qnorm + _SLACK
                if len(approx) < kp or left_out_bound < kth:
                    return cand[top]
            kp *= 4
        return self._brute(q, k)

    def close(self) -> None:
        """Stop the search threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
