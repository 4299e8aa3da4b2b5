"""Membership cannot be probed without a trace: every verify-subject attempt is logged, found or not."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from faceaudit.errors import PolicyError
from faceaudit.gallery import Consent, Gallery, SubjectNotFoundError
from faceaudit.gallery.crypto import generate_key

FACE = str(Path(__file__).parent / "data" / "fairface" / "fairface_0001.jpg")


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def test_refused_attempts_are_logged_with_their_purpose(tmp_path):
    with Gallery(tmp_path / "p.db", key=generate_key(), engine=FakeEngine()) as g:
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


def test_expired_consent_refusal_is_logged(tmp_path):
    path = tmp_path / "x.db"
    with Gallery(path, key=generate_key(), engine=FakeEngine()) as g:
        g.enroll_templates(
            "s1",
            np.eye(8, dtype=np.float32)[:1],
            name="n",
            consent=Consent("b", "r", date.today() + timedelta(days=1)),
            operator="o",
            model_id="fake-model",
        )
        conn = sqlite3.connect(path)
        conn.execute("UPDATE subjects SET consent_expires = '2000-01-01'")
        conn.commit()
        conn.close()
        with pytest.raises(PolicyError, match="expired"):
            g.verify_subject(FACE, "s1", operator="o")
        assert list(g.ledger.store.entries())[-1].result["reason"] == "consent expired"


def test_the_cli_logs_a_probe_for_someone_not_enrolled(tmp_path):
    db = tmp_path / "c.db"
    assert run_cli("gallery", "init", "--db", str(db), env={"FACEAUDIT_KEY": ""}).returncode == 0
    count = lambda: sqlite3.connect(db).execute("SELECT COUNT(*) FROM ledger").fetchone()[0]  # noqa: E731
    before = count()
    r = run_cli(
        "verify-subject",
        FACE,
        "someone",
        "--operator",
        "o",
        "--purpose",
        "p",
        "--db",
        str(db),
        env={"FACEAUDIT_KEY": ""},
    )
    assert r.returncode == 2 and "not enrolled" in r.stderr
    assert count() == before + 1
