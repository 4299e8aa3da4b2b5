"""The gallery repository contract on both stores (SQLite file, real PostgreSQL), and PostgreSQL's own duties:
writers from several connections serialised, change notifications, and erasure that VACUUMs."""

from __future__ import annotations

import os
import threading

import pytest

from faceaudit.gallery.repository import NewSubject, NewTemplate

SEALED = [os.urandom(300) for _ in range(6)]


def subject(ref: str, expires: str | None = None) -> NewSubject:
    return NewSubject(
        ref, f"Name {ref}", "signed form", "registrar", expires, "2026-01-01T00:00:00Z", f"b-{ref}"
    )


def template(blob: bytes, model: str = "m1") -> NewTemplate:
    return NewTemplate(model, '{"score": 0.9}', "ab" * 32, blob, None, "2026-01-01T00:00:00Z")


def open_repo(db: str):
    if db.startswith("postgresql://"):
        from faceaudit.gallery.pg_repository import PostgresGalleryRepository

        return PostgresGalleryRepository.open(db)
    from faceaudit.gallery.sqlite_repository import SQLiteGalleryRepository

    return SQLiteGalleryRepository.open(db, create=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "g.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture()
def repo(db):
    r = open_repo(db)
    r.migrate()
    with r.write():
        r.write_meta({"gallery_id": "g1", "version": "0"})
    yield r
    r.close()


def fill(repo) -> dict[str, int]:
    ids = {}
    with repo.write():
        for i, ref in enumerate(["a", "b", "c"]):
            sid = repo.insert_subject(subject(ref, "2026-02-01" if ref == "b" else None))
            ids[ref] = sid
            repo.insert_template(sid, template(SEALED[2 * i]))
            repo.insert_template(sid, template(SEALED[2 * i + 1], model="m1" if ref != "c" else "m2"))
        repo.bump_version()
    return ids


def test_rows_round_trip(repo):
    ids = fill(repo)
    assert repo.read_meta() == {"gallery_id": "g1", "version": "1"} and repo.version() == 1
    a = repo.find_subject("a")
    assert (a.id, a.subject_ref, a.name, a.consent_expires) == (ids["a"], "a", "Name a", None)
    assert repo.find_subject("zz") is None
    assert [(s.subject_ref, s.n_templates) for s in repo.list_subjects()] == [("a", 2), ("b", 2), ("c", 2)]
    assert [s.subject_ref for s in repo.expired_subjects("2026-03-01")] == ["b"]
    assert repo.expired_subjects("2026-01-15") == []
    assert repo.sealed_templates_of(ids["a"]) == [("m1", SEALED[0]), ("m1", SEALED[1])]  # bytes unchanged
    assert [(m, b) for _, ref, m, b in repo.iter_other_models("m1")] == [("m2", SEALED[5])]
    assert a.name_binding == "b-a" and repo.list_subjects()[1].name_binding == "b-b"
    with repo.write():
        repo.set_name_bindings([(ids["a"], "b-a2")])
        repo.set_meta("names_bound", "1")
        repo.set_meta("scrub_pending", "x")
        repo.set_meta("scrub_pending", None)
    assert repo.find_subject("a").name_binding == "b-a2"
    assert repo.read_meta() == {"gallery_id": "g1", "version": "1", "names_bound": "1"}
    assert repo.count_templates("m1") == 5 and repo.count_templates("m2") == 1
    rows = list(repo.iter_sealed_templates("m1"))
    assert [r[1] for r in rows] == ["a", "a", "b", "b", "c"] and [r[2] for r in rows] == SEALED[:5]
    tids = [r[0] for r in rows]
    info = repo.candidate_rows([tids[0], tids[4], 99999])
    assert set(info) == {tids[0], tids[4]} and info[tids[4]].subject_ref == "c"
    assert info[tids[4]].name_binding == "b-c"


def test_a_failed_write_leaves_nothing(repo):
    fill(repo)
    with pytest.raises(RuntimeError), repo.write():
        repo.insert_subject(subject("d"))
        repo.bump_version()
        raise RuntimeError("crash mid-enrolment")
    assert repo.find_subject("d") is None and repo.version() == 1


def test_erasure_deletes_templates_and_reclaims(repo):
    ids = fill(repo)
    with repo.write():
        removed = repo.delete_subjects([ids["b"]])
        repo.bump_version()
    assert len(removed) == 2 and repo.find_subject("b") is None
    assert repo.candidate_rows(removed) == {} and repo.count_templates("m1") == 3
    assert repo.reclaim(vacuum=True) is True


def test_snapshot_sees_one_state(repo):
    fill(repo)
    with repo.snapshot():
        v = repo.version()
        n = repo.count_templates("m1")
    assert (v, n) == (1, 5)


# --- PostgreSQL only -------------------------------------------------------------------------------------


@pytest.fixture()
def pg_repo(pg_url):
    from faceaudit.gallery.pg_repository import PostgresGalleryRepository

    r = PostgresGalleryRepository.open(pg_url)
    r.migrate()
    with r.write():
        r.write_meta({"gallery_id": "g1", "version": "0"})
    yield r
    r.close()


def test_pg_writers_on_many_connections_are_serialised(pg_url, pg_repo):
    from faceaudit.gallery.pg_repository import PostgresGalleryRepository
    from faceaudit.ledger import Ledger

    errors = []

    def writer(w: int) -> None:
        r = PostgresGalleryRepository.open(pg_url, max_size=2)
        try:
            ledger = Ledger(r.ledger_store())
            for i in range(10):
                with r.write():
                    before = r.version()
                    sid = r.insert_subject(subject(f"w{w}-{i}"))
                    r.insert_template(sid, template(os.urandom(64)))
                    assert r.bump_version() == before + 1
                    ledger.append("enroll", f"writer-{w}", gallery_version=before + 1)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            r.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert pg_repo.version() == 40 and len(pg_repo.list_subjects()) == 40
    ledger = Ledger(pg_repo.ledger_store())
    assert ledger.verify().n_entries == 40
    assert [e.gallery_version for e in ledger.store.entries()] == list(range(1, 41))


def test_pg_notifies_each_new_version(pg_url, pg_repo):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute("LISTEN faceaudit_gallery")
        fill(pg_repo)
        with pg_repo.write():
            pg_repo.insert_subject(subject("quiet"))  # no version bump: no notification
        with pg_repo.write():
            pg_repo.bump_version()
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert got == ["1", "2"]


def test_pg_vacuum_full_removes_erased_ciphertext_from_the_table_file(pg_url, pg_repo):
    import psycopg

    fill(pg_repo)
    target = SEALED[2]  # subject b's first template
    with psycopg.connect(pg_url, autocommit=True) as su:

        def in_table_file() -> bool:
            path = su.execute("SELECT pg_relation_filepath('templates')").fetchone()[0]
            su.execute("CHECKPOINT")  # write the pages out so the file shows what the table holds
            return target in bytes(su.execute("SELECT pg_read_binary_file(%s)", (path,)).fetchone()[0])

        assert in_table_file()
        b = pg_repo.find_subject("b")
        with psycopg.connect(pg_url) as reader:
            # a snapshot taken before the erasure pins the dead tuples while it lasts: reclaim says so
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SELECT count(*) FROM templates").fetchone()
            with pg_repo.write():
                pg_repo.delete_subjects([b.id])
                pg_repo.bump_version()
            assert in_table_file()  # a DELETE alone leaves the tuple's bytes in the page
            assert pg_repo.reclaim() is False
        assert pg_repo.reclaim(vacuum=True) is True
        assert not in_table_file()  # VACUUM FULL wrote a new file without them
