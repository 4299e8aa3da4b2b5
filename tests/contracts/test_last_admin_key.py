"""The service never revokes the last live admin key, and the rule lives in the revoking transaction: two admins
who revoke each other's keys at the same moment, through two connections, cannot both succeed. Both stores.

The CLI on the server is the way back in: it may revoke any key (``keep_an_admin`` False)."""

from __future__ import annotations

import threading

import pytest
from conftest import run_cli
from service_fixtures import make_gallery, make_key

from faceaudit.gallery.values import Actor
from faceaudit.operations.cases import LastAdminKey
from faceaudit.operations.records import open_service_store

pytestmark = pytest.mark.slow


def _key_id(key: str) -> str:
    from faceaudit.operations.keys import key_id_of

    key_id = key_id_of(key)
    assert key_id is not None
    return key_id


def _live_admins(store) -> list[str]:
    records = open_service_store(store.db)
    try:
        return [k.key_id for k in records.list_keys() if k.revoked_at is None and "admin" in k.roles]
    finally:
        records.close()


def test_two_admins_revoking_each_other_at_once_leave_one_admin(store):
    make_gallery(store, n_synthetic=1)
    a, b = _key_id(make_key(store, "root-a", "admin")), _key_id(make_key(store, "root-b", "admin"))
    make_key(store, "ada", "auditor")
    # each admin revokes the other's key, on a connection of its own, released together
    jobs = [(a, "root-b"), (b, "root-a")]
    stores = [open_service_store(store.db) for _ in jobs]
    gate = threading.Barrier(len(jobs))
    outcome: dict[str, object] = {}

    def revoke(i: int) -> None:
        key_id, who = jobs[i]
        gate.wait()
        try:
            outcome[key_id] = stores[i].revoke_key(key_id, actor=Actor.local(who), keep_an_admin=True)
        except LastAdminKey as exc:
            outcome[key_id] = exc

    threads = [threading.Thread(target=revoke, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.close()
    refused = [k for k, v in outcome.items() if isinstance(v, LastAdminKey)]
    revoked = [k for k, v in outcome.items() if not isinstance(v, LastAdminKey)]
    assert len(refused) == 1 and len(revoked) == 1, outcome
    assert "last live admin key" in str(outcome[refused[0]])
    assert _live_admins(store) == refused  # the refused revocation left its key live; nothing else changed


def test_an_expired_admin_key_does_not_count_and_the_cli_may_still_revoke_the_last(store):
    make_gallery(store, n_synthetic=1)
    live = _key_id(make_key(store, "root", "admin"))
    expired = _key_id(make_key(store, "old-root", "admin"))
    records = open_service_store(store.db)
    try:
        with records._write() as conn:  # noqa: SLF001 (the second admin key expired long ago)
            conn.execute("UPDATE service_keys SET expires = '2000-01-01' WHERE key_id = ?", (expired,))
        with pytest.raises(LastAdminKey, match=live):
            records.revoke_key(live, actor=Actor.local("root"), keep_an_admin=True)
    finally:
        records.close()
    assert live in _live_admins(store)  # refused: nothing written
    # the server's CLI is the way back in: it revokes the last admin key when told to
    res = run_cli("keys", "revoke", live, *store.args(), "--operator", "root")
    assert res.returncode == 0, res.stderr
    assert live not in _live_admins(store)
