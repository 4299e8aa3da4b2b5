"""The accountability ledger: an append-only, hash-chained log of every use of the gallery.

The ledger knows nothing about galleries or the CLI. It stores entries through a :class:`LedgerStore` (SQLite
by default, see :mod:`faceaudit.ledger.sqlite_store`); the caller appends inside the transaction of the change
that the entry records, so the change and its record commit together or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from faceaudit.errors import LedgerIntegrityError, PolicyError
from faceaudit.ledger.chain import (
    ALG_HMAC,
    ALG_SHA256,
    GENESIS,
    LedgerEntry,
    VerifyReport,
    canonical_json,
    compute_hash,
    declares_signed,
    verify_chain,
)

LEDGER_KEY_ENV = "FACEAUDIT_LEDGER_KEY"


class LedgerStore(Protocol):
    """Where entries live. Implementations neither hash nor verify; they store and return entries faithfully."""

    def head(self) -> LedgerEntry | None:
        """The entry with the highest ``seq`` (None when empty)."""

    def write(self, entry: LedgerEntry) -> None:
        """Store one entry (inside the caller's open transaction)."""

    def entries(self, since_seq: int = 0) -> Iterator[LedgerEntry]:
        """Entries in storage order, those with ``seq > since_seq``."""

    def count(self) -> int:
        """The number of stored entries."""


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ledger_key_from_env() -> bytes | None:
    """The HMAC key from ``FACEAUDIT_LEDGER_KEY`` (its UTF-8 bytes), or None when unset or empty."""
    value = os.environ.get(LEDGER_KEY_ENV, "")
    return value.encode() if value else None


class Ledger:
    """Append to and verify a hash-chained ledger held by ``store``.

    With ``key`` (HMAC-SHA256) every entry is signed; someone who can write the store but lacks the key cannot
    forge a valid chain. A ledger is signed or unsigned for its whole life: appending an unsigned entry to a
    signed ledger (or the reverse) is refused.
    """

    def __init__(
        self, store: LedgerStore, key: bytes | None = None, *, expect_signed: bool | None = None
    ) -> None:
        self.store = store
        self.key = key
        self.alg = ALG_HMAC if key is not None else ALG_SHA256
        self.expect_signed = expect_signed
        """What the store recorded at creation (e.g. a gallery's ``meta.ledger_signed``); None when unknown."""

    def declared_signed(self) -> bool | None:
        """Whether this ledger was created signed: by ``expect_signed``, else by its genesis entry."""
        if self.expect_signed is not None:
            return self.expect_signed
        first = next(iter(self.store.entries()), None)
        return None if first is None else declares_signed(first)

    def append(
        self,
        action: str,
        actor: str,
        *,
        started_at: str | None = None,
        purpose: str | None = None,
        case_ref: str | None = None,
        gallery_id: str | None = None,
        gallery_version: int | None = None,
        probe_sha256: str | None = None,
        params: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        """Seal and store one entry after the current head. Call it inside the transaction of the change.

        ``auth`` says how ``actor`` was established (see :attr:`LedgerEntry.auth`).
        """
        head = self._checked_head()
        entry = self._seal(
            head,
            action=action,
            actor=actor,
            started_at=started_at,
            purpose=purpose,
            case_ref=case_ref,
            gallery_id=gallery_id,
            gallery_version=gallery_version,
            probe_sha256=probe_sha256,
            params=params,
            result=result,
            auth=auth,
        )
        self.store.write(entry)
        return entry

    def append_many(self, drafts: Sequence[dict[str, Any]]) -> list[LedgerEntry]:
        """Seal and store several entries after the current head, in order: each dict holds the keyword
        arguments of :meth:`append` (``action`` and ``actor`` included). The entries are exactly those that as
        many :meth:`append` calls would write; a store with ``write_many`` stores them in few statements."""
        head = self._checked_head()
        entries: list[LedgerEntry] = []
        for fields in drafts:
            head = self._seal(head, **fields)
            entries.append(head)
        write_many = getattr(self.store, "write_many", None)
        if write_many is not None:
            write_many(entries)
        else:
            for entry in entries:
                self.store.write(entry)
        return entries

    def _checked_head(self) -> LedgerEntry | None:
        """The stored head, after checking the ledger's mode matches this key's."""
        head = self.store.head()
        if head is not None and head.alg != self.alg:
            if head.alg == ALG_HMAC:
                raise PolicyError(f"the ledger is signed (HMAC): set {LEDGER_KEY_ENV} to the ledger key")
            if self.declared_signed():
                raise LedgerIntegrityError(
                    head.seq,
                    "downgraded: this ledger was created signed, but its latest entry is unsigned; nothing was "
                    f"written. Verify it with {LEDGER_KEY_ENV} set ('faceaudit ledger verify') and restore the "
                    "file from a backup",
                )
            raise PolicyError(
                f"{LEDGER_KEY_ENV} is set, but this ledger is unsigned, and a ledger cannot change mode; nothing "
                "was written. If it was meant to be signed, treat the file as tampered with: check it against an "
                "anchor kept elsewhere ('faceaudit ledger verify --anchor SEQ:HASH')"
            )
        return head

    def _seal(
        self,
        head: LedgerEntry | None,
        *,
        action: str,
        actor: str,
        started_at: str | None = None,
        purpose: str | None = None,
        case_ref: str | None = None,
        gallery_id: str | None = None,
        gallery_version: int | None = None,
        probe_sha256: str | None = None,
        params: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        """The sealed entry that follows ``head``."""
        ended_at = utc_now()
        draft = LedgerEntry(
            seq=1 if head is None else head.seq + 1,
            started_at=started_at or ended_at,
            ended_at=ended_at,
            actor=actor,
            action=action,
            purpose=purpose,
            case_ref=case_ref,
            gallery_id=gallery_id,
            gallery_version=gallery_version,
            probe_sha256=probe_sha256,
            params=dict(params or {}),
            result=dict(result or {}),
            alg=self.alg,
            prev_hash=GENESIS if head is None else head.entry_hash,
            auth=dict(auth) if auth is not None else None,
        )
        canonical_json(draft.body())  # fails early on values JSON cannot hold
        entry_hash = compute_hash(draft.prev_hash, draft.body(), self.key)
        return LedgerEntry(**{**draft.as_dict(), "entry_hash": entry_hash})

    def verify(self, anchor: str | None = None) -> VerifyReport:
        """Verify the chain (and the anchor, if given); raises LedgerIntegrityError naming the first bad entry."""
        return verify_chain(self.store.entries, key=self.key, anchor=anchor, expect_signed=self.expect_signed)

    def head_hash(self) -> tuple[int, str]:
        """(seq, entry_hash) of the head; (0, GENESIS) when empty."""
        head = self.store.head()
        return (0, GENESIS) if head is None else (head.seq, head.entry_hash)

    def export(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Entries after ``since_seq`` as dicts (hashes included), in storage order."""
        for entry in self.store.entries(since_seq):
            yield entry.as_dict()


__all__ = [
    "Ledger",
    "LedgerEntry",
    "LedgerStore",
    "VerifyReport",
    "ledger_key_from_env",
    "utc_now",
    "LEDGER_KEY_ENV",
]
