"""A replica's index follows other processes' changes without waiting for a search: catch-up by version, woken by
PostgreSQL LISTEN/NOTIFY (a poll on SQLite), reconnecting after a lost connection. Runs on both stores."""

from __future__ import annotations

import time

import numpy as np
import pytest

from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.crypto import generate_key
from faceaudit.gallery.follower import IndexFollower

CONSENT = Consent("signed consent form", "Registrar Ruth")
MODEL = "fake-model"


class FakeEngine:
    model_id, threshold, policy, dim = MODEL, 0.5, "central", 128


def units(n: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def wait_until(predicate, limit_s: float = 20.0) -> bool:
    """Poll ``predicate`` until it holds or ``limit_s`` passes (a generous limit: this is not a timing test)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def index_ids(g: Gallery) -> set[int]:
    """The template ids in ``g``'s in-memory index, read without a search (which would catch up by itself)."""
    live = g._live  # noqa: SLF001 - the test looks inside on purpose
    return set(live._ids.tolist())  # noqa: SLF001


def stored_ids(g: Gallery) -> set[int]:
    return set(g._repo.template_ids(MODEL))  # noqa: SLF001


@pytest.fixture()
def replicas(store):
    """Two Gallery objects on one store, as two service replicas would hold them; ``b`` is followed."""
    key = generate_key()
    a = Gallery(store.db, key=key, engine=FakeEngine())
    b = Gallery(store.db, key=key, engine=FakeEngine(), create=False)
    X = units(40, 7)
    for i in range(10):
        a.enroll_templates(f"s{i}", X[i : i + 1], name=f"n{i}", consent=CONSENT, operator="o", model_id=MODEL)
    assert b.rebuild_index(MODEL) == 10
    follower = IndexFollower(b).start()
    yield a, b, follower, X
    follower.stop()
    a.close()
    b.close()


def test_enrolment_and_erasure_through_one_reach_the_other_index_without_a_search(replicas, store):
    a, b, follower, X = replicas
    a.enroll_many(
        ((f"t{i}", f"m{i}", X[i : i + 1]) for i in range(10, 30)),
        consent=CONSENT,
        operator="o",
        model_id=MODEL,
        batch_size=7,
    )
    assert wait_until(lambda: b.index_version == a.version)
    assert index_ids(b) == stored_ids(a) and len(index_ids(b)) == 30
    a.erase("s3", reason="asked", operator="dpo")
    a.erase("t12", reason="asked", operator="dpo")
    assert wait_until(lambda: b.index_version == a.version)
    assert index_ids(b) == stored_ids(a) and len(index_ids(b)) == 28
    # searches on the followed replica never return an erased subject, and see the new ones
    res = b.identify_template(X[12], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=5)
    assert "t12" not in [c.subject_ref for c in res.candidates]
    res = b.identify_template(X[20], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=1)
    assert res.candidates[0].subject_ref == "t20" and res.gallery_version == a.version
    assert follower.catch_ups >= 2 and follower.errors == 0
    if store.pg:  # PostgreSQL: woken by notices, not by the 30 s safety poll
        assert follower._listener.notices >= 2  # noqa: SLF001


def test_a_caught_up_index_equals_a_rebuilt_one(replicas):
    a, b, follower, X = replicas
    for i in range(10, 25):
        a.enroll_templates(f"u{i}", X[i : i + 1], name=f"n{i}", consent=CONSENT, operator="o", model_id=MODEL)
        if i % 4 == 0:
            a.erase(f"s{i % 10}", reason="r", operator="o")
    assert wait_until(lambda: b.index_version == a.version)
    follower.stop()
    caught_up = [b._live.index.search(X[i], 8) for i in range(40)]  # noqa: SLF001
    b.rebuild_index(MODEL)
    rebuilt = [b._live.index.search(X[i], 8) for i in range(40)]  # noqa: SLF001
    for (ids1, s1), (ids2, s2) in zip(caught_up, rebuilt, strict=True):
        assert ids1.tolist() == ids2.tolist()
        np.testing.assert_array_equal(s1, s2)


def test_the_follower_reconnects_and_catches_up_after_losing_its_connection(replicas, store):
    if not store.pg:
        pytest.skip("SQLite has no server connection to lose: its follower polls the file")
    a, b, follower, X = replicas
    assert wait_until(lambda: follower._listener._conn is not None)  # noqa: SLF001
    with store.raw() as conn:
        killed = conn.scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
        )
    assert killed >= 1
    a.enroll_templates("late", X[35:36], name="Late", consent=CONSENT, operator="o", model_id=MODEL)
    assert wait_until(lambda: b.index_version == a.version)
    assert follower._listener.reconnects >= 1  # noqa: SLF001
    assert index_ids(b) == stored_ids(a)
