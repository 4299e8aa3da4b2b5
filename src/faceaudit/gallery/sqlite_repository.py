"""The SQLite :class:`~faceaudit.gallery.repository.GalleryRepository`: every SQL statement of the gallery."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from faceaudit.gallery import declared, search_records, sqlite_file
from faceaudit.gallery.repository import (
    SUBJECT_INSERT_COLUMNS,
    CandidateRow,
    NewSubject,
    NewTemplate,
    SubjectRow,
)
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore

RECLAIM_TRY_MS = 100
"""How long each checkpoint try waits for readers before it reports busy."""
_SUBJECT_COLUMNS = (
    "id, subject_ref, display_name, consent_basis, consent_by, consent_at, consent_expires, created_at, 0, "
    "name_binding"
)


class SQLiteGalleryRepository:
    """A gallery in one SQLite file (WAL, ``secure_delete``, ``BEGIN IMMEDIATE`` writers), see :mod:`.store`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = False) -> SQLiteGalleryRepository:
        """Connect to the gallery file at ``path``; ``create`` allows a new (empty) file. The schema is not touched.

        Raises NotAGalleryError for any other application's file, GalleryNotFoundError for a missing or empty
        file without ``create``, and GalleryDamagedError for a gallery that lost a table.
        """
        conn = sqlite_file.connect(path, create=create)
        try:
            sqlite_file.check_tables(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, Path(path))

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (for tools and tests that inspect the file)."""
        return self._conn

    # --- lifecycle and transactions ---------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending schema migrations, each in its own transaction; returns the schema version."""
        return sqlite_file.migrate(self._conn)

    def migrate_needed(self) -> bool:
        """Whether the file's schema is older than this faceaudit's."""
        return sqlite_file.schema_version(self._conn) < sqlite_file.SCHEMA_VERSION

    @contextmanager
    def write(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` when the block raises)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A deferred read transaction: one consistent view of the file until the block ends."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def ledger_store(self) -> SQLiteLedgerStore:
        """The ``ledger`` table on this connection."""
        return SQLiteLedgerStore(self._conn)

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL when the last connection closes)."""
        self._conn.close()

    # --- meta -------------------------------------------------------------------------------------------

    def read_meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (empty when the file has none yet)."""
        return sqlite_file.read_meta(self._conn)

    def write_meta(self, values: dict[str, str]) -> None:
        """Insert meta values."""
        self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", values.items())

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, delete) one meta value."""
        if value is None:
            self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def version(self) -> int:
        """The gallery version from ``meta``."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise sqlite_file.GalleryDamagedError(
                f"{self.path}: the gallery file is damaged: meta.version is missing or not a number"
            ) from None

    def bump_version(self) -> int:
        """Add one to the gallery version; returns the new value."""
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
        return self.version()

    # --- subjects and templates -------------------------------------------------------------------------

    def find_subject(self, subject_ref: str) -> SubjectRow | None:
        """The subject with this ref, or None."""
        row = self._conn.execute(
            f"SELECT {_SUBJECT_COLUMNS} FROM subjects WHERE subject_ref = ?", (subject_ref,)
        ).fetchone()
        return None if row is None else SubjectRow(*row)

    def list_subjects(self) -> list[SubjectRow]:
        """Every subject with its template count, in enrolment order."""
        rows = self._conn.execute(
            "SELECT s.id, s.subject_ref, s.display_name, s.consent_basis, s.consent_by, s.consent_at, "
            "s.consent_expires, s.created_at, COUNT(t.id), s.name_binding FROM subjects s "
            "LEFT JOIN templates t ON t.subject_id = s.id GROUP BY s.id ORDER BY s.id"
        ).fetchall()
        return [SubjectRow(*r) for r in rows]

    def expired_subjects(self, as_of: str) -> list[SubjectRow]:
        """Subjects whose consent expires on or before ``as_of`` (ISO date)."""
        rows = self._conn.execute(
            f"SELECT {_SUBJECT_COLUMNS} FROM subjects WHERE consent_expires IS NOT NULL AND "
            "consent_expires <= ? ORDER BY id",
            (as_of,),
        ).fetchall()
        return [SubjectRow(*r) for r in rows]

    def insert_subject(self, subject: NewSubject) -> int:
        """Insert one subject row; returns its id."""
        cur = self._conn.execute(
            f"INSERT INTO subjects ({SUBJECT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            subject.row(),
        )
        return int(cur.lastrowid)

    def insert_template(self, subject_id: int, template: NewTemplate) -> int:
        """Insert one sealed template; returns its id."""
        cur = self._conn.execute(
            "INSERT INTO templates (subject_id, model_id, quality, source_sha256, sealed, image, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                subject_id,
                template.model_id,
                template.quality_json,
                template.source_sha256,
                template.sealed,
                template.image,
                template.created_at,
            ),
        )
        return int(cur.lastrowid)

    def delete_subjects(self, subject_ids: Sequence[int]) -> list[int]:
        """Delete subjects and their templates; returns the template ids that were deleted."""
        removed: list[int] = []
        for subject_id in subject_ids:
            removed += [
                r[0]
                for r in self._conn.execute("SELECT id FROM templates WHERE subject_id = ?", (subject_id,))
            ]
            self._conn.execute("DELETE FROM declared_attributes WHERE subject_id = ?", (subject_id,))
            self._conn.execute("DELETE FROM templates WHERE subject_id = ?", (subject_id,))
            self._conn.execute("DELETE FROM subjects WHERE id = ?", (subject_id,))
        return removed

    def insert_declared(self, subject_id: int, sealed: bytes, created_at: str) -> None:
        """Store a subject's sealed declared attributes (see :mod:`.declared`)."""
        declared.insert(self._conn.execute, search_records.SQLITE, subject_id, sealed, created_at)

    def delete_declared(self, subject_id: int) -> bool:
        """Delete one subject's declared attributes; whether there were any."""
        return declared.delete(self._conn.execute, search_records.SQLITE, [subject_id]) > 0

    def declared_rows(self) -> list[tuple[str, bytes]]:
        """``(subject_ref, sealed)`` of every subject with declared attributes."""
        return declared.rows(self._conn.execute, search_records.SQLITE)

    def forget_subjects(self, erased: dict[str, str]) -> None:
        """Pseudonymise erased subjects in the stored searches and reviews (see :mod:`.search_records`)."""
        search_records.forget_subjects(self._conn.execute, search_records.SQLITE, erased)

    def sealed_templates_of(self, subject_id: int) -> list[tuple[str, bytes]]:
        """``(model_id, sealed)`` of every template of one subject."""
        rows = self._conn.execute(
            "SELECT model_id, sealed FROM templates WHERE subject_id = ? ORDER BY id", (subject_id,)
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def iter_other_models(self, model_id: str) -> Iterator[tuple[int, str, str, bytes]]:
        """``(id, subject_ref, model_id, sealed)`` of every template not of ``model_id``."""
        return self._stream(
            "SELECT t.id, s.subject_ref, t.model_id, t.sealed FROM templates t JOIN subjects s "
            "ON s.id = t.subject_id WHERE t.model_id != ? ORDER BY t.id",
            (model_id,),
        )

    def set_name_bindings(self, bindings: Sequence[tuple[int, str]]) -> None:
        """Store name bindings of existing subjects."""
        self._conn.executemany(
            "UPDATE subjects SET name_binding = ? WHERE id = ?", [(b, i) for i, b in bindings]
        )

    def sealed_images_of(self, subject_id: int) -> list[tuple[str, bytes]]:
        """``(model_id, sealed image)`` of each stored reference image of one subject, by template id."""
        rows = self._conn.execute(
            "SELECT model_id, image FROM templates WHERE subject_id = ? AND image IS NOT NULL ORDER BY id",
            (subject_id,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def count_templates(self, model_id: str) -> int:
        """How many templates of ``model_id`` are stored."""
        row = self._conn.execute("SELECT COUNT(*) FROM templates WHERE model_id = ?", (model_id,)).fetchone()
        return int(row[0])

    def iter_sealed_templates(self, model_id: str) -> Iterator[tuple[int, str, bytes]]:
        """``(template id, subject_ref, sealed)`` of every template of ``model_id``, by id."""
        return self._stream(
            "SELECT t.id, s.subject_ref, t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id "
            "WHERE t.model_id = ? ORDER BY t.id",
            (model_id,),
        )

    def template_ids(self, model_id: str) -> list[int]:
        """The id of every template of ``model_id``, ascending."""
        rows = self._conn.execute("SELECT id FROM templates WHERE model_id = ? ORDER BY id", (model_id,))
        return [int(r[0]) for r in rows]

    def sealed_templates_by_id(self, template_ids: Sequence[int]) -> Iterator[tuple[int, str, bytes]]:
        """``(template id, subject_ref, sealed)`` of those of these ids that exist, by id."""
        return self._rows_by_id(
            "SELECT t.id, s.subject_ref, t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id "
            "WHERE t.id IN ({ids}) ORDER BY t.id",
            sorted(int(i) for i in template_ids),
        )

    def _rows_by_id(self, sql: str, ids: Sequence[int]) -> Iterator[tuple]:
        """The rows of ``sql`` (with ``{ids}`` where the id list goes) for ``ids``, 500 ids per statement."""
        for chunk in range(0, len(ids), 500):
            part = [int(i) for i in ids[chunk : chunk + 500]]
            yield from self._conn.execute(sql.format(ids=",".join("?" * len(part))), part).fetchall()

    def change_listener(self) -> PollingListener:
        """SQLite sends no notices: a listener that wakes every half second for a version check."""
        return PollingListener(0.5)

    def _stream(self, sql: str, params: tuple) -> Iterator[tuple]:
        cursor = self._conn.execute(sql, params)
        while rows := cursor.fetchmany(4096):
            yield from rows

    def candidate_rows(self, template_ids: Sequence[int]) -> dict[int, CandidateRow]:
        """Subject ref, display name and consent expiry of each existing template id."""
        rows = self._rows_by_id(
            "SELECT t.id, s.subject_ref, s.display_name, s.consent_expires, s.name_binding FROM templates t "
            "JOIN subjects s ON s.id = t.subject_id WHERE t.id IN ({ids})",
            template_ids,
        )
        return {
            tid: CandidateRow(tid, ref, name, expires, binding) for tid, ref, name, expires, binding in rows
        }

    # --- storage hygiene --------------------------------------------------------------------------------

    def reclaim(self, *, vacuum: bool = False, wait_s: float = 0.0) -> bool:
        """VACUUM (when asked) and TRUNCATE checkpoints for at most ``wait_s`` seconds (each try waits 0.1 s for
        readers); False when a reader kept the WAL from being emptied."""
        deadline = time.monotonic() + wait_s
        self._conn.execute(f"PRAGMA busy_timeout={RECLAIM_TRY_MS}")
        try:
            if vacuum:
                self._conn.execute("VACUUM")
            while True:
                busy, _, _ = sqlite_file.checkpoint(self._conn)
                if not busy:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(RECLAIM_TRY_MS / 1000)
        except sqlite3.OperationalError as exc:  # VACUUM while another connection reads: locked
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={sqlite_file.BUSY_TIMEOUT_MS}")


class PollingListener:
    """A :class:`~faceaudit.gallery.repository.ChangeListener` without notices: every wait times out."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._closed = threading.Event()

    def wait(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds (less when closed meanwhile); never a notice, so always False."""
        self._closed.wait(timeout)
        return False

    def close(self) -> None:
        self._closed.set()
