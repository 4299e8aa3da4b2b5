"""The hash chain of the accountability ledger: canonical JSON, SHA-256 or HMAC-SHA256 links, verification.

Each entry's hash covers the previous entry's hash and the canonical JSON of the entry's own fields, ``seq``
included::

    entry_hash = SHA-256(prev_hash ‖ canonical_json(body))          # unsigned ledger
    entry_hash = HMAC-SHA256(key, prev_hash ‖ canonical_json(body))  # FACEAUDIT_LEDGER_KEY set

Verification walks the entries in storage order and reports the first entry that was modified (its hash does
not match), deleted (a gap in ``seq``), inserted (a repeated ``seq`` or a broken ``prev_hash`` link) or
reordered (a later ``seq`` stored before an earlier one). An anchor (a head hash kept elsewhere) also reveals a
truncated tail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faceaudit.errors import LedgerIntegrityError, UsageError

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

ALG_SHA256 = "sha256"
ALG_HMAC = "hmac-sha256"

BODY_FIELDS = (
    "seq",
    "started_at",
    "ended_at",
    "actor",
    "action",
    "purpose",
    "case_ref",
    "gallery_id",
    "gallery_version",
    "probe_sha256",
    "params",
    "result",
    "alg",
)
OPTIONAL_BODY_FIELDS = ("auth",)
"""Body fields added after the first format. They are hashed only when set, so older entries keep their hash."""


def canonical_json(obj: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no insignificant whitespace (the bytes that are hashed)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One accountability record: who did what, when, why, against which gallery, with which result."""

    seq: int
    started_at: str
    ended_at: str
    actor: str
    action: str
    purpose: str | None
    case_ref: str | None
    gallery_id: str | None
    gallery_version: int | None
    probe_sha256: str | None
    params: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    alg: str = ALG_SHA256
    prev_hash: str = GENESIS
    entry_hash: str = ""
    auth: dict | None = None
    """How ``actor`` was established: ``{"auth": "local", "os_user": ...}`` or ``{"auth": "api-key",
    "key_id": ...}``; None in entries written before it was recorded."""

    def body(self) -> dict[str, Any]:
        """The hashed fields (everything but the two hashes; optional fields only when set)."""
        body = {name: getattr(self, name) for name in BODY_FIELDS}
        for name in OPTIONAL_BODY_FIELDS:
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body

    def as_dict(self) -> dict[str, Any]:
        """Every field, hashes included (the export shape)."""
        return {**self.body(), "prev_hash": self.prev_hash, "entry_hash": self.entry_hash}


def compute_hash(prev_hash: str, body: dict[str, Any], key: bytes | None) -> str:
    """The entry hash: SHA-256, or HMAC-SHA256 under ``key``, of ``prev_hash ‖ canonical_json(body)``."""
    message = prev_hash.encode("ascii") + canonical_json(body)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of a successful verification."""

    n_entries: int
    head_seq: int
    head_hash: str
    anchor_checked: bool

    def message(self) -> str:
        """The one-line verdict that ``faceaudit ledger verify`` prints."""
        return f"{self.n_entries} entries, chain intact"


def parse_anchor(anchor: str) -> tuple[int | None, str]:
    """``HASH`` or ``SEQ:HASH`` → (seq or None, lower-case hash)."""
    text = anchor.strip().lower()
    seq: int | None = None
    if ":" in text:
        left, text = text.split(":", 1)
        try:
            seq = int(left)
        except ValueError:
            raise UsageError(f"--anchor {anchor!r}: expected HASH or SEQ:HASH") from None
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(
            f"--anchor {anchor!r}: expected a 64-character hex hash (from 'faceaudit ledger anchor')"
        )
    return seq, text


def declares_signed(entry: LedgerEntry) -> bool | None:
    """What a genesis entry declares about signing (``params.ledger_signed``), or None when it says nothing."""
    value = entry.params.get("ledger_signed") if isinstance(entry.params, dict) else None
    return value if isinstance(value, bool) else None


def verify_chain(
    entries: Callable[[], Iterable[LedgerEntry]],
    *,
    key: bytes | None = None,
    anchor: str | None = None,
    expect_signed: bool | None = None,
) -> VerifyReport:
    """Check the whole chain; raise :class:`LedgerIntegrityError` naming the first bad entry.

    ``entries`` returns a fresh iterator over the entries in storage order (it is called a second time only to
    tell a deletion from a reordering). A ledger declared signed, by its genesis entry (``params.ledger_signed``)
    or by ``expect_signed`` (what the store recorded at creation), must be signed throughout: an unsigned entry
    in it is reported as *downgraded*, and without ``key`` it cannot be verified at all.
    """
    anchor_seq, anchor_hash = parse_anchor(anchor) if anchor else (None, None)
    anchor_found = False
    prev_hash, expected, n = GENESIS, 1, 0
    signed = expect_signed
    for entry in entries():
        if entry.seq != expected:
            _raise_sequence_error(entry, expected, entries)
        if entry.prev_hash != prev_hash:
            raise LedgerIntegrityError(
                entry.seq, f"inserted or reordered: its prev_hash does not link to entry {entry.seq - 1}"
            )
        if entry.seq == 1 and declares_signed(entry) is not None:
            if signed is False and declares_signed(entry):
                raise LedgerIntegrityError(
                    1, "modified: it declares a signed ledger, but the file recorded unsigned"
                )
            signed = signed or declares_signed(entry)
        if signed and entry.alg != ALG_HMAC:
            raise LedgerIntegrityError(
                entry.seq,
                f"downgraded: not signed (alg {entry.alg!r}), but this ledger was created signed (HMAC); "
                "someone without the ledger key relabelled and rechained it",
            )
        if key is None and signed:
            raise UsageError("the ledger was created signed (HMAC): set FACEAUDIT_LEDGER_KEY to verify it")
        if key is not None and entry.alg != ALG_HMAC:
            raise LedgerIntegrityError(
                entry.seq, f"not signed (alg {entry.alg!r}) in a ledger verified with a key"
            )
        if key is None and entry.alg == ALG_HMAC:
            raise UsageError("the ledger is signed (HMAC): set FACEAUDIT_LEDGER_KEY to verify it")
        if entry.alg not in (ALG_SHA256, ALG_HMAC):
            raise LedgerIntegrityError(entry.seq, f"modified: unknown alg {entry.alg!r}")
        if not hmac.compare_digest(compute_hash(entry.prev_hash, entry.body(), key), entry.entry_hash):
            raise LedgerIntegrityError(
                entry.seq,
                "modified: its hash does not match its content"
                + (" (or it was signed with another key)" if key else ""),
            )
        if anchor_hash is not None and entry.entry_hash == anchor_hash:
            if anchor_seq is not None and anchor_seq != entry.seq:
                raise LedgerIntegrityError(entry.seq, f"reordered: the anchor names entry {anchor_seq}")
            anchor_found = True
        prev_hash, expected, n = entry.entry_hash, expected + 1, n + 1
    last = expected - 1
    if anchor_hash is not None and not anchor_found:
        if anchor_seq is not None and anchor_seq <= last:
            raise LedgerIntegrityError(
                anchor_seq, "modified: its hash differs from the anchor (the chain was rewritten up to it)"
            )
        if anchor_seq is not None:
            raise LedgerIntegrityError(
                last + 1,
                f"deleted: the anchored entry {anchor_seq} is missing, so the tail after entry {last} "
                "was truncated",
            )
        raise LedgerIntegrityError(
            last + 1,
            f"deleted or rewritten: the anchored head is not in this chain of {last} entries, so either the tail "
            f"after entry {last} was truncated or an entry up to the anchored one was modified and the chain "
            "rebuilt (an anchor written as SEQ:HASH, as 'ledger anchor' prints it, names the entry)",
        )
    return VerifyReport(
        n_entries=n, head_seq=last, head_hash=prev_hash, anchor_checked=anchor_hash is not None
    )


def _raise_sequence_error(
    entry: LedgerEntry, expected: int, entries: Callable[[], Iterable[LedgerEntry]]
) -> None:
    if entry.seq < expected:
        raise LedgerIntegrityError(
            entry.seq, f"inserted or reordered: entry {entry.seq} is stored again after entry {expected - 1}"
        )
    if any(e.seq == expected for e in entries()):
        raise LedgerIntegrityError(
            expected, f"reordered: entry {entry.seq} is stored before entry {expected}"
        )
    if expected + 1 == entry.seq:
        raise LedgerIntegrityError(expected, f"deleted: entry {entry.seq} follows entry {expected - 1}")
    raise LedgerIntegrityError(expected, f"deleted: entries {expected}..{entry.seq - 1} are missing")
