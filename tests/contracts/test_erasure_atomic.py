"""Erasure is one transaction owned by the gallery: a process killed at any step leaves all of it or none of it,
and after a restart no byte of the erased subject is left in the store's files. Both stores."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from service_fixtures import MODEL_ID, make_gallery
from stores import stored_bytes

from faceaudit.gallery import Consent
from faceaudit.operations.records import open_service_store

pytestmark = pytest.mark.slow

REF, NAME, CONSENT = "kill-Ünal-01", "Ünal Killmann", "consent sheet KX-42"


def _setup(store) -> str:
    """A gallery with the subject and one stored search (with a review) that names it; returns the search id."""
    make_gallery(store, n_synthetic=3)
    v = np.random.default_rng(3).standard_normal((1, 128)).astype(np.float32)
    with store.gallery(create=False) as g:
        g.enroll_templates(
            REF,
            v / np.linalg.norm(v),
            name=NAME,
            consent=Consent(CONSENT, "desk"),
            operator="o",
            model_id=MODEL_ID,
        )
        pseudonym = g.pseudonym(REF)
    records = open_service_store(store.db)
    try:
        cands = [{"rank": 1, "subject_ref": REF, "name": NAME, "similarity": 0.9, "above_threshold": True}]
        records.add_search(
            search_id="s-1", principal="searcher", key_id="k1", purpose="p", case_ref="c", ledger_seq=1,
            threshold=0.5, candidates=cands, pseudonyms={REF: pseudonym},
        )  # fmt: skip
        with records._write() as conn:  # noqa: SLF001 (a review row as the service writes it)
            conn.execute(
                "INSERT INTO service_reviews (search_id, principal, key_id, decision, subject_ref, reason, "
                "ledger_seq, created_at) VALUES ('s-1', 'rev', 'k2', 'confirm', ?, 'same', 2, 'now')",
                (REF,),
            )
    finally:
        records.close()
    return "s-1"


def _audits_bytes(store) -> bytes:
    """Every file under the audits folder that the store owns (``DB.audits`` beside a SQLite file)."""
    from pathlib import Path

    folder = Path(f"{store.db}.audits") if not store.pg else store.folder / "audits"
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file()) if folder.exists() else b""


def _erase_and_die(store, when: str) -> int:
    """Run an erasure in a child process that kills itself (SIGKILL) ``when``: inside the transaction, just before
    the commit (``in_transaction``), or after the commit, before the scrub (``before_scrub``)."""
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path[:0] = {sys.path!r}
        from pathlib import Path
        from stores import GalleryStore
        store = GalleryStore({store.kind!r}, {store.db!r}, Path({str(store.key_file)!r}), Path({str(store.folder)!r}))
        with store.gallery(create=False) as g:
            if {when!r} == "in_transaction":
                forget = g._repo.forget_subjects
                def forget_then_die(erased):
                    forget(erased)
                    os.kill(os.getpid(), signal.SIGKILL)
                g._repo.forget_subjects = forget_then_die
            g.erase({REF!r}, reason="asked", operator="dpo", scrub=False)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    return subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(__file__), timeout=120).returncode


def test_killed_inside_the_erasure_transaction_erases_nothing(store):
    _setup(store)
    assert _erase_and_die(store, "in_transaction") == -9
    with store.gallery(create=False) as g:  # restart: all or nothing, here nothing
        assert g.has_subject(REF)
    with store.raw() as conn:
        assert (
            json.loads(conn.execute("SELECT candidates FROM service_searches").fetchone()[0])[0][
                "subject_ref"
            ]
            == REF
        )


def test_killed_after_the_commit_leaves_nothing_after_restart(store):
    _setup(store)
    assert _erase_and_die(store, "before_scrub") == -9
    with store.gallery(create=False) as g:  # restart: the pending scrub completes on open
        assert not g.has_subject(REF) and g.scrub_pending is None
    with store.raw() as conn:
        cands = conn.execute("SELECT candidates FROM service_searches").fetchone()[0]
        reviewed = conn.execute("SELECT subject_ref FROM service_reviews").fetchone()[0]
    stored = json.loads(cands)[0]
    assert stored["erased"] and stored["name"] is None and stored["subject_ref"] != REF and reviewed != REF
    if store.pg:
        with store.gallery(create=False) as g:
            assert g.scrub(vacuum=True)  # PostgreSQL: VACUUM FULL rewrites the table files (docs/scaling.md)
    blob = stored_bytes(store) + _audits_bytes(store)
    for secret in (REF, NAME, CONSENT):
        assert secret.encode() not in blob and json.dumps(secret)[1:-1].encode() not in blob, secret


def test_a_new_gallery_file_is_readable_by_its_owner_only(tmp_path):
    from faceaudit.gallery import Gallery
    from faceaudit.gallery.crypto import generate_key

    db = tmp_path / "g.db"
    with Gallery(db, key=generate_key(), operator="o") as g:
        g.enroll_templates(
            "r1",
            np.eye(1, 128, dtype=np.float32),
            name="n",
            consent=Consent("b", "c"),
            operator="o",
            model_id=MODEL_ID,
        )
        for path in tmp_path.glob("g.db*"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_a_search_or_review_racing_an_erasure_cannot_write_the_ref_back(store):
    """The search ran (and named the subject) before the erasure committed; storing it after must not bring the
    ref back, and a review confirming the erased candidate is refused, both inside the store's transaction."""
    from faceaudit.operations.review import Decision, Review, ReviewRefused

    _setup(store)
    with store.gallery(create=False) as g:
        pseudonym = g.pseudonym(REF)
        g.erase(REF, reason="asked", operator="dpo")
    records = open_service_store(store.db)
    try:
        cands = [{"rank": 1, "subject_ref": REF, "name": NAME, "similarity": 0.9, "above_threshold": True}]
        stored = records.add_search(
            search_id="s-late", principal="searcher", key_id="k1", purpose="p", case_ref="c", ledger_seq=1,
            threshold=0.5, candidates=cands, pseudonyms={REF: pseudonym},
        )  # fmt: skip
        assert stored[0]["subject_ref"] == pseudonym and stored[0]["name"] is None and stored[0]["erased"]
        from faceaudit.gallery.values import Actor

        with pytest.raises(ReviewRefused, match="candidates"):
            records.add_review(
                "s-late", Review("rev", Decision.CONFIRM, REF), key_id="k2", reason="same",
                actor=Actor.service("rev", "k2"), pseudonym=lambda r: pseudonym,
            )  # fmt: skip
    finally:
        records.close()
    with store.raw() as conn:
        rows = [r[0] for r in conn.execute("SELECT candidates FROM service_searches").fetchall()]
    assert not [r for r in rows if json.dumps(REF)[1:-1] in r or REF in r]
