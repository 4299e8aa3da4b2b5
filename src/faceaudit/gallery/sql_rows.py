"""The gallery's rows in SQL written once: every statement that SQLite and PostgreSQL run alike.

:class:`SQLRows` implements the row methods of :class:`~faceaudit.gallery.repository.GalleryRepository` over two
hooks that each store provides: ``dialect`` (a :class:`~faceaudit.gallery.search_records.Dialect`, which turns the
portable ``?`` statements into the store's own) and ``_run(sql, params)`` (the statement on the store's connection
for the calling thread, inside its open transaction when there is one). What differs between the stores
(connections, transactions, migrations, reclaiming erased bytes, change notices) stays in
:mod:`.sqlite_repository` and :mod:`.pg_repository`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from faceaudit.gallery import declared, search_records
from faceaudit.gallery.repository import (
    SUBJECT_INSERT_COLUMNS,
    CandidateRow,
    NewSubject,
    NewTemplate,
    SubjectRow,
)
from faceaudit.gallery.search_records import Dialect
from faceaudit.gallery.sqlite_file import GalleryDamagedError

SUBJECT_COLUMNS = (
    "id, subject_ref, display_name, consent_basis, consent_by, consent_at, consent_expires, created_at, 0, "
    "name_binding"
)
PAGE = 8192
"""Rows per statement when streaming templates (keyset pages), ids per statement when looking rows up by id."""
ID_CHUNK = 500
INSERT_CHUNK = 500
"""Rows per multi-row INSERT (8 values a subject row: well under SQLite's 32,766 variables)."""


def _blob(value: Any) -> Any:
    """A stored blob as ``bytes`` (PostgreSQL gives ``memoryview``); anything else as stored, so that a value
    tampered into another type reaches the sealer, which refuses it by name."""
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


class SQLRows:
    """The row methods of a gallery repository, in portable SQL (see the module docstring)."""

    dialect: Dialect
    path: Any

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._run(self.dialect.sql(sql), params)

    # --- meta -------------------------------------------------------------------------------------------

    def write_meta(self, values: dict[str, str]) -> None:
        """Insert meta values."""
        for key, value in values.items():
            self._q("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, delete) one meta value."""
        if value is None:
            self._q("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._q(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def version(self) -> int:
        """The gallery version from ``meta``."""
        row = self._q("SELECT value FROM meta WHERE key = 'version'").fetchone()
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise GalleryDamagedError(
                f"{self.path}: the gallery is damaged: meta.version is missing or not a number"
            ) from None

    def bump_version(self) -> int:
        """Add one to the gallery version; returns the new value."""
        self._q("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'version'")
        return self.version()

    # --- subjects and templates -------------------------------------------------------------------------

    def find_subject(self, subject_ref: str) -> SubjectRow | None:
        """The subject with this ref, or None."""
        row = self._q(
            f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE subject_ref = ?", (subject_ref,)
        ).fetchone()
        return None if row is None else SubjectRow(*row)

    def list_subjects(self) -> list[SubjectRow]:
        """Every subject with its template count, in enrolment order."""
        rows = self._q(
            "SELECT s.id, s.subject_ref, s.display_name, s.consent_basis, s.consent_by, s.consent_at, "
            "s.consent_expires, s.created_at, COUNT(t.id), s.name_binding FROM subjects s "
            "LEFT JOIN templates t ON t.subject_id = s.id GROUP BY s.id ORDER BY s.id"
        ).fetchall()
        return [SubjectRow(*r) for r in rows]

    def expired_subjects(self, as_of: str) -> list[SubjectRow]:
        """Subjects whose consent expires on or before ``as_of`` (ISO date)."""
        rows = self._q(
            f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE consent_expires IS NOT NULL AND "
            "consent_expires <= ? ORDER BY id",
            (as_of,),
        ).fetchall()
        return [SubjectRow(*r) for r in rows]

    def insert_subject(self, subject: NewSubject) -> int:
        """Insert one subject row; returns its id."""
        marks = ", ".join("?" for _ in subject.row())
        sql = f"INSERT INTO subjects ({SUBJECT_INSERT_COLUMNS}) VALUES ({marks}) RETURNING id"
        return int(self._q(sql, subject.row()).fetchone()[0])

    def insert_template(self, subject_id: int, template: NewTemplate) -> int:
        """Insert one sealed template; returns its id."""
        row = self._q(
            "INSERT INTO templates (subject_id, model_id, quality, source_sha256, sealed, image, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                subject_id,
                template.model_id,
                template.quality_json,
                template.source_sha256,
                template.sealed,
                template.image,
                template.created_at,
            ),
        ).fetchone()
        return int(row[0])

    def taken_refs(self, subject_refs: Sequence[str]) -> set[str]:
        """Those of these subject refs that are enrolled."""
        refs = list(subject_refs)
        return {
            r[0]
            for start in range(0, len(refs), ID_CHUNK)
            for r in self._q(
                "SELECT subject_ref FROM subjects WHERE subject_ref IN "
                f"({', '.join('?' for _ in refs[start : start + ID_CHUNK])})",
                refs[start : start + ID_CHUNK],
            ).fetchall()
        }

    def insert_subjects(self, subjects: Sequence[NewSubject]) -> list[int]:
        """Insert subjects with distinct, free refs, one multi-row statement per chunk; their ids, in order."""
        ids: dict[str, int] = {}
        for start in range(0, len(subjects), INSERT_CHUNK):
            part = subjects[start : start + INSERT_CHUNK]
            rows = ", ".join("(" + ", ".join("?" for _ in s.row()) + ")" for s in part)
            sql = f"INSERT INTO subjects ({SUBJECT_INSERT_COLUMNS}) VALUES {rows} RETURNING id, subject_ref"
            ids.update(
                (ref, int(i)) for i, ref in self._q(sql, [v for s in part for v in s.row()]).fetchall()
            )
        return [ids[s.subject_ref] for s in subjects]

    def insert_templates(self, templates: Sequence[tuple[int, NewTemplate]]) -> list[int]:
        """Insert ``(subject_id, template)`` rows, one multi-row statement per chunk; their ids, in order."""
        out: list[int] = []
        for start in range(0, len(templates), INSERT_CHUNK):
            part = templates[start : start + INSERT_CHUNK]
            rows = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in part)
            params = [
                v
                for subject_id, t in part
                for v in (
                    subject_id,
                    t.model_id,
                    t.quality_json,
                    t.source_sha256,
                    t.sealed,
                    t.image,
                    t.created_at,
                )
            ]
            returned = self._q(
                "INSERT INTO templates (subject_id, model_id, quality, source_sha256, sealed, image, created_at) "
                f"VALUES {rows} RETURNING id, subject_id",
                params,
            ).fetchall()
            # the rows may come back in any order: a subject's templates take its ids in ascending order
            by_subject: dict[int, list[int]] = {}
            for i, subject_id in sorted((int(i), int(s)) for i, s in returned):
                by_subject.setdefault(subject_id, []).append(i)
            queues = {s: iter(ids) for s, ids in by_subject.items()}
            out += [next(queues[int(subject_id)]) for subject_id, _ in part]
        return out

    def set_version(self, version: int) -> None:
        """Set the gallery version."""
        self._q("UPDATE meta SET value = ? WHERE key = 'version'", (str(int(version)),))

    def delete_subjects(self, subject_ids: Sequence[int]) -> list[int]:
        """Delete subjects, their templates and their declared attributes; returns the deleted template ids."""
        removed: list[int] = []
        ids = [int(i) for i in subject_ids]
        for start in range(0, len(ids), ID_CHUNK):
            part = ids[start : start + ID_CHUNK]
            marks = ", ".join("?" for _ in part)
            removed += [
                int(r[0])
                for r in self._q(
                    f"DELETE FROM templates WHERE subject_id IN ({marks}) RETURNING id", part
                ).fetchall()
            ]
            self._q(f"DELETE FROM declared_attributes WHERE subject_id IN ({marks})", part)
            self._q(f"DELETE FROM subjects WHERE id IN ({marks})", part)
        return sorted(removed)

    def insert_declared(self, subject_id: int, sealed: bytes, created_at: str) -> None:
        """Store a subject's sealed declared attributes (see :mod:`.declared`)."""
        declared.insert(self._run, self.dialect, subject_id, sealed, created_at)

    def delete_declared(self, subject_id: int) -> bool:
        """Delete one subject's declared attributes; whether there were any."""
        return declared.delete(self._run, self.dialect, [subject_id]) > 0

    def declared_rows(self) -> list[tuple[str, bytes]]:
        """``(subject_ref, sealed)`` of every subject with declared attributes."""
        return declared.rows(self._run, self.dialect)

    def forget_subjects(self, erased: dict[str, str]) -> None:
        """Pseudonymise erased subjects in the stored searches and reviews (see :mod:`.search_records`)."""
        search_records.forget_subjects(self._run, self.dialect, erased)

    def sealed_templates_of(self, subject_id: int) -> list[tuple[str, bytes]]:
        """``(model_id, sealed)`` of every template of one subject."""
        rows = self._q(
            "SELECT model_id, sealed FROM templates WHERE subject_id = ? ORDER BY id", (subject_id,)
        )
        return [(r[0], _blob(r[1])) for r in rows.fetchall()]

    def iter_other_models(self, model_id: str) -> Iterator[tuple[int, str, str, bytes]]:
        """``(id, subject_ref, model_id, sealed)`` of every template not of ``model_id``."""
        rows = self._q(
            "SELECT t.id, s.subject_ref, t.model_id, t.sealed FROM templates t JOIN subjects s "
            "ON s.id = t.subject_id WHERE t.model_id <> ? ORDER BY t.id",
            (model_id,),
        ).fetchall()
        yield from ((int(i), ref, m, _blob(blob)) for i, ref, m, blob in rows)

    def set_name_bindings(self, bindings: Sequence[tuple[int, str]]) -> None:
        """Store name bindings of existing subjects."""
        for subject_id, binding in bindings:
            self._q("UPDATE subjects SET name_binding = ? WHERE id = ?", (binding, subject_id))

    def sealed_images_of(self, subject_id: int) -> list[tuple[str, bytes]]:
        """``(model_id, sealed image)`` of each stored reference image of one subject, by template id."""
        rows = self._q(
            "SELECT model_id, image FROM templates WHERE subject_id = ? AND image IS NOT NULL ORDER BY id",
            (subject_id,),
        ).fetchall()
        return [(r[0], _blob(r[1])) for r in rows]

    def count_templates(self, model_id: str) -> int:
        """How many templates of ``model_id`` are stored."""
        return int(self._q("SELECT COUNT(*) FROM templates WHERE model_id = ?", (model_id,)).fetchone()[0])

    def iter_sealed_templates(self, model_id: str) -> Iterator[tuple[int, str, bytes]]:
        """``(template id, subject_ref, sealed)`` of every template of ``model_id``, by id, in keyset pages."""
        last = -1
        while True:
            rows = self._q(
                "SELECT t.id, s.subject_ref, t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id "
                f"WHERE t.model_id = ? AND t.id > ? ORDER BY t.id LIMIT {PAGE}",
                (model_id, last),
            ).fetchall()
            yield from ((int(i), ref, _blob(blob)) for i, ref, blob in rows)
            if len(rows) < PAGE:
                return
            last = int(rows[-1][0])

    def template_ids(self, model_id: str) -> list[int]:
        """The id of every template of ``model_id``, ascending."""
        rows = self._q("SELECT id FROM templates WHERE model_id = ? ORDER BY id", (model_id,)).fetchall()
        return [int(r[0]) for r in rows]

    def _rows_by_id(self, sql: str, ids: Sequence[int]) -> Iterator[tuple]:
        """The rows of ``sql`` (with ``{ids}`` where the id list goes) for ``ids``, a chunk of ids per statement."""
        for start in range(0, len(ids), ID_CHUNK):
            part = [int(i) for i in ids[start : start + ID_CHUNK]]
            yield from self._q(sql.format(ids=", ".join("?" for _ in part)), part).fetchall()

    def sealed_templates_by_id(self, template_ids: Sequence[int]) -> Iterator[tuple[int, str, bytes]]:
        """``(template id, subject_ref, sealed)`` of those of these ids that exist, by id."""
        rows = self._rows_by_id(
            "SELECT t.id, s.subject_ref, t.sealed FROM templates t JOIN subjects s ON s.id = t.subject_id "
            "WHERE t.id IN ({ids}) ORDER BY t.id",
            sorted(int(i) for i in template_ids),
        )
        yield from ((int(i), ref, _blob(blob)) for i, ref, blob in rows)

    def candidate_rows(self, template_ids: Sequence[int]) -> dict[int, CandidateRow]:
        """Subject ref, display name and consent expiry of each existing template id."""
        rows = self._rows_by_id(
            "SELECT t.id, s.subject_ref, s.display_name, s.consent_expires, s.name_binding FROM templates t "
            "JOIN subjects s ON s.id = t.subject_id WHERE t.id IN ({ids})",
            template_ids,
        )
        return {int(r[0]): CandidateRow(int(r[0]), *r[1:]) for r in rows}
