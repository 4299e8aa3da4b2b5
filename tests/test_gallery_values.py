"""Request values (one rule for CLI, API and service), actors in the ledger, and a light key-less import.

The tests that open a gallery run on both stores: an SQLite file and a real PostgreSQL database (``store``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pytest

from faceaudit.errors import ConsentError, PolicyError, UsageError
from faceaudit.gallery import (
    Actor,
    Consent,
    EnrolmentRequest,
    Gallery,
    GalleryLedger,
    SearchRequest,
    VerificationRequest,
)
from faceaudit.gallery.crypto import generate_key
from faceaudit.gallery.values import clean_text, os_user

CONSENT = Consent("signed consent form", "Registrar Ruth")


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def unit(rng, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_values_check_themselves_when_built():
    with pytest.raises(ConsentError, match="consent basis"):
        Consent(" ", "Ruth")
    with pytest.raises(ConsentError, match="not in the future"):
        Consent("form", "Ruth", date.today() - timedelta(days=1))
    assert Consent("  form  ", "Ruth ").basis == "form"
    with pytest.raises(PolicyError, match="--purpose, --case"):
        SearchRequest.build(" ", None, "op")
    with pytest.raises(UsageError, match="top-k"):
        SearchRequest.build("p", "c", "op", top_k=0)
    with pytest.raises(UsageError, match="--name"):
        EnrolmentRequest.build("s1", "", CONSENT, "op")
    with pytest.raises(PolicyError, match="--operator"):
        VerificationRequest("s1", " ")  # type: ignore[arg-type]
    request = EnrolmentRequest.build(" s1 ", "Name", CONSENT, "op")
    assert request.subject_ref == "s1" and request.operator == Actor.local("op")


def test_actor_kinds():
    local = Actor.local("desk-3")
    assert local.auth == "local" and local.os_user == os_user()
    assert local.ledger_auth() == {"auth": "local", "os_user": os_user()}
    service = Actor.service("alice@example.org", "key-7")
    assert service.ledger_auth() == {"auth": "api-key", "key_id": "key-7"}
    with pytest.raises(UsageError):
        Actor.service("alice", "")
    assert Actor.of("bob", "who") == Actor.local("bob")
    assert Actor.of(service, "who") is service
    assert clean_text(" x ", "field") == "x"


def test_every_api_entry_point_applies_the_same_rule(store):
    g = Gallery(store.db, key=generate_key(), engine=FakeEngine())
    X = unit(np.random.default_rng(0), 3)
    with pytest.raises(UsageError, match="--name"):
        g.enroll_templates("s", X[:1], name=" ", consent=CONSENT, operator="o", model_id="fake-model")
    with pytest.raises(UsageError, match="--operator"):
        g.enroll_many([("s", "n", X[:1])], consent=CONSENT, operator=" ", model_id="fake-model")
    with pytest.raises(UsageError, match="subject ref"):
        g.enroll_many([(" ", "n", X[:1])], consent=CONSENT, operator="o", model_id="fake-model")
    with pytest.raises(PolicyError, match="--case"):
        g.identify_template(X[0], probe_sha256="0" * 64, purpose="p", case="", operator="o")
    assert g.subjects() == [] and g.ledger.store.count() == 1
    g.close()


def test_ledger_records_who_acted_and_verifies_over_mixed_histories(store):
    path = store.db
    g = Gallery(path, key=generate_key(), engine=FakeEngine(), operator="admin")
    X = unit(np.random.default_rng(1), 2)
    g.enroll_templates("s0", X[:1], name="n0", consent=CONSENT, operator="desk", model_id="fake-model")
    service = Actor.service("alice@example.org", "key-7")
    g.identify_template(X[0], probe_sha256="0" * 64, purpose="p", case="c", operator=service)
    g.erase("s0", reason="request", operator=service)
    entries = list(g.ledger.store.entries())
    assert entries[1].actor == "desk" and entries[1].auth == {"auth": "local", "os_user": os_user()}
    assert entries[2].actor == "alice@example.org" and entries[2].auth == {
        "auth": "api-key",
        "key_id": "key-7",
    }
    assert entries[3].auth["key_id"] == "key-7"
    g.close()
    # an entry written before actors were recorded (no auth field) keeps verifying beside the new ones
    with GalleryLedger(path) as gl:
        with gl._repo.write():
            gl.ledger.append("export", "old-style", gallery_id=gl.gallery_id, gallery_version=0)
        assert gl.ledger.verify().n_entries == len(entries) + 1
        rows, _ = gl.export("auditor")
    assert "auth" not in rows[-1] and rows[1]["auth"]["auth"] == "local"
    json.dumps(rows)


def test_key_less_ledger_verify_loads_no_image_or_index_code(store):
    path = store.db
    Gallery(path, key=generate_key(), engine=FakeEngine()).close()
    code = (
        "import sys\n"
        "from faceaudit.gallery import GalleryLedger\n"
        f"with GalleryLedger({str(path)!r}) as gl:\n"
        "    gl.ledger.verify()\n"
        "heavy = [m for m in ('cv2', 'faiss', 'PIL', 'onnxruntime', 'faceaudit.imaging', 'faceaudit.pipeline',"
        " 'faceaudit.models') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_gallery_runs_on_any_repository(store):
    from faceaudit.gallery.locations import open_repository

    repo = open_repository(store.db, create=True)
    g = Gallery("in-memory name", key=generate_key(), engine=FakeEngine(), repository=repo)
    X = unit(np.random.default_rng(2), 2)
    g.enroll_templates("s0", X[:1], name="n0", consent=CONSENT, operator="o", model_id="fake-model")
    res = g.identify_template(X[0], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=1)
    assert res.candidates[0].subject_ref == "s0" and g.ledger.verify().n_entries == 3
    g.close()
