"""The HTTP service against a real uvicorn server: routes, roles, review, accountability, limits, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from conftest import run_cli
from service_fixtures import ROLE_KEYS, enrol, image, ledger_entries, make_gallery, make_key, start_server
from stores import stored_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_store):
    """One server for the module, on each backend in turn (SQLite file, PostgreSQL database)."""
    store = module_store
    make_gallery(store, n_synthetic=20)
    data = _audit_data(store.folder)
    keys = {role: make_key(store, f"{role}-person", role) for role in ROLE_KEYS}
    keys["sam"] = make_key(store, "sam", "searcher,reviewer")  # searches, and may try to review his own
    keys["rita"] = make_key(store, "rita", "reviewer")
    keys["rob"] = make_key(store, "rob", "reviewer")
    keys["slow"] = make_key(store, "slow", "searcher", rate_limit="3/min")
    srv = start_server(store, "--max-upload-mb", "1", "--workers", "2", "--audit-data", str(data))
    srv.keys = keys
    yield srv
    srv.stop()


def _audit_data(parent):
    """A server-side data folder: the 8 FairFace fixtures under ``fairface/`` with a manifest whose made-up
    subject ids give the female group mated pairs, a manifest missing its columns, and a symlink that leads
    outside the folder."""
    import csv
    import shutil

    from service_fixtures import FAIRFACE

    data = parent / "data"
    (data / "fairface").mkdir(parents=True)
    for p in FAIRFACE.glob("*.jpg"):
        shutil.copy(p, data / "fairface" / p.name)
    with open(FAIRFACE / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    subjects = {"fairface_0002.jpg": "s1", "fairface_0004.jpg": "s1", "fairface_0005.jpg": "s2",
                "fairface_0008.jpg": "s2", "fairface_0003.jpg": "s2"}  # fmt: skip
    for r in rows:
        r["subject_id"] = subjects.get(r["path"], "")
    with open(data / "fairface" / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (data / "broken.csv").write_text("x,y\n1,2\n")
    shutil.copy(FAIRFACE / "fairface_0002.jpg", parent / "private.jpg")  # a face outside the data folder
    (data / "fairface" / "leak.jpg").symlink_to(parent / "private.jpg")
    (data / "escapes.csv").write_text(
        "path,subject_id,sex\nfairface/fairface_0002.jpg,a,female\n../private.jpg,a,female\n"
        f"{parent / 'private.jpg'},b,male\nfairface/leak.jpg,b,male\n"
    )
    (parent / "secret.csv").write_text("path,subject_id,sex\n")
    (data / "outside.csv").symlink_to(parent / "secret.csv")
    return data


def _entries(server, action: str | None = None) -> list[dict]:
    return ledger_entries(server.store, action)


def _identify(server, who: str, face: str = "0002", **extra) -> dict:
    with server.client(who) as c:
        r = c.post(
            "/v1/identify", files={"image": image(face)}, data={"purpose": "test", "case": "C-1", **extra}
        )
    assert r.status_code == 200, r.text
    return r.json()


def test_health_and_schema(server):
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        schema = c.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/v1/detect",
        "/v1/verify",
        "/v1/subjects",
        "/v1/subjects/{ref}",
        "/v1/identify",
        "/v1/verify-subject",
        "/v1/searches/{search_id}",
        "/v1/searches/{search_id}/reviews",
        "/v1/ledger",
        "/v1/ledger/verify",
        "/v1/keys",
    ):
        assert path in paths, path
    assert "ErrorBody" in schema["components"]["schemas"]


def test_detect_and_verify_match_the_cli(server, tmp_path):
    """SQLite only: detect and verify never read the store, and the CLI runs are slow (~10 s)."""
    if server.store.pg:
        pytest.skip("detect and verify never read the store: the SQLite run covers them")
    from conftest import run_cli

    face = image("0001")
    with server.client("searcher") as c:
        detect = c.post("/v1/detect", files={"image": face})
        verify = c.post("/v1/verify", files={"image_a": image("0002"), "image_b": image("0002")})
    assert detect.status_code == 200 and verify.status_code == 200
    path = tmp_path / face[0]
    path.write_bytes(face[1])
    cli = run_cli("detect", str(path), "--json")
    import json

    assert detect.json() == json.loads(cli.stdout)
    assert verify.json()["match"] is True and verify.json()["similarity"] > 0.99
    pair = tmp_path / "a.jpg"
    pair.write_bytes(image("0002")[1])
    cli = json.loads(run_cli("verify", str(pair), str(pair), "--json").stdout)
    for face in cli.get("images", []):
        face.pop("path", None)  # the CLI names the file; an upload has no server-side path
    assert verify.json() == cli


def _route_table(server):
    """(name, method, path, kwargs, allowed roles, status when allowed)."""
    ref = "syn-019"
    return [
        ("detect", "POST", "/v1/detect", {"files": {"image": image("0003")}}, {"enroller", "searcher"}, 200),
        (
            "verify",
            "POST",
            "/v1/verify",
            {"files": {"image_a": image("0003"), "image_b": image("0005")}},
            {"enroller", "searcher"},
            200,
        ),
        (
            "enrol",
            "POST",
            "/v1/subjects",
            {
                "files": [("images", image("0007"))],
                "data": {
                    "subject_ref": "table-{role}",
                    "name": "T",
                    "consent_basis": "form",
                    "consent_by": "reg",
                },
            },
            {"enroller"},
            201,
        ),
        ("list subjects", "GET", "/v1/subjects", {}, {"dpo"}, 200),
        ("erase", "DELETE", "/v1/subjects/no-such-ref", {"params": {"reason": "test"}}, {"dpo"}, 404),
        ("expire", "POST", "/v1/subjects/expire", {}, {"dpo"}, 200),
        (
            "identify",
            "POST",
            "/v1/identify",
            {"files": {"image": image("0003")}, "data": {"purpose": "p", "case": "c"}},
            {"searcher"},
            200,
        ),
        (
            "verify-subject",
            "POST",
            "/v1/verify-subject",
            {"files": {"image": image("0003")}, "data": {"subject_ref": ref, "purpose": "p", "case": "c"}},
            {"searcher"},
            200,
        ),
        ("searches", "GET", "/v1/searches", {}, {"searcher", "reviewer", "auditor"}, 200),
        ("search", "GET", "/v1/searches/{search_id}", {}, {"searcher", "reviewer", "auditor"}, 200),
        (
            "review",
            "POST",
            "/v1/searches/{search_id}/reviews",
            {"json": {"decision": "reject", "reason": "not the person"}},
            {"reviewer"},
            201,
        ),
        ("ledger", "GET", "/v1/ledger", {"params": {"limit": 5}}, {"auditor"}, 200),
        ("ledger verify", "GET", "/v1/ledger/verify", {}, {"auditor"}, 200),
        ("audits", "GET", "/v1/audits", {}, {"auditor"}, 200),
        ("manifests", "GET", "/v1/audits/manifests", {}, {"auditor"}, 200),
        (
            "audit manifest",
            "POST",
            "/v1/audits/manifest",
            {"json": {"manifest": "../g.db"}},
            {"auditor"},
            422,
        ),
        ("keys", "GET", "/v1/keys", {}, {"admin"}, 200),
        (
            "create key",
            "POST",
            "/v1/keys",
            {"json": {"principal": "new-{role}", "roles": ["auditor"]}},
            {"admin"},
            201,
        ),
        ("revoke key", "DELETE", "/v1/keys/000000000000", {}, {"admin"}, 404),
        ("me", "GET", "/v1/me", {}, set(ROLE_KEYS), 200),
    ]


def test_role_by_route_table(server):
    search_id = _identify(server, "searcher")["search_id"]
    seen = []
    for name, method, path, kwargs, allowed, ok_status in _route_table(server):
        path = path.format(search_id=search_id)
        for role in (*ROLE_KEYS, None):
            kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()}
            for part in ("data", "json"):
                if part in kw:
                    kw[part] = {
                        k: (v.format(role=role) if isinstance(v, str) else v) for k, v in kw[part].items()
                    }
            with server.client(role) as c:
                r = c.request(method, path, **kw)
            expected = 401 if role is None else ok_status if role in allowed else 403
            seen.append((name, role, r.status_code, expected))
            if r.status_code >= 400:
                assert set(r.json()) == {"error"}, r.text
    wrong = [s for s in seen if s[2] != s[3]]
    assert not wrong, wrong
    denied = _entries(server, "access_denied")
    admin_auth = {"auth": "api-key", "key_id": server.keys["admin"].split("_")[1]}
    assert any(
        e["actor"] == "admin-person" and e["auth"] == admin_auth and e["params"]["status"] == 403
        for e in denied
    )
    assert any(
        e["actor"] == "anonymous" and e["auth"] == {"auth": "refused"} and e["params"]["status"] == 401
        for e in denied
    )
    routes = [e["params"]["route"] for e in denied if e["params"]["route"] != "*"]  # "*": a minute's summary
    assert routes and all("{" in r or "/v1/" in r for r in routes)


def test_keys_are_never_stored_or_ledgered(server):
    raw = stored_bytes(server.store)  # the files themselves: live rows, dead tuples and indexes
    assert server.keys["admin"].split("_")[1].encode() in raw  # the key ids are there: the dump is real
    for key in server.keys.values():
        secret = key.split("_", 2)[2]
        assert secret.encode() not in raw


def test_bad_keys_get_401_with_the_envelope(server):
    cases = {
        "none": {},
        "not bearer": {"Authorization": "Basic abc"},
        "malformed": {"Authorization": "Bearer nope"},
        "unknown": {"Authorization": "Bearer fa_0123456789ab_" + "A" * 43},
        "wrong secret": {"Authorization": "Bearer " + server.keys["searcher"][:-4] + "AAAA"},
    }
    for name, headers in cases.items():
        with server.client() as c:
            r = c.get("/v1/me", headers=headers)
        assert r.status_code == 401, name
        assert r.headers["www-authenticate"] == "Bearer"
        assert set(r.json()["error"]) >= {"code", "message"} and "Traceback" not in r.text


def test_two_person_review(server):
    enrol(server, "enroller", "p-0005", "0005", name="Person Five")
    search = _identify(server, "sam", "0005", operator="mallory")
    assert search["status"] == "pending_review"
    top = search["candidates"][0]
    assert top["subject_ref"] == "p-0005" and top["name"] == "Person Five" and top["rank"] == 1
    sid = search["search_id"]
    review = f"/v1/searches/{sid}/reviews"
    confirm = {"decision": "confirm", "subject_ref": "p-0005", "reason": "same person"}
    with server.client("sam") as c:
        r = c.post(review, json=confirm)
    assert r.status_code == 403 and "self-review" in r.json()["error"]["message"]
    with server.client("rita") as c:
        assert c.post(review, json={**confirm, "subject_ref": "syn-999"}).status_code == 422
        r = c.post(review, json=confirm)
        assert r.status_code == 201 and r.json()["status"] == "pending_review"
        assert "second reviewer" in r.json()["note"]
        assert c.post(review, json=confirm).status_code == 409  # one review per person
        assert c.get(f"/v1/searches/{sid}").json()["status"] == "pending_review"
    with server.client("rob") as c:
        r = c.post(review, json=confirm)
        assert r.status_code == 201 and r.json()["status"] == "confirmed"
        got = c.get(f"/v1/searches/{sid}").json()
    assert got["status"] == "confirmed" and got["confirmed_subject"] == "p-0005"
    assert [x["principal"] for x in got["reviews"]] == ["rita", "rob"]
    with server.client("reviewer") as c:
        assert c.post(review, json=confirm).status_code == 409  # already decided
    # accountability: the server names who acted; the client's 'operator' is ignored
    entries = {e["seq"]: e for e in _entries(server)}
    sam_auth = {"auth": "api-key", "key_id": server.keys["sam"].split("_")[1]}
    assert entries[search["ledger_entry"]]["actor"] == "sam"
    assert entries[search["ledger_entry"]]["auth"] == sam_auth
    assert "mallory" not in str(entries[search["ledger_entry"]])
    reviews = [e for e in entries.values() if e["action"] == "review" and e["params"]["search_id"] == sid]
    assert [e["actor"] for e in reviews] == ["rita", "rob"]
    assert all(e["auth"]["auth"] == "api-key" for e in reviews)
    assert reviews[-1]["result"]["status"] == "confirmed" and "p-0005" not in str(reviews)
    self_review = [
        e
        for e in entries.values()
        if e["action"] == "access_denied" and "self-review" in e["params"]["reason"]
    ]
    assert self_review and self_review[-1]["actor"] == "sam" and self_review[-1]["auth"] == sam_auth
    # a rejected search
    sid2 = _identify(server, "sam", "0005")["search_id"]
    for who, status in (("rita", "pending_review"), ("rob", "rejected")):
        with server.client(who) as c:
            r = c.post(
                f"/v1/searches/{sid2}/reviews", json={"decision": "reject", "reason": "different person"}
            )
        assert r.json()["status"] == status
    # a searcher reads only their own searches
    with server.client("searcher") as c:
        assert c.get(f"/v1/searches/{sid2}").status_code == 403


def test_erased_subject_is_never_returned_by_the_next_request(server):
    assert enrol(server, "enroller", "p-0001", "0001", name="Person One", n_images=2)["templates"] == 2
    first = _identify(server, "searcher", "0001")
    assert first["candidates"][0]["subject_ref"] == "p-0001"
    with server.client("dpo") as c:
        listed = {s["subject_ref"]: s for s in c.get("/v1/subjects").json()}
        assert listed["p-0001"]["n_templates"] == 2 and "templates" not in listed["p-0001"]
        r = c.delete("/v1/subjects/p-0001", params={"reason": "subject asked"})
        assert r.status_code == 200 and r.json()["erased"] == "p-0001"
        assert c.delete("/v1/subjects/p-0001", params={"reason": "again"}).status_code == 404
    after = _identify(server, "searcher", "0001")
    assert "p-0001" not in [c["subject_ref"] for c in after["candidates"]]
    with server.client("auditor") as c:  # the old search keeps only a pseudonym
        old = c.get(f"/v1/searches/{first['search_id']}").json()
    assert "p-0001" not in str(old) and "Person One" not in str(old)
    assert old["candidates"][0]["erased"] is True


def test_erasure_forgets_a_ref_that_json_escapes_in_old_searches(server):
    """A ref whose JSON has backslashes (non-ASCII, a backslash) or LIKE wildcards is still found in the old
    searches and replaced by its pseudonym (PostgreSQL's LIKE took the backslashes as escapes)."""
    ref = "Zoë\\_%-7"
    enrol(server, "enroller", ref, "0003", name="Zoë Seven")
    first = _identify(server, "searcher", "0003")
    assert first["candidates"][0]["subject_ref"] == ref
    with server.client("dpo") as c:
        r = c.delete(f"/v1/subjects/{quote(ref, safe='')}", params={"reason": "subject asked"})
    assert r.status_code == 200 and r.json()["erased"] == ref, r.text
    with server.client("auditor") as c:
        old = c.get(f"/v1/searches/{first['search_id']}").json()
    assert old["candidates"][0]["erased"] is True
    assert ref not in json.dumps(old, ensure_ascii=False) and json.dumps(ref) not in json.dumps(old)
    with server.store.raw() as conn:
        stored = conn.scalar(
            "SELECT candidates FROM service_searches WHERE search_id = ?", (first["search_id"],)
        )
    assert json.dumps(ref) not in stored and "Seven" not in stored
    if (
        not server.store.pg
    ):  # the searches' old bytes are scrubbed with the rest (PostgreSQL: VACUUM, its own test)
        assert b"Seven" not in stored_bytes(server.store)  # in the JSON of the searches, Zo\\u00eb Seven


def test_erasure_by_the_cli_forgets_the_subject_in_the_services_searches(server):
    """``faceaudit gallery erase`` on a served gallery: the searches and reviews the service stored keep only the
    pseudonym, as after an erasure through the API (they kept the ref and the name before), and no byte of either
    is left in the files (on PostgreSQL with ``--vacuum``, whose VACUUM FULL now rewrites the service's tables too)."""
    ref, name = "p-cli-0007", "Carla Clifour"
    enrol(server, "enroller", ref, "0007", name=name)  # the role table's subjects share the face: not rank 1
    first = _identify(server, "searcher", "0007")
    assert {c["subject_ref"]: c["name"] for c in first["candidates"]}[ref] == name
    with server.client("rita") as c:
        r = c.post(
            f"/v1/searches/{first['search_id']}/reviews",
            json={"decision": "confirm", "subject_ref": ref, "reason": "same person"},
        )
    assert r.status_code == 201, r.text
    vacuum = ["--vacuum"] if server.store.pg else []  # PostgreSQL: VACUUM FULL rewrites the table files
    done = run_cli(
        "gallery",
        "erase",
        ref,
        "--reason",
        "subject asked",
        "--operator",
        "dpo desk",
        *vacuum,
        *server.store.args(),
    )
    assert done.returncode == 0, done.stderr
    with server.client("auditor") as c:
        old = c.get(f"/v1/searches/{first['search_id']}").json()
    assert [c.get("erased") for c in old["candidates"]].count(True) == 1
    assert ref not in json.dumps(old) and name not in json.dumps(old)
    with server.store.raw() as conn:
        searches = conn.execute("SELECT candidates FROM service_searches").fetchall()
        reviewed = conn.execute("SELECT subject_ref FROM service_reviews").fetchall()
    assert not [row for row in searches if ref in row[0] or name in row[0]]
    assert (ref,) not in reviewed and len(reviewed) > 0
    blob = stored_bytes(server.store)  # the files on disk: SQLite's, or the PostgreSQL database's folder
    assert ref.encode() not in blob and name.encode() not in blob and b"Clifour" not in blob


def test_many_server_threads_do_not_drain_the_gallery_connections(server):
    """Plain routes (the subjects list) and ``run_in_threadpool`` work (expiry, which reads the ledger head) run
    on the web server's thread pool: on PostgreSQL each of its threads that read the gallery kept a pool
    connection for good, and once the pool (8) was drained every gallery call waited 30 s and failed."""
    from concurrent.futures import ThreadPoolExecutor

    def listing(i: int) -> int:
        with server.client("dpo") as c:
            return (c.post("/v1/subjects/expire") if i % 2 else c.get("/v1/subjects")).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(listing, range(48)))
    assert codes == [200] * 48
    assert _identify(server, "searcher")["candidates"]


def test_revocation_takes_effect_on_the_next_request(server):
    with server.client("admin") as c:
        r = c.post("/v1/keys", json={"principal": "temp", "roles": ["searcher", "reviewer"]})
        assert r.status_code == 201
        new = r.json()
        assert c.post("/v1/keys", json={"principal": "x", "roles": ["admin", "searcher"]}).status_code == 400
        assert new["key_id"] in [k["key_id"] for k in c.get("/v1/keys").json()]
        assert "key" not in c.get("/v1/keys").json()[0]
    headers = {"Authorization": f"Bearer {new['key']}"}
    with server.client() as c:
        assert c.get("/v1/me", headers=headers).json()["principal"] == "temp"
    with server.client("admin") as c:
        assert c.delete(f"/v1/keys/{new['key_id']}").status_code == 200
    with server.client() as c:
        r = c.get("/v1/me", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    # revoked from the command line while the server runs
    cli_key = make_key(server.store, "cli-temp", "auditor")
    with server.client() as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {cli_key}"}).status_code == 200
    key_id = cli_key.split("_")[1]
    done = subprocess.run(
        [sys.executable, "-m", "faceaudit", "keys", "revoke", key_id, "--db", server.db],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with server.client() as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {cli_key}"}).status_code == 401
    # an expired key
    exp_key = make_key(server.store, "old", "auditor")
    with server.store.raw() as conn:
        conn.execute(
            "UPDATE service_keys SET expires = '2000-01-01' WHERE key_id = ?", (exp_key.split("_")[1],)
        )
    with server.client() as c:
        r = c.get("/v1/me", headers={"Authorization": f"Bearer {exp_key}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    keyed = [e for e in _entries(server) if e["action"].startswith("key_")]
    admin_auth = {"auth": "api-key", "key_id": server.keys["admin"].split("_")[1]}
    assert any(
        e["action"] == "key_create" and e["actor"] == "admin-person" and e["auth"] == admin_auth
        for e in keyed
    )
    assert any(e["action"] == "key_revoke" and e["auth"]["auth"] == "local" for e in keyed)
    expired = [e for e in _entries(server, "access_denied") if "expired" in e["params"]["reason"]]
    assert expired[-1]["actor"] == "old" and expired[-1]["auth"]["auth"] == "refused"


def test_limits_and_errors(server):
    with server.client("searcher") as c:
        big = c.post("/v1/detect", files={"image": ("big.jpg", b"\xff" * (1024 * 1024 + 10), "image/jpeg")})
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
        r = c.post("/v1/detect", json={"image": "x"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        r = c.post("/v1/detect", files={"image": ("notes.txt", b"hello", "text/plain")})
        assert r.status_code == 415 and r.json()["error"]["field"] == "image"
        r = c.post("/v1/detect", files={"image": ("broken.jpg", image("0001")[1][:300], "image/jpeg")})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["field"] == "image" and err["message"].startswith("image (broken.jpg): ")
        assert "truncated" in err["message"]
        grey = cv2.imencode(".jpg", np.full((200, 200, 3), 128, np.uint8))[1].tobytes()
        r = c.post(
            "/v1/verify", files={"image_a": image("0001"), "image_b": ("wall.jpg", grey, "image/jpeg")}
        )
        assert r.status_code == 422 and r.json()["error"]["message"] == "image_b (wall.jpg): no face found"
        r = c.post(
            "/v1/identify",
            files={"image": ("wall.jpg", grey, "image/jpeg")},
            data={"purpose": "p", "case": "c"},
        )
        assert r.status_code == 422
        r = c.post("/v1/identify", files={"image": image("0001")}, data={"purpose": "p"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "case"
        r = c.get("/v1/nowhere")
        assert r.status_code == 404 and set(r.json()) == {"error"}
    refused = _entries(server, "identify")[-1]
    assert refused["result"]["status"] == "refused" and refused["actor"] == "searcher-person"
    assert refused["auth"]["auth"] == "api-key"
    with server.client("slow") as c:
        codes = [c.get("/v1/me").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/me")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"


def test_ledger_routes_and_mixed_history_verify(server):
    from conftest import run_cli

    with server.client("auditor") as c:
        page = c.get("/v1/ledger", params={"since": 0, "limit": 3}).json()
        assert [e["seq"] for e in page["entries"]] == [1, 2, 3] and page["next_since"] == 3
        nxt = c.get("/v1/ledger", params={"since": page["next_since"], "limit": 2}).json()
        assert [e["seq"] for e in nxt["entries"]] == [4, 5]
        verdict = c.get("/v1/ledger/verify").json()
    assert verdict["intact"] is True and verdict["entries"] > 20
    cli = run_cli("ledger", "verify", "--db", server.db)
    assert cli.returncode == 0 and "chain intact" in cli.stdout
    kinds = {(e["auth"] or {}).get("auth") for e in _entries(server)}
    assert {"api-key", "local"} <= kinds  # a mixed history, and it verifies


def scores_csv(n: int = 40) -> bytes:
    """A small vendor scores file: mated pairs score high, non-mated low, two groups."""
    rows = ["score,mated,sex_a,sex_b"]
    for i in range(n):
        g = "female" if i % 2 else "male"
        rows.append(f"{0.8 + (i % 7) / 100:.3f},1,{g},{g}")
        rows.append(f"{0.1 + (i % 9) / 100:.3f},0,{g},{g}")
    return ("\n".join(rows) + "\n").encode()


def test_audit_of_uploaded_scores_runs_in_the_background(server):
    import time

    with server.client("auditor") as c:
        r = c.post(
            "/v1/audits", files={"scores": ("vendor.csv", scores_csv(), "text/csv")}, data={"group_by": "sex"}
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 600  # the audit worker may wait behind a busy machine
        while time.monotonic() < deadline:
            job = c.get(f"/v1/audits/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert job["state"] == "done", job
        report = c.get(f"/v1/audits/{job_id}/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "female" in report.text and report.headers["cache-control"] == "no-store"
        assert "Data: vendor.csv;" in report.text and "scores.csv" not in report.text  # the name as uploaded
        bad = c.post("/v1/audits", files={"scores": ("bad.csv", b"x,y\n1,2\n", "text/csv")})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            failed = c.get(f"/v1/audits/{bad.json()['job_id']}").json()
            if failed["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert failed["state"] == "failed" and failed["message"].startswith("bad.csv: "), failed
        assert c.get(f"/v1/audits/{bad.json()['job_id']}/report").status_code == 409
        assert c.get("/v1/audits/nope").status_code == 404
    with server.client("dpo") as c:
        assert c.get(f"/v1/audits/{job_id}/report").status_code == 403
    entry = [e for e in _entries(server, "audit") if e["params"].get("job_id") == job_id]
    assert (
        entry and entry[0]["actor"] == "auditor-person" and entry[0]["result"]["groups"] == ["female", "male"]
    )


def _wait(c, job_id: str) -> dict:
    import time

    deadline = time.monotonic() + 600  # the audit worker may wait behind a busy machine
    while time.monotonic() < deadline:
        job = c.get(f"/v1/audits/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    return job


def test_audit_of_a_manifest_in_the_data_folder(server):
    with server.client("auditor") as c:
        names = c.get("/v1/audits/manifests").json()
        assert names == [
            "broken.csv",
            "escapes.csv",
            "fairface/manifest.csv",
        ]  # outside.csv leads out: not listed
        r = c.post("/v1/audits/manifest", json={"manifest": "fairface/manifest.csv", "group_by": "sex"})
        assert r.status_code == 202, r.text
        assert r.json()["source"] == "manifest" and r.json()["filename"] == "fairface/manifest.csv"
        job_id = r.json()["job_id"]
        job = _wait(c, job_id)
        assert job["state"] == "done" and job["progress"] == 100, job
        report = c.get(f"/v1/audits/{job_id}/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "female" in report.text
        for name in ("../g.db", "../secret.csv", "outside.csv", str(server.db), "/etc/passwd", "nope.csv"):
            r = c.post("/v1/audits/manifest", json={"manifest": name})
            assert r.status_code == 422, (name, r.text)
            assert r.json()["error"]["field"] == "manifest", r.json()
        bad = c.post("/v1/audits/manifest", json={"manifest": "broken.csv"})
        assert bad.status_code == 202
        failed = _wait(c, bad.json()["job_id"])
        assert failed["state"] == "failed" and "broken.csv" in failed["message"], failed
        assert str(server.store.folder) not in failed["message"]
        # a manifest in the folder whose rows lead out (../, an absolute path, a symlink) reads none of them
        for row in ("../private.jpg", str(server.store.folder / "private.jpg"), "fairface/leak.jpg"):
            lines = (server.store.folder / "data" / "escapes.csv").read_text().splitlines()
            (server.store.folder / "data" / "escapes.csv").write_text(
                "\n".join([*lines[:2], f"{row},b,male"]) + "\n"
            )
            out = c.post("/v1/audits/manifest", json={"manifest": "escapes.csv"})
            failed = _wait(c, out.json()["job_id"])
            assert failed["state"] == "failed" and "line 3" in failed["message"], (row, failed)
            assert "leads outside the data folder" in failed["message"]
            assert str(server.store.folder) not in failed["message"] and "private" not in failed["message"]
        ok = c.post("/v1/audits/manifest", json={"manifest": "fairface/manifest.csv"})
        assert _wait(c, ok.json()["job_id"])["state"] == "done"  # the worker survived the bad one
    entry = [e for e in _entries(server, "audit") if e["params"].get("job_id") == job_id]
    assert entry and entry[0]["params"]["manifest"] == "fairface/manifest.csv"
    assert len(entry[0]["params"]["manifest_sha256"]) == 64
    assert entry[0]["result"]["groups"] == ["female", "male"]


def test_expire_answers_with_its_own_ledger_entry(server):
    """The entry the expiry wrote, not the ledger's head (which another replica may have moved meanwhile)."""
    with server.client("dpo") as c:
        r = c.post("/v1/subjects/expire")
    assert r.status_code == 200, r.text
    mine = [e for e in _entries(server, "expire") if e["actor"] == "dpo-person"]
    assert mine and r.json()["ledger_entry"] == mine[-1]["seq"]
