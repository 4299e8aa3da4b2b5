"""Declared attributes: what a person said about themselves at enrolment, kept for bias monitoring only.

The value is :class:`~faceaudit.gallery.values.DeclaredAttributes` (keys and values as accountable text, with a consent record of their
own). The attributes are sealed (AES-256-GCM, bound to their gallery and subject) into one blob per subject in
the ``declared_attributes`` table, apart from the identity data: not even the keys are stored in the clear. The
row goes with its subject (deleted in the erasure's own transaction, and ``ON DELETE CASCADE``). They are never
used in search, never returned by any per-person view, and never inferred: only the monitor
(:mod:`faceaudit.audit.monitor`) reads them, to count groups.

Every statement here is portable SQL (see :class:`~faceaudit.gallery.search_records.Dialect`).
"""

from __future__ import annotations

import json
from typing import Any

from faceaudit.gallery.search_records import Dialect, Execute
from faceaudit.gallery.values import DeclaredAttributeError, DeclaredAttributes

__all__ = [
    "DeclaredAttributeError",
    "DeclaredAttributes",
    "create_table",
    "delete",
    "insert",
    "rows",
    "values_of",
]

TABLE = """CREATE TABLE IF NOT EXISTS declared_attributes (
    subject_id {bigint} PRIMARY KEY REFERENCES subjects(id) ON DELETE CASCADE,
    sealed {blob} NOT NULL,
    created_at TEXT NOT NULL)"""
"""One sealed blob per subject (portable; ``{bigint}`` is the subjects' id type)."""


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
