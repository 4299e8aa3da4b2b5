"""The gallery's own tables, written once for SQLite and PostgreSQL (see :mod:`faceaudit.sqldialect`).

SQLite reaches this schema through its numbered migrations (:mod:`.sqlite_file`), PostgreSQL in its first one
(:mod:`.pg_repository`); both run these statements. The ledger's table is :mod:`faceaudit.ledger.sql_rows`'s, the
accountability tables are :mod:`.search_records`'.
"""

from __future__ import annotations

from faceaudit.sqldialect import Dialect

TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE subjects (
        id {identity},
        subject_ref TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        consent_basis TEXT NOT NULL,
        consent_by TEXT NOT NULL,
        consent_at TEXT NOT NULL,
        consent_expires TEXT,
        created_at TEXT NOT NULL,
        name_binding TEXT)""",
    """CREATE TABLE templates (
        id {serial},
        subject_id BIGINT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        quality TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        sealed {blob} NOT NULL,
        image {blob},
        created_at TEXT NOT NULL)""",
)
"""Meta, subjects and their sealed templates."""

INDEXES = (
    "CREATE INDEX IF NOT EXISTS templates_subject ON templates(subject_id)",
    "CREATE INDEX IF NOT EXISTS templates_model ON templates(model_id, id)",
    "CREATE INDEX IF NOT EXISTS subjects_expiry ON subjects(consent_expires) WHERE consent_expires IS NOT NULL",
)


def statements(dialect: Dialect, *groups: tuple[str, ...]) -> list[str]:
    """The statements of ``groups`` (default: tables, then indexes) in ``dialect``."""
    return [dialect.sql(s) for group in (groups or (TABLES, INDEXES)) for s in group]
