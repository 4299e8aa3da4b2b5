"""Declared attributes: what a person said about themselves at enrolment, kept for bias monitoring only.

:class:`DeclaredAttributes` is the value (keys and values as accountable text, with a consent record of their
own). The attributes are sealed (AES-256-GCM, bound to their gallery and subject) into one blob per subject in
the ``declared_attributes`` table, apart from the identity data: not even the keys are stored in the clear. The
row goes with its subject (deleted in the erasure's own transaction, and ``ON DELETE CASCADE``). They are never
used in search, never returned by any per-person view, and never inferred: only the monitor
(:mod:`faceaudit.audit.monitor`) reads them, to count groups.

Every statement here is portable SQL (see :class:`~faceaudit.gallery.search_records.Dialect`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faceaudit.accountable import AccountableText
from faceaudit.errors import ConsentError, UsageError
from faceaudit.gallery.search_records import Dialect, Execute
from faceaudit.gallery.values import Consent

MAX_ATTRIBUTES = 8
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_VALUE_CHARS = 64

TABLE = """CREATE TABLE IF NOT EXISTS declared_attributes (
    subject_id {bigint} PRIMARY KEY REFERENCES subjects(id) ON DELETE CASCADE,
    sealed {blob} NOT NULL,
    created_at TEXT NOT NULL)"""
"""One sealed blob per subject (portable; ``{bigint}`` is the subjects' id type)."""


class DeclaredAttributeError(UsageError):
    """A declared attribute is malformed (names the field)."""


@dataclass(frozen=True, slots=True)
class DeclaredAttributes:
    """Attributes a person declared about themselves (``{"sex": "F", "age_band": "30-39"}``) and the consent
    under which they were recorded, for audit only. Checked when built: keys are short lowercase identifiers,
    values accountable text of at most 64 characters, at most 8 attributes, and a consent record is required."""

    values: Mapping[str, str]
    consent: Consent

    def __post_init__(self) -> None:
        if not isinstance(self.consent, Consent):
            raise ConsentError(
                "declared attributes need their own consent record "
                "(--declared-consent-basis and --declared-consent-by)"
            )
        if not isinstance(self.values, Mapping) or not self.values:
            raise DeclaredAttributeError("declared attributes: give at least one key=value")
        if len(self.values) > MAX_ATTRIBUTES:
            raise DeclaredAttributeError(f"declared attributes: at most {MAX_ATTRIBUTES}")
        clean: dict[str, str] = {}
        for key, value in self.values.items():
            k = str(AccountableText(key, "declared attribute name")).lower()
            if not _KEY.fullmatch(k):
                raise DeclaredAttributeError(
                    f"declared attribute name {key!r}: use a lowercase name of letters, digits and '_' "
                    "(at most 32)"
                )
            v = AccountableText(value, f"declared attribute {k!r}")
            if len(v) > MAX_VALUE_CHARS:
                raise DeclaredAttributeError(
                    f"declared attribute {k!r}: at most {MAX_VALUE_CHARS} characters"
                )
            clean[k] = str(v)
        object.__setattr__(self, "values", dict(sorted(clean.items())))

    @classmethod
    def parse(cls, pairs: list[str], basis: str | None, recorded_by: str | None) -> DeclaredAttributes | None:
        """From ``key=value`` strings (CLI ``--declare``, form field ``declared``); None when there are none."""
        if not pairs:
            return None
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise DeclaredAttributeError(f"declared attribute {pair!r}: write it as key=value")
            if key.strip().lower() in values:
                raise DeclaredAttributeError(f"declared attribute {key.strip()!r} is given twice")
            values[key.strip().lower()] = value
        if not (basis or "").strip() or not (recorded_by or "").strip():
            raise ConsentError(
                "declared attributes need their own consent record: give --declared-consent-basis and "
                "--declared-consent-by (form fields declared_consent_basis, declared_consent_by)"
            )
        return cls(values, Consent(basis, recorded_by))  # type: ignore[arg-type]

    def to_json(self, recorded_at: str) -> bytes:
        """The plaintext that is sealed: the values and their consent record."""
        return json.dumps(
            {
                "values": dict(self.values),
                "consent": {
                    "basis": str(self.consent.basis),
                    "by": str(self.consent.recorded_by),
                    "at": recorded_at,
                },
            },
            sort_keys=True,
            ensure_ascii=False,
        ).encode()

    def canonical(self) -> str:
        """A canonical text of the values (what the ledger's keyed hash is taken over)."""
        return json.dumps(dict(self.values), sort_keys=True, ensure_ascii=False)


def values_of(plaintext: bytes) -> dict[str, str]:
    """The declared values out of an opened blob."""
    data: dict[str, Any] = json.loads(plaintext)
    return {str(k): str(v) for k, v in data["values"].items()}


def create_table(execute: Execute, dialect: Dialect) -> None:
    """Create the ``declared_attributes`` table where it is missing (inside the caller's transaction)."""
    bigint = "BIGINT" if dialect.name == "postgresql" else "INTEGER"
    execute(dialect.sql(TABLE.replace("{bigint}", bigint)), ())


def insert(execute: Execute, dialect: Dialect, subject_id: int, sealed: bytes, created_at: str) -> None:
    """Store (or replace) a subject's sealed attributes (inside the caller's write transaction)."""
    execute(dialect.sql("DELETE FROM declared_attributes WHERE subject_id = ?"), (subject_id,))
    execute(
        dialect.sql("INSERT INTO declared_attributes (subject_id, sealed, created_at) VALUES (?, ?, ?)"),
        (subject_id, sealed, created_at),
    )


def delete(execute: Execute, dialect: Dialect, subject_ids: list[int]) -> int:
    """Delete the sealed attributes of these subjects; returns how many rows went."""
    n = 0
    for subject_id in subject_ids:
        cur = execute(dialect.sql("DELETE FROM declared_attributes WHERE subject_id = ?"), (subject_id,))
        n += max(int(getattr(cur, "rowcount", 0) or 0), 0)
    return n


def rows(execute: Execute, dialect: Dialect) -> list[tuple[str, bytes]]:
    """``(subject_ref, sealed blob)`` of every subject with declared attributes."""
    out = execute(
        dialect.sql(
            "SELECT s.subject_ref, d.sealed FROM declared_attributes d JOIN subjects s ON s.id = d.subject_id "
            "ORDER BY s.id"
        ),
        (),
    ).fetchall()
    return [(str(r[0]), bytes(r[1])) for r in out]
