"""The Python API on real faces: consented enrolment, identification, 1:1, erasure, expiry, keys.

Every test runs on both stores: an SQLite file and a real PostgreSQL database (a throwaway cluster)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from stores import RawDb

from faceaudit.errors import ConsentError, InputError, PolicyError
from faceaudit.gallery import (
    Consent,
    Gallery,
    GalleryKeyError,
    GalleryNotFoundError,
    SubjectExistsError,
    SubjectNotFoundError,
)
from faceaudit.gallery.crypto import generate_key

FAIRFACE = Path(__file__).parent / "data" / "fairface"
GOOD = ["0001", "0002", "0003", "0005", "0007"]  # pass the quality gate; 0008 is blurred and turned away
CONSENT = Consent("signed consent form", "Registrar Ruth")


def augment(src: Path, out: Path) -> list[Path]:
    """Augmented copies of one face (the same subject): flipped, rotated 4°, rescaled 0.85."""
    img = cv2.imread(str(src))
    h, w = img.shape[:2]
    variants = {
        "flip": cv2.flip(img, 1),
        "rot": cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 4, 1.0), (w, h)),
        "scale": cv2.resize(img, None, fx=0.85, fy=0.85),
    }
    paths = []
    for name, im in variants.items():
        p = out / f"{src.stem}_{name}.jpg"
        cv2.imwrite(str(p), im)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("aug")
    result = {}
    for n in GOOD:
        src = FAIRFACE / f"fairface_{n}.jpg"
        flip, rot, scale = augment(src, out)
        result[n] = {"orig": src, "flip": flip, "rot": rot, "scale": scale}
    return result


@pytest.fixture()
def db(store) -> str:
    """Where a test's gallery lives, on each backend in turn (the ``store`` fixture)."""
    return store.db


@pytest.fixture()
def gallery(db, engine):
    key = generate_key()
    g = Gallery(db, key=key, engine=engine, operator="tester")
    g.test_key = key
    g.test_db = db
    yield g
    g.close()


def enroll_all(g: Gallery, faces) -> None:
    for n in GOOD:
        g.enroll(
            f"S{n}", [faces[n]["orig"], faces[n]["rot"]], name=f"Person {n}", consent=CONSENT, operator="op"
        )


def test_identify_ranks_the_mated_subject_first(gallery, faces):
    enroll_all(gallery, faces)
    for n in GOOD:
        res = gallery.identify(
            faces[n]["flip"], purpose="unit test", case="T-1", operator="investigator", top_k=3
        )
        assert res.candidates[0].subject_ref == f"S{n}"
        assert res.candidates[0].above_threshold
        assert len(res.candidates) == 3 and len({c.subject_ref for c in res.candidates}) == 3
        assert not any(c.above_threshold for c in res.candidates[1:])
        d = res.as_dict()
        assert d["decision"] is None and d["gallery"]["version"] == len(GOOD)
    entry = list(gallery.ledger.store.entries())[-1]
    assert entry.action == "identify" and entry.purpose == "unit test" and entry.case_ref == "T-1"
    assert entry.actor == "investigator" and entry.params["top_k"] == 3
    assert entry.result["candidates"][0]["subject"] == gallery.pseudonym("S0007")
    assert gallery.ledger.verify().n_entries == 1 + len(GOOD) * 2


def test_names_and_refs_never_enter_the_ledger(gallery, faces):
    enroll_all(gallery, faces)
    gallery.identify(faces["0001"]["scale"], purpose="p", case="c", operator="o")
    gallery.erase("S0001", reason="request", operator="o")
    text = "\n".join(str(e.as_dict()) for e in gallery.ledger.store.entries())
    for n in GOOD:
        assert f"Person {n}" not in text and f"S{n}" not in text
    assert gallery.pseudonym("S0001") in text


def test_enrolment_refuses_bad_consent_and_low_quality(gallery, faces):
    with pytest.raises(ConsentError):
        gallery.enroll("X", [faces["0001"]["orig"]], name="X", consent=Consent("", "Ruth"), operator="o")
    with pytest.raises(ConsentError):
        gallery.enroll(
            "X",
            [faces["0001"]["orig"]],
            name="X",
            consent=Consent("form", "Ruth", date.today() - timedelta(days=1)),
            operator="o",
        )
    with pytest.raises(InputError, match="too blurred") as err:
        gallery.enroll(
            "X",
            [faces["0001"]["orig"], FAIRFACE / "fairface_0008.jpg"],
            name="X",
            consent=CONSENT,
            operator="o",
        )
    assert err.value.exit_code == 3
    assert not gallery.has_subject("X")  # all or nothing
    assert gallery.ledger.store.count() == 1  # only the init entry
    gallery.enroll("X", [faces["0001"]["orig"]], name="X", consent=CONSENT, operator="o")
    with pytest.raises(SubjectExistsError):
        gallery.enroll("X", [faces["0002"]["orig"]], name="X", consent=CONSENT, operator="o")


def test_identify_needs_purpose_and_refuses_poor_probes(gallery, faces):
    enroll_all(gallery, faces)
    with pytest.raises(PolicyError, match="purpose"):
        gallery.identify(faces["0001"]["flip"], purpose=" ", case="c", operator="o")
    n = gallery.ledger.store.count()
    with pytest.raises(InputError, match="probe quality too low"):
        gallery.identify(FAIRFACE / "fairface_0008.jpg", purpose="p", case="c", operator="o")
    refused = list(gallery.ledger.store.entries())[-1]
    assert gallery.ledger.store.count() == n + 1 and refused.result["status"] == "refused"


def test_verify_subject(gallery, faces):
    enroll_all(gallery, faces)
    mated = gallery.verify_subject(faces["0003"]["flip"], "S0003", operator="o")
    non_mated = gallery.verify_subject(faces["0003"]["flip"], "S0005", operator="o")
    assert mated.above_threshold and not non_mated.above_threshold
    assert mated.similarity > non_mated.similarity
    with pytest.raises(SubjectNotFoundError):
        gallery.verify_subject(faces["0003"]["flip"], "nobody", operator="o")


def test_erase_removes_from_search_and_database(gallery, faces):
    enroll_all(gallery, faces)
    before = gallery.identify(faces["0005"]["flip"], purpose="p", case="c", operator="o", top_k=10)
    assert before.candidates[0].subject_ref == "S0005"
    gallery.erase("S0005", reason="data subject request", operator="dpo")
    after = gallery.identify(faces["0005"]["flip"], purpose="p", case="c", operator="o", top_k=10)
    assert "S0005" not in [c.subject_ref for c in after.candidates] and len(after.candidates) == len(GOOD) - 1
    assert not gallery.has_subject("S0005")
    # and from a fresh open (index rebuilt from the database)
    with Gallery(gallery.test_db, key=gallery.test_key, engine=gallery.engine, create=False) as again:
        res = again.identify(faces["0005"]["flip"], purpose="p", case="c", operator="o")
        assert "S0005" not in [c.subject_ref for c in res.candidates]
    with pytest.raises(SubjectNotFoundError):
        gallery.erase("S0005", reason="again", operator="dpo")


def test_expire_erases_expired_consent_and_search_skips_it(gallery, faces):
    soon = date.today() + timedelta(days=3)
    gallery.enroll(
        "temp", [faces["0002"]["orig"]], name="Temp", consent=Consent("form", "Ruth", soon), operator="o"
    )
    gallery.enroll("perm", [faces["0003"]["orig"]], name="Perm", consent=CONSENT, operator="o")
    assert gallery.expire(date.today(), operator="cron") == []
    expired = gallery.expire(soon, operator="cron")
    assert expired == ["temp"]
    assert [s["subject_ref"] for s in gallery.subjects()] == ["perm"]
    last = list(gallery.ledger.store.entries())[-1]
    assert last.action == "expire" and last.result["subjects"] == [gallery.pseudonym("temp")]
    assert expired.ledger_seq == last.seq


def test_templates_are_sealed_and_bound_to_their_subject(gallery, faces):
    enroll_all(gallery, faces)
    conn = RawDb(gallery.test_db)
    blob = bytes(conn.execute("SELECT sealed FROM templates LIMIT 1").fetchone()[0])
    vec = gallery.engine.template(faces["0001"]["orig"]).vector
    assert vec.astype("<f4").tobytes() not in blob and len(blob) == 12 + 128 * 4 + 16
    # moving a template to another subject breaks its associated data
    conn.execute(
        "UPDATE templates SET subject_id = (SELECT id FROM subjects WHERE subject_ref = 'S0002') "
        "WHERE id = (SELECT MIN(id) FROM templates)"
    )
    conn.commit()
    conn.close()
    with (
        Gallery(gallery.test_db, key=gallery.test_key, engine=gallery.engine, create=False) as again,
        pytest.raises(GalleryKeyError, match="altered"),
    ):
        again.identify(faces["0001"]["flip"], purpose="p", case="c", operator="o")


def test_wrong_or_missing_key_changes_nothing(gallery, faces, tmp_path, monkeypatch):
    enroll_all(gallery, faces)
    gallery.close()
    path = gallery.test_db

    def state() -> object:
        if gallery.path == Path(path):
            return Path(path).read_bytes()
        conn = RawDb(path)
        try:
            return [
                conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("meta", "ledger", "templates")
            ]
        finally:
            conn.close()

    before = state()
    monkeypatch.delenv("FACEAUDIT_KEY", raising=False)
    with pytest.raises(GalleryKeyError, match="wrong gallery key"):
        Gallery(path, key=generate_key(), create=False)
    # the message says where the key may come from: the file beside an SQLite gallery, or --key-file for a URL
    where = "--key-file PATH" if path.startswith("postgresql://") else f"keep the key in {path}.key"
    with pytest.raises(GalleryKeyError, match="no gallery key") as refused:
        Gallery(path, create=False)
    assert where in str(refused.value)
    with pytest.raises(GalleryKeyError, match="32 bytes"):
        Gallery(path, key="short", create=False)
    assert state() == before
    with pytest.raises(GalleryNotFoundError):
        Gallery(tmp_path / "absent.db", key=generate_key(), create=False)
    assert not (tmp_path / "absent.db").exists()


def test_schema_is_migrated_and_versioned(gallery):
    conn = RawDb(gallery.test_db)
    if conn.pg:
        from faceaudit.gallery.pg_repository import SCHEMA_VERSION

        assert conn.execute("SELECT version FROM faceaudit_schema").fetchone()[0] == SCHEMA_VERSION
    else:
        from faceaudit.gallery.sqlite_file import SCHEMA_VERSION

        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_enroll_templates_and_top_level_attribute(db):
    import faceaudit

    assert faceaudit.Gallery is Gallery
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 128)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)

    class FakeEngine:  # identify needs only model_id, threshold, policy, load/prepare/embed_crops
        model_id, threshold, policy, dim = "fake-model", 0.5, "central", 128

    g = Gallery(db, key=generate_key(), engine=FakeEngine())
    for i in range(20):
        g.enroll_templates(
            f"s{i}", X[i : i + 1], name=f"n{i}", consent=CONSENT, operator="o", model_id="fake-model"
        )
    index = g._ensure_index()
    ids, scores = index.search(X[4], 1)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert g.rebuild_index("fake-model") == 20
    # bulk enrolment: one ledger entry per subject, several subjects per transaction; the live index follows
    Y = rng.standard_normal((30, 128)).astype(np.float32)
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    n = g.enroll_many(
        ((f"bulk{i}", f"b{i}", Y[i : i + 1]) for i in range(30)),
        consent=CONSENT,
        operator="o",
        model_id="fake-model",
        batch_size=7,
    )
    assert n == 30 and len(g.subjects()) == 50
    res = g.identify_template(Y[17], probe_sha256="00" * 32, purpose="p", case="c", operator="o", top_k=3)
    assert res.candidates[0].subject_ref == "bulk17" and res.gallery_version == 50
    assert g.ledger.verify().n_entries == 1 + 50 + 1
    g.close()


def test_hnsw_gallery_finds_and_forgets(db):
    class FakeEngine:
        model_id, threshold, policy, dim = "fake-model", 0.5, "central", 128

    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 128)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    key = generate_key()
    with Gallery(db, key=key, engine=FakeEngine(), index="hnsw") as g:
        g.enroll_many(
            ((f"s{i}", f"n{i}", X[i : i + 1]) for i in range(200)),
            consent=CONSENT,
            operator="o",
            model_id="fake-model",
        )
    with Gallery(db, key=key, engine=FakeEngine(), create=False) as g:
        assert g.index_kind == "hnsw"
        res = g.identify_template(X[42], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=5)
        assert res.candidates[0].subject_ref == "s42" and res.candidates[0].above_threshold
        g.erase("s42", reason="r", operator="o")
        res = g.identify_template(X[42], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=5)
        assert "s42" not in [c.subject_ref for c in res.candidates]


def test_a_second_process_view_follows_changes(db):
    """Two Gallery objects on one file (as two processes would be): each search sees the other's changes."""

    class FakeEngine:
        model_id, threshold, policy, dim = "fake-model", 0.5, "central", 128

    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 128)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    key = generate_key()
    a = Gallery(db, key=key, engine=FakeEngine())
    b = Gallery(db, key=key, engine=FakeEngine(), create=False)

    def top(g: Gallery, i: int) -> str | None:
        res = g.identify_template(X[i], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=1)
        return res.candidates[0].subject_ref if res.candidates else None

    for i in range(10):
        a.enroll_templates(
            f"s{i}", X[i : i + 1], name=f"n{i}", consent=CONSENT, operator="o", model_id="fake-model"
        )
    assert top(b, 3) == "s3"
    b.enroll_templates("s10", X[10:11], name="n10", consent=CONSENT, operator="o", model_id="fake-model")
    assert top(a, 10) == "s10"  # a's index was rebuilt: the gallery version moved
    a.erase("s3", reason="r", operator="o")
    assert top(b, 3) != "s3"
    assert a.ledger.verify().n_entries == 1 + 11 + 3 + 1
    a.close()
    b.close()


def test_images_are_stored_only_when_asked_and_sealed(gallery, faces):
    gallery.enroll("plain", [faces["0001"]["orig"]], name="Plain", consent=CONSENT, operator="o")
    gallery.enroll(
        "kept", [faces["0002"]["orig"]], name="Kept", consent=CONSENT, operator="o", store_images=True
    )
    conn = RawDb(gallery.test_db)
    images = {
        ref: None if image is None else bytes(image)
        for ref, image in conn.execute(
            "SELECT s.subject_ref, t.image FROM templates t JOIN subjects s ON s.id = t.subject_id"
        ).fetchall()
    }
    conn.close()
    raw = faces["0002"]["orig"].read_bytes()
    assert images["plain"] is None
    assert (
        images["kept"] is not None and len(images["kept"]) == len(raw) + 28 and raw[:64] not in images["kept"]
    )
    if not conn.pg:  # (PostgreSQL's table files: test_pg_repository.py)
        assert raw[100:164] not in gallery.path.read_bytes() + Path(f"{gallery.path}-wal").read_bytes()
