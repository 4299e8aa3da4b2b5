"""The service's own records: API keys (as keyed hashes), identification searches and their reviews.

They live in the gallery file, in tables of their own (``service_*``), so that a key's creation or revocation
and a review commit together with their ledger entry. :class:`ServiceStore` is the whole interface; the
routes never write SQL. A PostgreSQL version implements the same methods over the shared store.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from faceaudit.gallery import store as gallery_store
from faceaudit.gallery.values import Actor
from faceaudit.ledger import Ledger, LedgerEntry, ledger_key_from_env, utc_now
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS service_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL,
        principal TEXT NOT NULL,
        roles TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        expires TEXT,
        rate_limit TEXT,
        revoked_at TEXT,
        revoked_by TEXT)""",
    """CREATE TABLE IF NOT EXISTS service_searches (
        search_id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        key_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        case_ref TEXT NOT NULL,
        ledger_seq INTEGER NOT NULL,
        threshold REAL NOT NULL,
        candidates TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        probe BLOB)""",
    """CREATE TABLE IF NOT EXISTS service_reviews (
        id INTEGER PRIMARY KEY,
        search_id TEXT NOT NULL REFERENCES service_searches(search_id),
        principal TEXT NOT NULL,
        key_id TEXT NOT NULL,
        decision TEXT NOT NULL,
        subject_ref TEXT,
        reason TEXT NOT NULL,
        ledger_seq INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (search_id, principal))""",
    "CREATE INDEX IF NOT EXISTS service_searches_status ON service_searches(status, created_at)",
)


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


def _key(row: tuple) -> KeyRecord:
    values = list(row)
    values[3] = tuple(json.loads(values[3]))
    return KeyRecord(*values)


class ServiceStore:
    """API keys, searches and reviews in the gallery file at ``path``, each change with its ledger entry.

    It opens its own connection (WAL: it never blocks the gallery's readers) and serialises its own use of
    it with a lock, so one store serves every request thread.
    """

    def __init__(self, path: str | os.PathLike, ledger_key: bytes | None = None) -> None:
        self._conn = gallery_store.connect(path)
        self._lock = threading.RLock()
        meta = gallery_store.read_meta(self._conn)
        if not meta:
            self._conn.close()
            raise gallery_store.GalleryNotFoundError(
                f"{path}: not an initialised gallery (run 'faceaudit gallery init')"
            )
        self.gallery_id = meta["gallery_id"]
        try:
            gallery_store.migrate(self._conn)  # an older gallery file gets the ledger columns it needs
        except BaseException:
            self._conn.close()
            raise
        self.ledger = Ledger(
            SQLiteLedgerStore(self._conn), key=ledger_key if ledger_key is not None else ledger_key_from_env()
        )
        with self._write() as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(service_searches)")}
            if "probe" not in columns:  # added with the console's review page
                conn.execute("ALTER TABLE service_searches ADD COLUMN probe BLOB")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _append(self, action: str, actor: Actor, **fields: Any) -> LedgerEntry:
        """One ledger entry inside the caller's transaction, stamped with the gallery id and version."""
        fields.setdefault("auth", actor.ledger_auth())
        return self._append_as(action, actor.operator, **fields)

    def _append_as(self, action: str, name: str, **fields: Any) -> LedgerEntry:
        version = int(self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
        return self.ledger.append(action, name, gallery_id=self.gallery_id, gallery_version=version, **fields)

    def record(self, action: str, actor: Actor, **fields: Any) -> LedgerEntry:
        """Append one ledger entry on its own (e.g. a refused probe)."""
        with self._write():
            return self._append(action, actor, **fields)

    def record_denied(self, who: Actor | str, key_id: str | None, params: dict[str, Any]) -> LedgerEntry:
        """Ledger a refused request: 403 names the authenticated actor; 401 names the presented key's owner
        (or ``anonymous``) with ``auth: refused``. Never the key itself."""
        with self._write():
            if isinstance(who, Actor):
                return self._append("access_denied", who, params=params)
            auth = {"auth": "refused", **({"key_id": key_id} if key_id else {})}
            return self._append_as("access_denied", who, auth=auth, params=params)

    def verify(self):
        """Verify the whole ledger chain (raises LedgerIntegrityError naming the first bad entry)."""
        with self._lock:
            return self.ledger.verify()

    def count(self) -> int:
        """The number of ledger entries."""
        with self._lock:
            return self.ledger.store.count()

    def ledger_page(self, since: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` entries after seq ``since``, in storage order, hashes included."""
        with self._lock:
            return [e.as_dict() for e in itertools.islice(self.ledger.store.entries(since), limit)]

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
                    principal,
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
                    "principal": principal,
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

    def revoke_key(self, key_id: str, *, actor: Actor) -> LedgerEntry | None:
        """Revoke a key (from the next request on) and ledger it; None when there is no such live key."""
        now = utc_now()
        with self._write() as conn:
            row = conn.execute(
                "SELECT principal FROM service_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,)
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE service_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?",
                (now, describe(actor), key_id),
            )
            return self._append("key_revoke", actor, params={"key_id": key_id, "principal": row[0]})

    # --- searches and reviews ------------------------------------------------------------------------------

    def add_search(
        self,
        *,
        search_id: str,
        principal: str,
        key_id: str,
        purpose: str,
        case_ref: str,
        ledger_seq: int,
        threshold: float,
        candidates: list[dict[str, Any]],
        probe: bytes | None = None,
    ) -> None:
        """Remember an identification search (its candidates, as refs, and its sealed probe) for review."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO service_searches (search_id, principal, key_id, purpose, case_ref, ledger_seq, "
                "threshold, candidates, status, created_at, probe) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    search_id,
                    principal,
                    key_id,
                    purpose,
                    case_ref,
                    ledger_seq,
                    threshold,
                    json.dumps(candidates),
                    "pending_review",
                    utc_now(),
                    probe,
                ),
            )

    def get_search(self, search_id: str) -> dict[str, Any] | None:
        """A search with its reviews (None when unknown)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT search_id, principal, key_id, purpose, case_ref, ledger_seq, threshold, candidates, "
                "status, created_at FROM service_searches WHERE search_id = ?",
                (search_id,),
            ).fetchone()
            if row is None:
                return None
            reviews = self._conn.execute(
                "SELECT principal, key_id, decision, subject_ref, reason, ledger_seq, created_at "
                "FROM service_reviews WHERE search_id = ? ORDER BY id",
                (search_id,),
            ).fetchall()
        keys = ("principal", "key_id", "decision", "subject_ref", "reason", "ledger_entry", "created_at")
        return {
            "search_id": row[0],
            "searcher": row[1],
            "key_id": row[2],
            "purpose": row[3],
            "case": row[4],
            "ledger_entry": row[5],
            "threshold": row[6],
            "candidates": json.loads(row[7]),
            "status": row[8],
            "created_at": row[9],
            "reviews": [dict(zip(keys, r, strict=True)) for r in reviews],
        }

    def sealed_probe(self, search_id: str) -> bytes | None:
        """The sealed probe of a search still waiting for review (None once decided, or never stored)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT probe FROM service_searches WHERE search_id = ?", (search_id,)
            ).fetchone()
        return None if row is None else row[0]

    def list_searches(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Searches (newest first), optionally only those with ``status``; without candidates."""
        sql = "SELECT search_id, principal, purpose, case_ref, status, created_at FROM service_searches"
        args: tuple = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("search_id", "searcher", "purpose", "case", "status", "created_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def add_review(
        self,
        search_id: str,
        *,
        principal: str,
        key_id: str,
        decision: str,
        subject_ref: str | None,
        subject_pseudonym: str | None,
        reason: str,
        actor: Actor,
        status_after: Any,
    ) -> tuple[str, LedgerEntry]:
        """Store one review and its ledger entry, and the search's new status, in one transaction.

        ``status_after(reviews)`` computes the status from every review, this one included. The caller has
        checked the rules (who may review); a second review by the same principal violates a UNIQUE constraint
        and raises :class:`sqlite3.IntegrityError`.
        """
        with self._write() as conn:
            search = conn.execute(
                "SELECT purpose, case_ref, ledger_seq FROM service_searches WHERE search_id = ?", (search_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT principal, decision, subject_ref FROM service_reviews WHERE search_id = ?",
                (search_id,),
            ).fetchall()
            reviews = [*rows, (principal, decision, subject_ref)]
            status = status_after(reviews)
            entry = self._append(
                "review",
                actor,
                purpose=search[0],
                case_ref=search[1],
                params={"search_id": search_id, "search_entry": search[2], "reason": reason},
                result={"decision": decision, "subject": subject_pseudonym, "status": status},
            )
            conn.execute(
                "INSERT INTO service_reviews (search_id, principal, key_id, decision, subject_ref, reason, "
                "ledger_seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (search_id, principal, key_id, decision, subject_ref, reason, entry.seq, utc_now()),
            )
            conn.execute("UPDATE service_searches SET status = ? WHERE search_id = ?", (status, search_id))
            if status != "pending_review":  # decided: the probe is no longer needed
                conn.execute("UPDATE service_searches SET probe = NULL WHERE search_id = ?", (search_id,))
        return status, entry

    def forget_subject(self, subject_ref: str, pseudonym: str) -> None:
        """After an erasure: searches and reviews keep the subject's pseudonym only, never its ref."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT search_id, candidates FROM service_searches WHERE candidates LIKE ? ESCAPE '!'",
                (f"%{_like_literal(json.dumps(subject_ref))}%",),
            ).fetchall()
            for search_id, text in rows:
                cands = json.loads(text)
                for c in cands:
                    if c.get("subject_ref") == subject_ref:
                        c["subject_ref"], c["name"], c["erased"] = pseudonym, None, True
                conn.execute(
                    "UPDATE service_searches SET candidates = ? WHERE search_id = ?",
                    (json.dumps(cands), search_id),
                )
            conn.execute(
                "UPDATE service_reviews SET subject_ref = ? WHERE subject_ref = ?", (pseudonym, subject_ref)
            )


def _like_literal(text: str) -> str:
    """``text`` matched literally by ``LIKE ? ESCAPE '!'`` on SQLite and PostgreSQL alike (PostgreSQL's default
    escape is the backslash, which JSON-escaped refs are full of: ``"Zo\\u00eb"``)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
