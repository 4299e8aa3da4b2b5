"""Rows altered in SQL are integrity failures: names bound to their subject, templates to their model.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (the ``store`` fixture); the
tampering is plain SQL, which anyone with write access to either store can run."""

from __future__ import annotations

import numpy as np
import pytest
from stores import RawDb

from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.crypto import generate_key
from faceaudit.gallery.sqlite_file import GalleryIntegrityError

CONSENT = Consent("form", "Ruth")
KEY = generate_key()


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


def build(path) -> None:
    with Gallery(path, key=KEY, engine=FakeEngine()) as g:
        for i, name in enumerate(("Alice Example", "Bob Example")):
            g.enroll_templates(
                f"s{i}",
                np.eye(8, dtype=np.float32)[i : i + 1],
                name=name,
                consent=CONSENT,
                operator="o",
                model_id="fake-model",
            )


def sql(path, *statements) -> None:
    with RawDb(path) as conn:
        for s in statements:
            conn.execute(s)


def search(g: Gallery, i: int):
    vec = np.eye(8, dtype=np.float32)[i]
    return g.identify_template(vec, probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=2)


def test_swapped_display_names_are_an_integrity_failure(store):
    path = store.db
    build(path)
    with Gallery(path, key=KEY, engine=FakeEngine(), create=False) as g:
        assert search(g, 0).candidates[0].name == "Alice Example"
    sql(
        path,
        "UPDATE subjects SET display_name = 'tmp' WHERE subject_ref = 's0'",
        "UPDATE subjects SET display_name = 'Alice Example' WHERE subject_ref = 's1'",
        "UPDATE subjects SET display_name = 'Bob Example' WHERE subject_ref = 's0'",
    )
    with Gallery(path, key=KEY, engine=FakeEngine(), create=False) as g:
        with pytest.raises(GalleryIntegrityError, match="display name was altered"):
            search(g, 0)
        with pytest.raises(GalleryIntegrityError):
            g.subjects()


def test_a_changed_model_id_is_an_integrity_failure(store):
    path = store.db
    build(path)
    sql(path, "UPDATE templates SET model_id = 'other-model' WHERE id = 1")
    with (
        Gallery(path, key=KEY, engine=FakeEngine(), create=False) as g,
        pytest.raises(GalleryIntegrityError, match="model id"),
    ):
        search(g, 1)


def test_galleries_made_before_binding_get_their_names_bound_once(store):
    path = store.db
    build(path)
    sql(path, "UPDATE subjects SET name_binding = NULL", "DELETE FROM meta WHERE key = 'names_bound'")
    with Gallery(path, key=KEY, engine=FakeEngine(), create=False) as g:
        assert [s["name"] for s in g.subjects()] == ["Alice Example", "Bob Example"]
    sql(path, "UPDATE subjects SET name_binding = NULL WHERE subject_ref = 's1'")
    with Gallery(path, key=KEY, engine=FakeEngine(), create=False) as g, pytest.raises(GalleryIntegrityError):
        g.subjects()
