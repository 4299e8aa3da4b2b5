"""The search index: certified-exact top-k against brute force, additions, removals, HNSW.

The index lives in memory and is the same object over either store, so these tests take no ``store`` and run once
(the index over a PostgreSQL gallery: tests/test_gallery_api.py, tests/test_pg_service.py)."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.gallery.index import SQ_MIN, TemplateIndex


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(ids: np.ndarray, X: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = X @ q
    return ids[np.argsort(-s, kind="stable")[:k]]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = SQ_MIN + 5000
    X = unit(rng, n)
    # near-duplicates make the approximate ranking ambiguous: the certificate must widen or fall back
    X[100:140] = X[50] + 0.02 * unit(rng, 40)
    X[100:140] /= np.linalg.norm(X[100:140], axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    return ids, X, rng


def test_exact_kind_matches_brute_force(data):
    ids, X, rng = data
    index = TemplateIndex(128, "exact", shards=2)
    index.build(ids, X)
    assert index._sq, "the SQ8 prefilter should be active above SQ_MIN"
    queries = np.concatenate([X[[50, 7, 999]] + 0.01, unit(rng, 20)])
    for q in queries:
        q = q / np.linalg.norm(q)
        got, scores = index.search(q, 10)
        assert list(got) == list(brute(ids, X, q, 10))
        assert np.all(np.diff(scores) <= 0)


def test_add_and_remove_keep_results_exact(data):
    ids, X, rng = data
    index = TemplateIndex(128, "exact", shards=2)
    index.build(ids, X)
    extra = unit(rng, 50) * 1.0
    extra[0] = 0.0
    extra[0, 5] = 1.0  # far outside the trained range of dimension 5: must be scored exactly
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    new_ids = np.arange(9_000_000, 9_000_050, dtype=np.int64)
    index.add(new_ids, extra)
    all_ids, all_X = np.concatenate([ids, new_ids]), np.concatenate([X, extra])
    q = extra[0]
    assert list(index.search(q, 5)[0]) == list(brute(all_ids, all_X, q, 5))
    assert index.search(q, 1)[0][0] == 9_000_000
    # removal: the removed ids never come back
    gone = [9_000_000, ids[7]]
    assert index.remove(np.array(gone)) == 2
    got, _ = index.search(q, 20)
    assert not set(gone) & set(got.tolist())
    keep = ~np.isin(all_ids, gone)
    assert list(got) == list(brute(all_ids[keep], all_X[keep], q, 20))
    assert len(index) == len(all_ids) - 2


def test_small_index_and_empty():
    rng = np.random.default_rng(1)
    index = TemplateIndex(128)
    assert index.search(unit(rng, 1)[0], 5)[0].size == 0
    X = unit(rng, 30)
    index.build(np.arange(30), X)
    got, _ = index.search(X[3], 50)
    assert len(got) == 30 and got[0] == 3
    index.remove(np.array([3]))
    assert 3 not in index.search(X[3], 50)[0]


def test_hnsw_kind_finds_near_duplicates():
    rng = np.random.default_rng(2)
    X = unit(rng, 3000)
    index = TemplateIndex(128, "hnsw")
    index.build(np.arange(3000), X)
    hits = [index.search(X[i] + 0.01, 1)[0][0] == i for i in range(0, 3000, 100)]
    assert np.mean(hits) > 0.9
    index.remove(np.array([0]))
    assert 0 not in index.search(X[0], 10)[0]


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_saved_state_restores_the_same_index_without_a_rebuild(data, kind):
    """What the index file holds: ``state()`` → ``from_state()`` answers as the built index, keeps its FAISS
    structures (no rebuild), drops removed rows, and still takes additions and removals."""
    ids, X, rng = data
    n = len(ids) if kind == "exact" else 3000
    index = TemplateIndex(128, kind, shards=2)
    index.build(ids[:n], X[:n])
    index.remove(ids[[7, 8]])
    state = {k: np.array(v) for k, v in index.state().items()}  # copies, as read back from a file
    assert len(state["ids"]) == n - 2 and not set(ids[[7, 8]]) & set(state["ids"].tolist())
    back = TemplateIndex.from_state(128, kind, state)
    assert (len(back._sq) == 2) if kind == "exact" else back._hnsw is not None
    for q in np.concatenate([X[[50, 7, 999]] + 0.01, unit(rng, 10)]):
        q = q / np.linalg.norm(q)
        assert list(back.search(q, 10)[0]) == list(index.search(q, 10)[0])
    if kind == "exact":  # certified exact after the round trip, too
        keep = ~np.isin(ids[:n], ids[[7, 8]])
        q = X[50] + 0.01
        q /= np.linalg.norm(q)
        assert list(back.search(q, 10)[0]) == list(brute(ids[:n][keep], X[:n][keep], q, 10))
    back.add(np.array([5_000_000]), X[7:8])
    assert back.search(X[7], 1)[0][0] == 5_000_000
    back.remove(np.array([5_000_000]))
    assert 5_000_000 not in back.search(X[7], 10)[0]
