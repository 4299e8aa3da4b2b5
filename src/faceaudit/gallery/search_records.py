"""The accountability tables that live beside the gallery: API keys, stored searches and their reviews.

They are part of the gallery's schema (both stores create them in their migrations), so the gallery's own
transactions can keep them honest: an erasure pseudonymises the subject in every stored search and review in the
*same* transaction that deletes the subject (:func:`forget_subjects`), so no caller (the service, the CLI, a Python
user of ``Gallery.erase``) can forget the step, and no crash can fall between the two.

Every statement here is written once, with ``?`` placeholders and portable SQL; :class:`Dialect` turns it into
the store's own (PostgreSQL: ``%s`` placeholders, its column types). SQLite and PostgreSQL run the same text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from faceaudit.sqldialect import POSTGRESQL, SQLITE, Dialect

__all__ = ["POSTGRESQL", "SQLITE", "Dialect", "create_tables", "forget_subjects", "live_refs"]

Execute = Callable[[str, Sequence[Any]], Any]
"""Runs one statement (``?`` placeholders already turned into the store's own) with its parameters."""


TABLES = (
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
        threshold {real} NOT NULL,
        candidates TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        probe {blob})""",
    """CREATE TABLE IF NOT EXISTS service_reviews (
        id {identity},
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
"""The accountability tables, portable (see :meth:`Dialect.sql`)."""

TABLE_NAMES = ("service_keys", "service_searches", "service_reviews")


def create_tables(execute: Execute, dialect: Dialect) -> None:
    """Create the accountability tables where they are missing (inside the caller's transaction)."""
    for statement in TABLES:
        execute(dialect.sql(statement), ())


def like_literal(text: str) -> str:
    """``text`` matched literally by ``LIKE ? ESCAPE '!'`` on SQLite and PostgreSQL alike (PostgreSQL's default
    escape is the backslash, which JSON-escaped refs are full of: ``"Zo\\u00eb"``)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def pseudonymise_candidates(candidates: list[dict[str, Any]], erased: dict[str, str]) -> bool:
    """Replace, in place, every candidate whose ref is a key of ``erased`` by its pseudonym (no name, ``erased``
    set); True when any was replaced."""
    changed = False
    for c in candidates:
        ref = c.get("subject_ref")
        if not c.get("erased") and isinstance(ref, str) and ref in erased:
            c["subject_ref"], c["name"], c["erased"] = erased[ref], None, True
            changed = True
    return changed


def forget_subjects(execute: Execute, dialect: Dialect, erased: dict[str, str]) -> int:
    """In the caller's write transaction: every stored search and review keeps only the pseudonym of each erased
    subject (``erased``: ref → pseudonym), never its ref or name. Returns how many searches changed."""
    changed = 0
    for ref in erased:
        rows = execute(
            dialect.sql(
                "SELECT search_id, candidates FROM service_searches WHERE candidates LIKE ? ESCAPE '!'"
            ),
            (f"%{like_literal(json.dumps(ref))}%",),
        ).fetchall()
        for search_id, text in rows:
            candidates = json.loads(text)
            if pseudonymise_candidates(candidates, {ref: erased[ref]}):
                execute(
                    dialect.sql("UPDATE service_searches SET candidates = ? WHERE search_id = ?"),
                    (json.dumps(candidates), search_id),
                )
                changed += 1
        execute(
            dialect.sql("UPDATE service_reviews SET subject_ref = ? WHERE subject_ref = ?"),
            (erased[ref], ref),
        )
    return changed


def live_refs(execute: Execute, dialect: Dialect, refs: Sequence[str]) -> set[str]:
    """Which of ``refs`` are enrolled now (inside the caller's transaction)."""
    found: set[str] = set()
    unique = list(dict.fromkeys(refs))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = execute(dialect.sql(f"SELECT subject_ref FROM subjects WHERE subject_ref IN ({marks})"), chunk)
        found.update(r[0] for r in rows.fetchall())
    return found
