"""The accountability records beside a gallery: API keys, identification searches and their reviews.

They live in the gallery's own store, in tables that the gallery's schema creates
(:mod:`faceaudit.gallery.search_records`), so that a key's creation or revocation and a review commit together
with their ledger entry, and an erasure pseudonymises the searches in the gallery's own transaction.
:class:`ServiceStore` is the whole interface; routes and commands never write SQL. One class serves SQLite and
PostgreSQL: the statements are written once and spoken in each store's :class:`~faceaudit.gallery.search_records.
Dialect`; PostgreSQL writers also take the gallery's advisory write lock, as every gallery writer does.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from faceaudit import pgsql
from faceaudit.accountable import AccountableText, Principal
from faceaudit.audit.monitor_outcomes import Outcome, outcome_of
from faceaudit.errors import UsageError
from faceaudit.gallery import search_records
from faceaudit.gallery import sqlite_file as gallery_store
from faceaudit.gallery.search_records import Dialect
from faceaudit.gallery.values import Actor
from faceaudit.ledger import Ledger, LedgerEntry, ledger_key_from_env, utc_now
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore
from faceaudit.operations import review as rules
from faceaudit.operations.key_records import KeyRecords
from faceaudit.operations.review import Decision, Review, ReviewRefused, SearchStatus


class _PgConnection:
    """Enough of ``sqlite3.Connection`` for :class:`ServiceStore` over one psycopg connection: statements in the
    PostgreSQL dialect; a unique violation is the :class:`sqlite3.IntegrityError` SQLite would raise."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        import psycopg

        try:
            return self.raw.execute(search_records.POSTGRESQL.sql(sql), params)
        except psycopg.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc

    def close(self) -> None:
        self.raw.close()


class ServiceStore(KeyRecords):
    """API keys, searches and reviews in the gallery at ``db`` (a file or a ``postgresql://`` URL), each change
    with its ledger entry.

    It opens its own connection (on SQLite, WAL: it never blocks the gallery's readers) and serialises its own
    use of it with a lock, so one store serves every request thread.
    """

    def __init__(self, db: str | os.PathLike, ledger_key: bytes | None = None) -> None:
        self._lock = threading.RLock()
        ledger_key = ledger_key if ledger_key is not None else ledger_key_from_env()
        if pgsql.is_pg_url(db):
            self._open_postgresql(str(db), ledger_key)
        else:
            self._open_sqlite(db, ledger_key)
        with self._write() as conn:  # a gallery whose schema predates them gets the tables here
            search_records.create_tables(conn.execute, self.dialect)

    def _open_sqlite(self, path: str | os.PathLike, ledger_key: bytes | None) -> None:
        conn = gallery_store.connect(path)
        meta = gallery_store.read_meta(conn)
        if not meta:
            conn.close()
            raise gallery_store.GalleryNotFoundError(
                f"{path}: not an initialised gallery (run 'faceaudit gallery init')"
            )
        try:
            gallery_store.migrate(conn)  # an older gallery file gets the tables and columns it needs
        except BaseException:
            conn.close()
            raise
        self._conn: Any = conn
        self.dialect: Dialect = search_records.SQLITE
        self.gallery_id = meta["gallery_id"]
        self.ledger = Ledger(
            SQLiteLedgerStore(conn), key=ledger_key, expect_signed=gallery_store.ledger_signed(meta)
        )

    def _open_postgresql(self, url: str, ledger_key: bytes | None) -> None:
        from faceaudit.ledger.pg_store import PostgresLedgerStore

        raw: Any = pgsql.connect(url, application_name="faceaudit-service")
        if raw.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
            raw.close()
            raise gallery_store.GalleryNotFoundError(
                f"{pgsql.redact(url)}: not an initialised gallery (run 'faceaudit gallery init')"
            )
        meta: dict[str, str] = dict(raw.execute("SELECT key, value FROM meta").fetchall())
        self._conn = _PgConnection(raw)
        self.dialect = search_records.POSTGRESQL
        self.gallery_id = meta["gallery_id"]
        self.ledger = Ledger(
            PostgresLedgerStore(raw), key=ledger_key, expect_signed=gallery_store.ledger_signed(meta)
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One write transaction that serialises with every other gallery writer (SQLite ``BEGIN IMMEDIATE``;
        PostgreSQL the gallery's advisory write lock); commits at the end, rolls back when the block raises."""
        with self._lock:
            if isinstance(self._conn, _PgConnection):
                from faceaudit.gallery.pg_repository import WRITE_LOCK

                with self._conn.raw.transaction():
                    self._conn.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    yield self._conn
                return
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

    # --- searches and reviews ------------------------------------------------------------------------------

    def add_search(
        self,
        *,
        search_id: str,
        principal: Principal,
        key_id: str,
        purpose: AccountableText,
        case_ref: AccountableText,
        ledger_seq: int,
        threshold: float,
        candidates: list[dict[str, Any]],
        pseudonyms: dict[str, str],
        probe: bytes | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        """Remember an identification search (its candidates, as refs, and its sealed probe) for review; returns
        the candidates as stored.

        Inside the same transaction, a candidate erased since the search ran is stored as its pseudonym
        (``pseudonyms``: ref → pseudonym), so a search that races an erasure cannot write the erased ref back.
        """
        with self._write() as conn:
            live = search_records.live_refs(
                conn.execute, self.dialect, [c["subject_ref"] for c in candidates]
            )
            erased = {ref: p for ref, p in pseudonyms.items() if ref not in live}
            stored = [dict(c) for c in candidates]
            search_records.pseudonymise_candidates(stored, erased)
            conn.execute(
                "INSERT INTO service_searches (search_id, principal, key_id, purpose, case_ref, ledger_seq, "
                "threshold, candidates, status, created_at, probe, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    search_id,
                    Principal(principal),
                    key_id,
                    AccountableText(purpose, "purpose"),
                    AccountableText(case_ref, "case"),
                    ledger_seq,
                    threshold,
                    json.dumps(stored),
                    SearchStatus.PENDING_REVIEW.value,
                    utc_now(),
                    probe,
                    model,
                ),
            )
        return stored

    def get_search(self, search_id: str) -> dict[str, Any] | None:
        """A search with its reviews, its status and (once confirmed) the confirmed subject; None when unknown."""
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
        status = SearchStatus(row[8])
        done = [Review(r[0], Decision(r[2]), r[3]) for r in reviews]
        return {
            "search_id": row[0],
            "searcher": row[1],
            "key_id": row[2],
            "purpose": row[3],
            "case": row[4],
            "ledger_entry": row[5],
            "threshold": row[6],
            "candidates": json.loads(row[7]),
            "status": status.value,
            "created_at": row[9],
            "reviews": [dict(zip(keys, r, strict=True)) for r in reviews],
            "reviews_needed": rules.REVIEWS_NEEDED,
            "confirmed_subject": rules.confirmed_subject(done) if status is SearchStatus.CONFIRMED else None,
        }

    def sealed_probe(self, search_id: str) -> bytes | None:
        """The sealed probe of a search still waiting for review (None once decided, or never stored)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT probe FROM service_searches WHERE search_id = ?", (search_id,)
            ).fetchone()
        return None if row is None else row[0]

    def list_searches(
        self, status: str | None = None, limit: int = 100, *, searcher: str | None = None
    ) -> list[dict[str, Any]]:
        """Searches (newest first), optionally only those with ``status`` or by ``searcher``; without candidates.
        Each carries how many reviews it has."""
        sql = (
            "SELECT s.search_id, s.principal, s.purpose, s.case_ref, s.status, s.created_at, "
            "(SELECT COUNT(*) FROM service_reviews r WHERE r.search_id = s.search_id) FROM service_searches s"
        )
        where, args = [], []
        if status is not None:
            where.append("s.status = ?")
            args.append(SearchStatus(status).value)
        if searcher is not None:
            where.append("s.principal = ?")
            args.append(Principal(searcher))
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY s.created_at DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("search_id", "searcher", "purpose", "case", "status", "created_at", "n_reviews")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def review_queue(self, reviewer: str, limit: int = 500) -> list[dict[str, Any]]:
        """The searches ``reviewer`` may review now, oldest first: pending or disputed, neither made nor already
        reviewed by them (a split search leaves the queues of its two reviewers and waits for a third)."""
        who = Principal(reviewer)
        sql = (
            "SELECT s.search_id, s.principal, s.purpose, s.case_ref, s.status, s.created_at, "
            "(SELECT COUNT(*) FROM service_reviews r WHERE r.search_id = s.search_id) FROM service_searches s "
            "WHERE s.status IN (?, ?) AND s.principal <> ? AND NOT EXISTS "
            "(SELECT 1 FROM service_reviews r WHERE r.search_id = s.search_id AND r.principal = ?) "
            "ORDER BY s.created_at LIMIT ?"
        )
        args = (SearchStatus.PENDING_REVIEW.value, SearchStatus.DISPUTED.value, who, who, limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        keys = ("search_id", "searcher", "purpose", "case", "status", "created_at", "n_reviews")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def add_review(
        self,
        search_id: str,
        review: Review,
        *,
        key_id: str,
        reason: AccountableText,
        actor: Actor,
        pseudonym: Callable[[str], str],
    ) -> tuple[SearchStatus, LedgerEntry, int]:
        """Check, store and ledger one review and the search's new status, all in one write transaction.

        The search, its status and its reviews are read inside the transaction that writes the review, the
        rules of :mod:`faceaudit.operations.review` are applied to them, and the status update is guarded by the
        status read, so concurrent reviewers can never give a decided search a new status or a third review
        the rule does not allow. Raises :class:`SearchNotFoundError` or :class:`ReviewRefused`. Returns the new
        status, the ledger entry and the number of reviews. ``pseudonym(ref)`` names a subject in the ledger.
        """
        reason = AccountableText(reason, "reason")
        with self._write() as conn:
            row = conn.execute(
                "SELECT principal, purpose, case_ref, ledger_seq, status, candidates FROM service_searches "
                "WHERE search_id = ?",
                (search_id,),
            ).fetchone()
            if row is None:
                raise SearchNotFoundError(f"no search {search_id!r}")
            before = SearchStatus(row[4])
            earlier = [
                Review(r[0], Decision(r[1]), r[2])
                for r in conn.execute(
                    "SELECT principal, decision, subject_ref FROM service_reviews WHERE search_id = ? ORDER BY id",
                    (search_id,),
                ).fetchall()
            ]
            live = {c["subject_ref"] for c in json.loads(row[5]) if not c.get("erased")}
            new = rules.check(search_id, row[0], before, earlier, review, live)
            status = rules.decide([*earlier, new])
            entry = self._append(
                "review",
                actor,
                purpose=row[1],
                case_ref=row[2],
                params={"search_id": search_id, "search_entry": row[3], "reason": reason},
                result={
                    "decision": new.decision.value,
                    "subject": pseudonym(new.subject_ref) if new.subject_ref else None,
                    "status": status.value,
                },
            )
            conn.execute(
                "INSERT INTO service_reviews (search_id, principal, key_id, decision, subject_ref, reason, "
                "ledger_seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    search_id,
                    Principal(new.principal),
                    key_id,
                    new.decision.value,
                    new.subject_ref,
                    reason,
                    entry.seq,
                    utc_now(),
                ),
            )
            probe = "probe" if not status.decided else "NULL"  # decided: the probe is no longer needed
            updated = conn.execute(
                f"UPDATE service_searches SET status = ?, probe = {probe} WHERE search_id = ? AND status = ?",
                (status.value, search_id, before.value),
            )
            if updated.rowcount != 1:  # cannot happen while writers serialise; refuse rather than overwrite
                raise ReviewRefused(
                    "conflict", 409, f"search {search_id} changed while this review was written"
                )
        return status, entry, len(earlier) + 1

    def outcomes(self, since: str | None = None, until: str | None = None) -> list[Outcome]:
        """Every stored search made in ``[since, until)`` (ISO UTC times; open when None), oldest first, as an
        operational :class:`~faceaudit.audit.monitor_outcomes.Outcome` with its reviewers' decision."""
        where, args = [], []
        for op, bound in ((">=", since), ("<", until)):
            if bound is not None:
                where.append(f"s.created_at {op} ?")
                args.append(bound)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.search_id, s.threshold, s.model, s.candidates, s.status, s.created_at "
                f"FROM service_searches s{cond} ORDER BY s.created_at, s.search_id",
                tuple(args),
            ).fetchall()
            reviews: dict[str, list[tuple[Any, ...]]] = {}
            for r in self._conn.execute(
                "SELECT r.search_id, r.principal, r.decision, r.subject_ref, r.created_at FROM service_reviews r "
                f"JOIN service_searches s ON s.search_id = r.search_id{cond} ORDER BY r.id",
                tuple(args),
            ).fetchall():
                reviews.setdefault(r[0], []).append(r)
        out = []
        keys = ("search_id", "threshold", "model", "candidates", "status", "created_at")
        for row in rows:
            search = dict(zip(keys, row, strict=True))
            search["candidates"] = json.loads(search["candidates"])
            done = reviews.get(search["search_id"], [])
            confirmed = None
            if search["status"] == SearchStatus.CONFIRMED.value:
                confirmed = rules.confirmed_subject([Review(r[1], Decision(r[2]), r[3]) for r in done])
            out.append(outcome_of(search, [{"created_at": r[4]} for r in done], confirmed))
        return out


class SearchNotFoundError(UsageError):
    """No stored search has this id."""


def open_service_store(db: str | os.PathLike, ledger_key: bytes | None = None) -> ServiceStore:
    """The accountability records of the gallery at ``db`` (a file, or a ``postgresql://`` URL)."""
    return ServiceStore(db, ledger_key)
