"""The gallery recognises its own file: foreign SQLite files, damaged galleries and bad meta values are refused.

The foreign-file, application-id and empty-file tests are about the SQLite file itself and stay SQLite-only
(a PostgreSQL database is named by URL: tests/test_pg_cli.py covers a missing one). The damaged-gallery tests are
about the store's rows and run on both stores (the ``store`` fixture)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from stores import RawDb

from faceaudit.errors import FaceAuditError
from faceaudit.gallery import Consent, Gallery, GalleryLedger, GalleryNotFoundError
from faceaudit.gallery.crypto import GalleryKeyError, generate_key
from faceaudit.gallery.sqlite_file import APPLICATION_ID, GalleryDamagedError, NotAGalleryError

FACE = str(Path(__file__).parent / "data" / "fairface" / "fairface_0001.jpg")
KEY = generate_key()
ENV = {"FACEAUDIT_KEY": KEY.hex()}
ENROL = ["gallery", "enroll", "s1", FACE, "--name", "N", "--consent-basis", "b", "--consent-by", "r"]
ENROL += ["--operator", "o"]


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def foreign_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name, statements, user_version in (
        (
            "customers",
            ["CREATE TABLE customers (id INTEGER, name TEXT)", "INSERT INTO customers VALUES (1, 'A')"],
            0,
        ),
        ("meta_table", ["CREATE TABLE meta (key TEXT, value TEXT)", "INSERT INTO meta VALUES ('a', 'b')"], 0),
        ("subjects_v1", ["CREATE TABLE subjects (id INTEGER)"], 1),
        ("other_app_id", ["PRAGMA application_id=1234", "CREATE TABLE t (x)"], 0),
    ):
        path = tmp_path / f"{name}.db"
        conn = sqlite3.connect(path)
        for s in statements:
            conn.execute(s)
        conn.execute(f"PRAGMA user_version={user_version}")
        conn.commit()
        conn.close()
        files[name] = path
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 100)
    files["text"] = text
    return files


@pytest.mark.parametrize(
    "command",
    [
        ["identify", FACE, "--purpose", "p", "--case", "c", "--operator", "o"],
        ENROL,
        ["gallery", "erase", "s1", "--reason", "r", "--operator", "o"],
        ["gallery", "expire"],
        ["verify-subject", FACE, "s1", "--operator", "o"],
        ["ledger", "verify"],
        ["ledger", "export"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_commands_refuse_a_foreign_sqlite_file_and_change_nothing(tmp_path, command):
    for name, path in foreign_files(tmp_path).items():
        before = path.read_bytes()
        r = run_cli(*command, "--db", str(path), env=ENV)
        assert r.returncode == 2, (name, r.stderr)
        assert "not a faceaudit gallery" in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
        assert path.read_bytes() == before, name
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_only_init_creates_a_gallery(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # an SQLite file with no tables
    r = run_cli(
        "identify", FACE, "--purpose", "p", "--case", "c", "--operator", "o", "--db", str(empty), env=ENV
    )
    assert r.returncode == 2 and "gallery init" in r.stderr
    r = run_cli("ledger", "verify", "--db", str(tmp_path / "absent.db"))
    assert r.returncode == 2 and not (tmp_path / "absent.db").exists()


def test_the_api_refuses_foreign_files_even_with_create(tmp_path):
    for path in foreign_files(tmp_path).values():
        before = path.read_bytes()
        with pytest.raises(NotAGalleryError, match="not a faceaudit gallery"):
            Gallery(path, key=KEY, engine=FakeEngine())
        with pytest.raises(NotAGalleryError):
            GalleryLedger(path)
        assert path.read_bytes() == before


def test_a_new_gallery_carries_the_application_id_and_an_old_one_gains_it(tmp_path):
    path = tmp_path / "g.db"
    Gallery(path, key=KEY, engine=FakeEngine()).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    # a gallery made before the id (application_id 0, schema 3) is still recognised by its meta, and migrated
    conn.execute("PRAGMA application_id=0")
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    with GalleryLedger(path) as gl:
        assert gl.ledger.verify().n_entries == 1
    Gallery(path, key=KEY, engine=FakeEngine(), create=False).close()
    assert sqlite3.connect(path).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def damage(path: str, statement: str) -> None:
    with RawDb(path) as conn:
        if conn.pg:
            statement = statement.replace("X'0102'", "'\\x0102'::bytea")
        conn.execute(statement)


@pytest.mark.parametrize(
    ("statement", "error", "words"),
    [
        ("DROP TABLE ledger", GalleryDamagedError, "'ledger' is missing"),
        ("UPDATE meta SET value = 'zz-not-hex' WHERE key = 'key_check'", GalleryDamagedError, "key_check"),
        ("DELETE FROM meta WHERE key = 'version'", GalleryDamagedError, "meta.version"),
        ("UPDATE meta SET value = 'x' WHERE key = 'version'", GalleryDamagedError, "meta.version"),
        ("UPDATE templates SET sealed = 'plain text'", GalleryKeyError, "altered"),
        ("UPDATE templates SET sealed = X'0102'", GalleryKeyError, "altered"),
        ("UPDATE templates SET sealed = substr(sealed, 1, 40)", GalleryKeyError, "altered"),
    ],
)
def test_a_damaged_gallery_is_a_clear_error(store, statement, error, words):
    path = store.db
    with Gallery(path, key=KEY, engine=FakeEngine()) as g:
        g.enroll_templates(
            "s1",
            np.eye(8, dtype=np.float32)[:1],
            name="n",
            consent=Consent("b", "r"),
            operator="o",
            model_id="fake-model",
        )
    damage(path, statement)
    with pytest.raises(error, match=words), Gallery(path, key=KEY, engine=FakeEngine(), create=False) as g:
        g.rebuild_index("fake-model")
    r = run_cli("gallery", "erase", "s1", "--reason", "r", "--operator", "o", "--db", path, env=ENV)
    if issubclass(error, GalleryDamagedError):
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert issubclass(error, FaceAuditError)


def test_ledger_verify_on_a_dropped_ledger_table(store, tmp_path):
    path = store.db
    Gallery(path, key=KEY, engine=FakeEngine()).close()
    damage(path, "DROP TABLE ledger")
    r = run_cli("ledger", "verify", "--db", path)
    assert r.returncode == 1 and "'ledger' is missing" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(GalleryNotFoundError):
        Gallery(tmp_path / "none.db", key=KEY, create=False)
