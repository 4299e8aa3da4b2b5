"""API keys: roles, the key format, keyed hashing and constant-time checks; shared by ``faceaudit keys`` and the server.

A key reads ``fa_<key_id>_<secret>``. The key id is public (it names the key in lists and in the ledger); only
an HMAC-SHA256 of the whole key is stored, under a key derived (HKDF) from the gallery key, so a copy of the
database alone neither reveals keys nor lets anyone test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from faceaudit.errors import UsageError
from faceaudit.gallery.crypto import load_key
from faceaudit.gallery.values import Actor
from faceaudit.ledger import LedgerEntry
from faceaudit.operations.key_records import KeyRecord
from faceaudit.operations.records import ServiceStore
from faceaudit.pgsql import is_pg_url

ROLES: dict[str, str] = {
    "enroller": "detect, verify two images, enrol subjects",
    "searcher": "detect, verify two images, identify, verify-subject",
    "reviewer": "review other people's searches",
    "auditor": "read and verify the ledger, run audits, read reports",
    "dpo": "list subjects and consent, erase, expire",
    "admin": "manage keys, and nothing else (an admin cannot search)",
}
"""Each role and what it may do (the README's role table)."""

_KEY_RE = re.compile(r"^fa_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_RATE_RE = re.compile(r"^(\d+)/(s|min|h)$")
_PER = {"s": 1.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the key itself is shown once, then only its id."""

    key: str
    record: KeyRecord
    ledger_entry: LedgerEntry


def parse_roles(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"searcher,reviewer"`` (or a list) → validated roles, in table order. Admin keys hold no other role."""
    items = text.split(",") if isinstance(text, str) else list(text)
    roles = {r.strip().lower() for r in items if r.strip()}
    if not roles:
        raise UsageError(f"a key needs at least one role ({', '.join(ROLES)})")
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise UsageError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if "admin" in roles and len(roles) > 1:
        raise UsageError(
            "an admin key holds no other role (an admin manages keys and cannot search); make a second key"
        )
    return tuple(r for r in ROLES if r in roles)


def parse_rate(text: str | None) -> tuple[int, float] | None:
    """``"120/min"`` → (120 requests, per 60.0 s); None stays None. Units: s, min, h."""
    if text is None or not str(text).strip():
        return None
    m = _RATE_RE.match(str(text).strip())
    if not m or int(m.group(1)) < 1:
        raise UsageError(f"rate limit {text!r}: write N/s, N/min or N/h with N ≥ 1 (e.g. 120/min)")
    return int(m.group(1)), _PER[m.group(2)]


def check_principal(principal: str) -> str:
    """A principal names a person or a system: letters, digits and ``._@+-``, at most 128 characters."""
    principal = (principal or "").strip()
    if not _PRINCIPAL_RE.match(principal):
        raise UsageError(
            f"principal {principal!r}: use 1-128 letters, digits or ._@+- (e.g. alice or ops@example.org)"
        )
    return principal


def check_expiry(expires: str | date | None, today: date) -> str | None:
    """An expiry date in the future, as ``YYYY-MM-DD`` (None: the key does not expire)."""
    if expires is None or expires == "":
        return None
    try:
        day = expires if isinstance(expires, date) else date.fromisoformat(str(expires))
    except ValueError:
        raise UsageError(f"expires {expires!r}: give a date as YYYY-MM-DD") from None
    if day <= today:
        raise UsageError(f"expires {day.isoformat()}: the date must be in the future")
    return day.isoformat()


def key_id_of(key: str) -> str | None:
    """The public id part of a well-formed key (None when the text is not a key)."""
    m = _KEY_RE.match(key or "")
    return m.group(1) if m else None


def key_format_problem(key: str) -> str:
    """What is wrong with text that is not a well-formed key, without echoing it (it may be a real secret)."""
    key = key or ""
    if not key:
        return "no API key given"
    parts = key.split("_", 2)
    if parts[0] != "fa" or len(parts) < 3:
        return "not an API key: a key looks like fa_<12 hex digits>_<43 characters>"
    if not re.fullmatch(r"[0-9a-f]{12}", parts[1]):
        return "malformed API key: its id (after 'fa_') must be 12 hex digits"
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", parts[2]):
        return f"malformed API key: its secret must be 43 characters of A-Z a-z 0-9 _ -, not {len(parts[2])}"
    return "malformed API key"


class KeyHasher:
    """Keyed hashes of API keys under a secret derived from the gallery key."""

    def __init__(self, gallery_key: bytes) -> None:
        self.gallery_key = gallery_key
        self._secret = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"faceaudit api key hashing v1"
        ).derive(gallery_key)

    @classmethod
    def for_gallery(cls, db: str | os.PathLike, key_file: str | os.PathLike | None = None) -> KeyHasher:
        """The hasher of the gallery at ``db`` (its key from ``$FACEAUDIT_KEY`` or the key file)."""
        if key_file is None and not is_pg_url(db):
            key_file = Path(f"{os.fspath(db)}.key")
        return cls(load_key(None, key_file))

    def hash(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def matches(self, key: str, stored_hash: str) -> bool:
        """Constant-time comparison of ``key``'s hash with the stored one."""
        return hmac.compare_digest(self.hash(key), stored_hash)

    def create(
        self,
        store: ServiceStore,
        *,
        principal: str,
        roles: str | list[str] | tuple[str, ...],
        actor: Actor,
        expires: str | date | None = None,
        rate_limit: str | None = None,
        today: date,
    ) -> NewKey:
        """Make, store (as a hash) and ledger a new key; the returned key is the only copy."""
        principal = check_principal(principal)
        role_list = parse_roles(roles)
        expiry = check_expiry(expires, today)
        parse_rate(rate_limit)
        key_id = secrets.token_hex(6)
        key = f"fa_{key_id}_{secrets.token_urlsafe(32)}"
        entry = store.create_key(
            key_id=key_id,
            key_hash=self.hash(key),
            principal=principal,
            roles=role_list,
            actor=actor,
            expires=expiry,
            rate_limit=rate_limit.strip() if rate_limit else None,
        )
        record = store.get_key(key_id)
        assert record is not None
        return NewKey(key, record, entry)
