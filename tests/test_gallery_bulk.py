"""Bulk enrolment (``Gallery.enroll_many``, multi-row statements) stores what the per-subject path stores.

The same records go through ``enroll_templates`` one subject at a time into one gallery and through
``enroll_many`` into another, on SQLite and on PostgreSQL: the same subject and template rows, the same opened
templates, the same version, and a ledger with one ``enroll`` entry per subject that verifies and says the same.
A batch that meets an enrolled ref, or repeats one, is refused whole.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from stores import postgres_store, sqlite_store

from faceaudit.gallery import Consent, Gallery, SubjectExistsError
from faceaudit.gallery.crypto import generate_key

MODEL = "fake-model"
CONSENT = Consent("explicit", "registrar", expires=date.today() + timedelta(days=30))


class FakeEngine:
    model_id, threshold, policy, dim = MODEL, 0.5, "central", 16


@pytest.fixture()
def two_stores(backend, request, tmp_path):
    """Two empty gallery locations on the parametrised backend."""
    if backend == "sqlite":
        yield sqlite_store(tmp_path / "a"), sqlite_store(tmp_path / "b")
        return
    cluster = request.getfixturevalue("pg_cluster")
    names = [
        f"bulk_{side}_{request.node.name[-12:].lower()}".replace("[", "_").replace("]", "") for side in "ab"
    ]
    yield tuple(postgres_store(cluster.create_database(n), tmp_path / n) for n in names)
    for n in names:
        cluster.drop_database(n)


def _records(n: int, seed: int = 3) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        X = rng.standard_normal((1 + i % 3, 16)).astype(np.float32)  # 1 to 3 templates a subject
        records.append((f"s{i:03d}", f"Name {i}", X / np.linalg.norm(X, axis=1, keepdims=True)))
    return records


def _rows(g: Gallery) -> tuple[list, list]:
    repo = g._repo
    subjects = repo._q(
        "SELECT id, subject_ref, display_name, consent_basis, consent_by, consent_expires FROM subjects ORDER BY id"
    ).fetchall()
    templates = repo._q(
        "SELECT id, subject_id, model_id, quality, source_sha256, image IS NULL FROM templates ORDER BY id"
    ).fetchall()
    return [tuple(r) for r in subjects], [tuple(r) for r in templates]


def _opened(g: Gallery) -> dict[int, tuple[str, np.ndarray]]:
    return {
        i: (ref, g._sealer.open(blob, gallery_id=g.gallery_id, subject_ref=ref, model_id=MODEL))
        for i, ref, blob in g._repo.iter_sealed_templates(MODEL)
    }


def _entries(g: Gallery) -> list[tuple]:
    """What each ledger entry says, the pseudonym replaced by the ref it stands for (pseudonyms are per gallery)."""
    refs = {g.pseudonym(s["subject_ref"]): s["subject_ref"] for s in g.subjects()}
    out = []
    for e in g.ledger.export():
        result = dict(e["result"])
        if "subject" in result:
            result["subject"] = refs[result["subject"]]
        out.append((e["seq"], e["action"], e["actor"], e["gallery_version"], e["params"], result, e["auth"]))
    return out


def test_bulk_enrolment_stores_what_the_per_subject_path_stores(two_stores):
    one, bulk = two_stores
    key, records = generate_key(), _records(23)
    with Gallery(one.db, key=key, engine=FakeEngine(), operator="setup") as g1:
        for ref, name, X in records:
            g1.enroll_templates(ref, X, name=name, consent=CONSENT, operator="clerk", model_id=MODEL)
        expected = (_rows(g1), _opened(g1), g1._repo.version(), _entries(g1), g1.subjects())
        assert g1.ledger.verify().n_entries == 1 + 23
    with Gallery(bulk.db, key=key, engine=FakeEngine(), operator="setup") as g2:
        n = g2.enroll_many(records, consent=CONSENT, operator="clerk", model_id=MODEL, batch_size=5)
        assert n == 23
        got = (_rows(g2), _opened(g2), g2._repo.version(), _entries(g2), g2.subjects())
        assert g2.ledger.verify().n_entries == 1 + 23
    assert got[0] == expected[0]  # subject and template rows (ids included)
    assert got[1].keys() == expected[1].keys()
    for i, (ref, vector) in expected[1].items():
        assert got[1][i][0] == ref and np.array_equal(got[1][i][1], vector)
    assert got[2] == expected[2] == 23
    assert got[3][1:] == expected[3][1:]  # the genesis entry names its own gallery
    drop = ("consent_at", "created_at")
    assert [{k: v for k, v in s.items() if k not in drop} for s in got[4]] == [
        {k: v for k, v in s.items() if k not in drop} for s in expected[4]
    ]


@pytest.mark.parametrize("clash", ["enrolled", "repeated"])
def test_a_bulk_batch_that_meets_a_taken_ref_is_refused_whole(store, clash):
    records = _records(12)
    with Gallery(store.db, key=generate_key(), engine=FakeEngine(), operator="setup") as g:
        g.enroll_many(records[:4], consent=CONSENT, operator="clerk", model_id=MODEL)
        before = (_rows(g), g._repo.version(), g.ledger.verify().n_entries)
        again = records[4:] + ([records[1]] if clash == "enrolled" else [records[6]])
        with pytest.raises(SubjectExistsError, match="s001" if clash == "enrolled" else "s006"):
            g.enroll_many(again, consent=CONSENT, operator="clerk", model_id=MODEL, batch_size=100)
        assert (_rows(g), g._repo.version(), g.ledger.verify().n_entries) == before
        res = g.identify_template(
            records[2][2][0], probe_sha256="0" * 64, purpose="p", case="c", operator="o"
        )
        assert res.candidates[0].subject_ref == "s002"
        assert "s005" not in {s["subject_ref"] for s in g.subjects()}
