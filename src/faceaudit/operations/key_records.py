"""API keys as the accountability records store them: never the key, only its keyed hash (see
:mod:`faceaudit.operations.keys` for the key format). A mixin of :class:`~faceaudit.operations.records.ServiceStore`:
each change commits with its ledger entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from faceaudit.accountable import Principal
from faceaudit.errors import UsageError
from faceaudit.gallery.values import Actor, utc_today
from faceaudit.ledger import LedgerEntry, utc_now


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as stored: never the key itself, only its keyed hash."""

    key_id: str
    key_hash: str
    principal: str
    roles: tuple[str, ...]
    created_at: str
    created_by: str
    expires: str | None
    rate_limit: str | None
    revoked_at: str | None

    def expired(self) -> bool:
        """Whether the key has expired: it stops working on its ``expires`` day (UTC)."""
        return self.expires is not None and self.expires <= utc_today().isoformat()

    def public(self) -> dict[str, Any]:
        """What ``keys list`` shows (no hash)."""
        return {
            "key_id": self.key_id,
            "principal": self.principal,
            "roles": list(self.roles),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires": self.expires,
            "rate_limit": self.rate_limit,
            "revoked_at": self.revoked_at,
        }


_KEY_COLS = "key_id, key_hash, principal, roles, created_at, created_by, expires, rate_limit, revoked_at"


def describe(actor: Actor) -> str:
    """One line naming an actor and how it was established (for the keys table's created_by/revoked_by)."""
    if actor.auth == "api-key":
        return f"{actor.operator} (api-key {actor.key_id})"
    return f"{actor.operator} (local, os user {actor.os_user})"


class LastAdminKey(UsageError):
    """The key is the last live admin key."""


def _other_live_admin(conn: Any, key_id: str) -> bool:
    """Whether a live (unrevoked, unexpired) admin key other than ``key_id`` exists (inside the caller's transaction)."""
    rows = conn.execute(
        f"SELECT {_KEY_COLS} FROM service_keys WHERE revoked_at IS NULL AND key_id <> ?", (key_id,)
    ).fetchall()
    return any("admin" in k.roles and not k.expired() for k in map(_key, rows))


def _key(row: tuple) -> KeyRecord:
    values = list(row)
    values[3] = tuple(json.loads(values[3]))
    return KeyRecord(*values)


class KeyRecords:
    """The ``service_keys`` table; needs the store's ``_write``, ``_lock``, ``_conn`` and ``_append``."""

    _lock: Any
    _conn: Any
    _write: Any
    _append: Any

    # --- keys -----------------------------------------------------------------------------------------------

    def create_key(
        self,
        *,
        key_id: str,
        key_hash: str,
        principal: str,
        roles: tuple[str, ...],
        actor: Actor,
        expires: str | None = None,
        rate_limit: str | None = None,
    ) -> LedgerEntry:
        """Store a new key's hash and ledger its creation (principal, roles, expiry; never the key)."""
        now = utc_now()
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO service_keys ({_KEY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    key_hash,
                    Principal(principal),
                    json.dumps(list(roles)),
                    now,
                    describe(actor),
                    expires,
                    rate_limit,
                ),
            )
            return self._append(
                "key_create",
                actor,
                params={
                    "key_id": key_id,
                    "principal": Principal(principal),
                    "roles": list(roles),
                    "expires": expires,
                    "rate_limit": rate_limit,
                },
            )

    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key with this id, revoked or not (None when unknown)."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_KEY_COLS} FROM service_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else _key(row)

    def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_KEY_COLS} FROM service_keys ORDER BY created_at, key_id"
            ).fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str, *, actor: Actor, keep_an_admin: bool = False) -> LedgerEntry | None:
        """Revoke a key (from the next request on) and ledger it; None when there is no such live key.

        ``keep_an_admin`` (the service's rule): :class:`LastAdminKey` when the key is the last live admin key, so
        that someone can still manage keys through the service. The check runs inside the revoking transaction,
        so two admins revoking each other's keys at once cannot both succeed. The CLI on the server passes False:
        it is the way back in."""
        now = utc_now()
        with self._write() as conn:
            row = conn.execute(
                "SELECT principal, roles FROM service_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,)
            ).fetchone()
            if row is None:
                return None
            if keep_an_admin and "admin" in json.loads(row[1]) and not _other_live_admin(conn, key_id):
                raise LastAdminKey(
                    f"key {key_id} is the last live admin key: create another admin key first "
                    "(or revoke it with 'faceaudit keys revoke' on the server)"
                )
            conn.execute(
                "UPDATE service_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?",
                (now, describe(actor), key_id),
            )
            return self._append("key_revoke", actor, params={"key_id": key_id, "principal": row[0]})
