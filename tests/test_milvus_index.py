"""The Milvus index against a real milvus-lite file: same answers as the exact index, checked against the store."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install 'faceaudit[milvus]')")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install 'faceaudit[milvus]')")

from faceaudit.errors import UsageError  # noqa: E402
from faceaudit.gallery.index import TemplateIndex  # noqa: E402
from faceaudit.gallery.milvus_index import (  # noqa: E402
    MilvusIndex,
    MilvusIndexError,
    collection_name,
    parse_target,
)

DIM = 128


def templates(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(100, 100 + n, dtype=np.int64), x


class CountingIndex(MilvusIndex):
    """Counts collection (re)creations, to tell a kept collection from a rebuilt one."""

    created = 0

    def _create(self) -> None:
        type(self).created += 1
        super()._create()


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    return f"milvus:{tmp_path_factory.mktemp('milvus') / 'gallery-milvus.db'}"


def test_target_parsing():
    t = parse_target("milvus:http://db.example:19530?index_type=hnsw&M=16")
    assert (t.lite, t.index_type, t.params) == (False, "HNSW", {"M": 16, "efConstruction": 200})
    t = parse_target("milvus:some/dir/x.db")
    assert t.lite and t.index_type == "FLAT" and t.uri.endswith("some/dir/x.db")
    with pytest.raises(UsageError, match=r"\.db"):
        parse_target("milvus:gallery")
    with pytest.raises(UsageError):
        parse_target("milvus:")
    name = collection_name("8f2c-44", "sface@1:abc")
    assert name.startswith("faceaudit_8f2c_44_") and name.replace("_", "").isalnum()


def test_same_answers_as_the_exact_index_and_follows_changes(lite):
    ids, X = templates(3000)
    exact = TemplateIndex(DIM)
    exact.build(ids, X)
    index = CountingIndex(DIM, lite, "t_answers")
    try:
        index.build(ids, X)
        assert len(index) == 3000 and CountingIndex.created == 1
        queries = templates(20, seed=1)[1]
        for q in [*queries, X[7], X[2500]]:
            got_ids, got_scores = index.search(q, 10)
            want_ids, want_scores = exact.search(q, 10)
            assert np.array_equal(got_ids, want_ids)
            np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-6)
        # an erasure: gone from every later search; an enrolment: found at once
        assert index.remove(ids[[7, 8]]) == 2 and len(index) == 2998
        assert ids[7] not in index.search(X[7], 50)[0]
        new_ids, new_X = np.array([9001], np.int64), templates(1, seed=5)[1]
        index.add(new_ids, new_X)
        assert index.search(new_X[0], 1)[0][0] == 9001 and len(index) == 2999
        assert index.search(X[0], 0)[0].size == 0
    finally:
        index.close()


def test_collection_is_checked_against_the_store_and_rebuilt_when_it_differs(lite):
    ids, X = templates(1500, seed=2)
    index = CountingIndex(DIM, lite, "t_check")
    CountingIndex.created = 0
    try:
        index.build(ids, X)
        index.build(ids, X)  # matches the store: kept, not refilled
        assert CountingIndex.created == 1 and index.differences(ids, X, sample=len(ids)) == []
        # a row the store no longer has (say an erasure that crashed before reaching Milvus) ...
        index._client.insert(index.collection, [{"id": 5, "vector": X[0]}])
        assert "not in the store" in index.differences(ids, X)[0]
        # ... and a vector that differs from the stored template
        index._client.upsert(index.collection, [{"id": int(ids[3]), "vector": X[4]}])
        problems = index.differences(np.append(ids, 5), np.vstack([X, X[:1]]), sample=len(ids) + 1)
        assert problems and "differ" in problems[0]
        index.build(ids, X)  # rebuilt from the store, then checked again
        assert CountingIndex.created == 2 and len(index) == 1500
        assert index.differences(ids, X, sample=len(ids)) == []
        assert 5 not in index.search(X[0], 20)[0]
        assert index.search(X[3], 1)[0][0] == ids[3]
    finally:
        index.drop()
        index.close()


def test_a_lite_file_open_elsewhere_gets_a_clear_error(lite):
    index = MilvusIndex(DIM, lite, "t_busy")
    try:
        code = (
            "import sys\n"
            "from faceaudit.gallery.milvus_index import MilvusIndex, MilvusIndexError\n"
            "try:\n"
            f"    MilvusIndex({DIM}, {lite!r}, 't_busy')\n"
            "except MilvusIndexError as e:\n"
            "    print(e); sys.exit(7)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 7, out.stderr[-2000:]
        assert "one process at a time" in out.stdout
    finally:
        index.close()


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(MilvusIndexError, match="cannot open Milvus"):
        MilvusIndex(DIM, "milvus:http://127.0.0.1:9?timeout=1", "t_none")


def test_gallery_with_a_milvus_index_finds_forgets_and_reopens(tmp_path):
    from faceaudit.gallery import Consent, Gallery
    from faceaudit.gallery.crypto import generate_key

    class FakeEngine:
        model_id, threshold, policy, dim = "fake-model", 0.5, "central", 128

    ids, X = templates(60, seed=9)
    key, kind = generate_key(), f"milvus:{tmp_path / 'g-milvus.db'}"
    consent = Consent("signed form", "registrar")

    def top(g, i):
        res = g.identify_template(X[i], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=3)
        return [c.subject_ref for c in res.candidates]

    with Gallery(tmp_path / "g.db", key=key, engine=FakeEngine(), index=kind) as g:
        assert g.index_kind == kind
        g.enroll_many(((f"s{i}", f"n{i}", X[i : i + 1]) for i in range(60)), consent=consent, operator="o",
                      model_id="fake-model")  # fmt: skip
        assert top(g, 17)[0] == "s17"
        g.erase("s17", reason="request", operator="dpo")
        assert "s17" not in top(g, 17)  # gone from Milvus as soon as the erasure answered
    with Gallery(tmp_path / "g.db", key=key, engine=FakeEngine(), create=False) as g:  # rebuilt, checked
        assert g.index_kind == kind and top(g, 5)[0] == "s5" and "s17" not in top(g, 17)
        assert g.ledger.verify().n_entries >= 62
        # a follower's catch-up at the current version leaves the shared collection alone (no rebuild)
        index = g._live.index  # noqa: SLF001
        assert g.sync_index() == (0, 0) and g._live.index is index  # noqa: SLF001
