"""Membership cannot be probed without a trace: every verify-subject attempt is logged, found or not.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (the ``store`` fixture)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from stores import RawDb

from faceaudit.errors import PolicyError
from faceaudit.gallery import Consent, Gallery, SubjectNotFoundError
from faceaudit.gallery.crypto import generate_key

FACE = str(Path(__file__).parent / "data" / "fairface" / "fairface_0001.jpg")


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def test_refused_attempts_are_logged_with_their_purpose(store):
    with Gallery(store.db, key=generate_key(), engine=FakeEngine()) as g:
        soon = Consent("b", "r", date.today() + timedelta(days=1))
        g.enroll_templates(
            "s1", np.eye(8, dtype=np.float32)[:1], name="n", consent=soon, operator="o", model_id="m"
        )
        for ref, error, why in (
            ("nobody", SubjectNotFoundError, "not enrolled"),
            ("s1", SubjectNotFoundError, "no template of this model"),
        ):
            with pytest.raises(error):
                g.verify_subject(FACE, ref, operator="prober", purpose="curiosity", case="X-1")
            last = list(g.ledger.store.entries())[-1]
            assert last.action == "verify" and last.actor == "prober" and last.purpose == "curiosity"
            assert last.case_ref == "X-1" and last.result == {"status": "refused", "reason": why}
            assert last.params["subject"] == g.pseudonym(ref)
        g.ledger.verify()


def test_expired_consent_refusal_is_logged(store):
    with Gallery(store.db, key=generate_key(), engine=FakeEngine()) as g:
        g.enroll_templates(
            "s1",
            np.eye(8, dtype=np.float32)[:1],
            name="n",
            consent=Consent("b", "r", date.today() + timedelta(days=1)),
            operator="o",
            model_id="fake-model",
        )
        with RawDb(store.db) as conn:
            conn.execute("UPDATE subjects SET consent_expires = '2000-01-01'")
        with pytest.raises(PolicyError, match="expired"):
            g.verify_subject(FACE, "s1", operator="o")
        assert list(g.ledger.store.entries())[-1].result["reason"] == "consent expired"


def test_the_cli_logs_a_probe_for_someone_not_enrolled(store):
    assert run_cli("gallery", "init", *store.args(), env={"FACEAUDIT_KEY": ""}).returncode == 0
    before = store.count("ledger")
    r = run_cli(
        "verify-subject",
        FACE,
        "someone",
        "--operator",
        "o",
        "--purpose",
        "p",
        *store.args(),
        env={"FACEAUDIT_KEY": ""},
    )
    assert r.returncode == 2 and "not enrolled" in r.stderr
    assert store.count("ledger") == before + 1
