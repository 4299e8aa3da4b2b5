"""A signed ledger cannot be downgraded by someone without the ledger key, and anchors name the right entry.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (the ``store`` fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from stores import RawDb

from faceaudit.errors import LedgerIntegrityError, PolicyError
from faceaudit.gallery import Consent, Gallery, GalleryLedger
from faceaudit.gallery.crypto import generate_key
from faceaudit.ledger.chain import GENESIS, compute_hash

LEDGER_KEY = b"ledger-secret"
NO_KEY = {"FACEAUDIT_LEDGER_KEY": ""}


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def make(path: str, ledger_key: bytes | None, n: int = 5) -> bytes:
    key = generate_key()
    with Gallery(path, key=key, engine=FakeEngine(), ledger_key=ledger_key) as g:
        for i in range(n):
            g.enroll_templates(
                f"s{i}",
                np.eye(8, dtype=np.float32)[i : i + 1],
                name=f"n{i}",
                consent=Consent("b", "r"),
                operator="o",
                model_id="fake-model",
            )
    return key


def rechain_unsigned(path: str, edit=None) -> None:
    """What an attacker with write access but no ledger key can do: edit, relabel as SHA-256, rechain."""
    with GalleryLedger(path) as gl:
        entries = list(gl.ledger.store.entries())
    conn = RawDb(path)
    prev = GENESIS
    for e in entries:
        params = dict(e.params)
        if edit is not None:
            params = edit(e, params)
        body = {**e.body(), "params": params, "alg": "sha256"}
        new_hash = compute_hash(prev, body, None)
        conn.execute(
            "UPDATE ledger SET params = ?, alg = 'sha256', prev_hash = ?, entry_hash = ? WHERE seq = ?",
            (json.dumps(params, sort_keys=True), prev, new_hash, e.seq),
        )
        prev = new_hash
    conn.close()


def verify(path: str, *extra: str, env: dict | None = None):
    return run_cli("ledger", "verify", "--db", str(path), *extra, env=env or NO_KEY)


def test_a_relabelled_signed_ledger_is_reported_as_downgraded(store):
    path = store.db
    make(path, LEDGER_KEY)
    assert verify(path, env={"FACEAUDIT_LEDGER_KEY": LEDGER_KEY.decode()}).returncode == 0
    rechain_unsigned(path)
    r = verify(path)
    assert r.returncode == 1 and "ledger entry 1: downgraded" in r.stderr, r.stdout + r.stderr


def test_rewriting_the_genesis_declaration_too_is_caught_by_the_recorded_mode(store):
    path = store.db
    make(path, LEDGER_KEY)

    def unsign(entry, params):
        return {**params, "ledger_signed": False} if entry.seq == 1 else params

    rechain_unsigned(path, unsign)
    r = verify(path)
    assert r.returncode == 1 and "ledger entry 1" in r.stderr and "intact" not in r.stdout


def test_an_anchor_kept_elsewhere_catches_a_complete_rewrite_and_names_the_entry(store):
    path = store.db
    make(path, None)
    anchor = run_cli("ledger", "anchor", "--db", str(path)).stdout.strip()
    assert anchor.startswith("6:")

    def edit(entry, params):
        return {**params, "model": "other"} if entry.seq == 6 else params

    rechain_unsigned(path, edit)
    assert verify(path).returncode == 0  # without an anchor a full rewrite of an unsigned chain is invisible
    r = verify(path, "--anchor", anchor)
    assert r.returncode == 1 and "ledger entry 6: modified" in r.stderr, r.stderr
    bare = anchor.split(":")[1]
    r = verify(path, "--anchor", bare)
    assert r.returncode == 1 and "deleted or rewritten" in r.stderr and "SEQ:HASH" in r.stderr


def test_operators_are_never_told_to_turn_signing_off_a_downgraded_ledger(store):
    signed = store.db
    key = make(signed, LEDGER_KEY, n=2)
    rechain_unsigned(signed)
    with Gallery(signed, key=key, engine=FakeEngine(), ledger_key=LEDGER_KEY, create=False) as g:
        with pytest.raises(LedgerIntegrityError, match="downgraded") as err:
            g.erase("s0", reason="r", operator="o")
        assert "unset" not in str(err.value)
        assert g.has_subject("s0")  # nothing was written


def test_operators_are_never_told_to_turn_signing_off_an_unsigned_ledger(store):
    plain = store.db
    key = make(plain, None, n=1)
    with Gallery(plain, key=key, engine=FakeEngine(), ledger_key=LEDGER_KEY, create=False) as g:
        with pytest.raises(PolicyError) as err:
            g.erase("s0", reason="r", operator="o")
        assert "unset" not in str(err.value) and "cannot change mode" in str(err.value)
