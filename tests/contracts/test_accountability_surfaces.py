"""Each accountability rule on every surface, on both stores: one input gives one stored value or one refusal.

The surfaces: Python (``Gallery`` and the request values), the CLI, the HTTP API of ``faceaudit serve`` (and its
console, for the ledger export). The stores: SQLite and PostgreSQL, through the ``module_store`` fixture.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from conftest import run_cli
from service_fixtures import enrol, image, make_gallery, make_key, start_server
from stores import stored_bytes

from faceaudit.accountable import SubjectRef
from faceaudit.gallery.values import SearchRequest
from faceaudit.operations.review import Decision, Review, SearchStatus, decide

pytestmark = pytest.mark.slow

NAMES = {
    "padded": ("Zoë Quellwasser", "signed form Q-77 in drawer", "0005"),
    "NFD": ("Ørjan Bergfald", "recorded call 88-Ø", "0002"),
}


@pytest.fixture(scope="module")
def server(module_store):
    store = module_store
    make_gallery(store, n_synthetic=20)
    keys = {p: make_key(store, p, "reviewer") for p in ("rev-1", "rev-2", "rev-3", "rev-4", "rev-5")}
    keys["Reviewer-A"] = make_key(store, "Reviewer-A", "reviewer")
    keys["reviewer-a"] = make_key(store, "reviewer-a", "reviewer")
    keys["searcher-1"] = make_key(store, "searcher-1", "searcher")
    keys["Searcher-1"] = make_key(store, "Searcher-1", "reviewer")
    keys["enroller"] = make_key(store, "enroller", "enroller")
    keys["dpo"] = make_key(store, "dpo", "dpo")
    keys["auditor"] = make_key(store, "auditor", "auditor")
    srv = start_server(store, "--workers", "2")
    srv.keys = keys
    yield srv
    srv.stop()


def _identify(server, face: str = "0002", **data) -> dict:
    with server.client("searcher-1") as c:
        r = c.post(
            "/v1/identify", files={"image": image(face)}, data={"purpose": "test", "case": "C-1", **data}
        )
    assert r.status_code == 200, r.text
    return r.json()


def _review(server, who: str, sid: str, decision: str, ref: str | None = None, reason: str = "looked"):
    with server.client(who) as c:
        return c.post(
            f"/v1/searches/{sid}/reviews", json={"decision": decision, "subject_ref": ref, "reason": reason}
        )


# --- free text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["case\u202e1-C", "ca\u200bse", "\x1b[31mC-1", "C-1\nC-2", "C-1\x00"])
def test_purpose_and_case_are_refused_alike_on_every_surface(server, bad):
    with server.client("searcher-1") as c:
        before = c.get("/v1/searches").json()
        r = c.post("/v1/identify", files={"image": image()}, data={"purpose": "test", "case": bad})
        assert r.status_code == 422 and r.json()["error"]["field"] == "case", r.text
        r = c.post("/v1/identify", files={"image": image()}, data={"purpose": bad, "case": "C-1"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "purpose", r.text
        assert c.get("/v1/searches").json() == before  # nothing stored
    with pytest.raises(Exception, match="--case"):
        SearchRequest.build("test", bad, "searcher-1")
    if "\x00" in bad:
        return  # argv cannot carry a NUL byte: the CLI never receives one
    done = run_cli(
        "identify", "x.jpg", "--purpose", "test", "--case", bad, "--operator", "o",
        *server.store.args(),
    )  # fmt: skip
    assert done.returncode == 2 and "--case" in done.stderr


def test_a_review_reason_with_control_or_format_characters_is_refused(server):
    sid = _identify(server)["search_id"]
    for bad in ("ok\x1b[2J", "fine\u202e", "a\nb", "\u200b"):
        r = _review(server, "rev-1", sid, "reject", reason=bad)
        assert r.status_code == 422 and r.json()["error"]["field"] == "reason", r.text
    with server.client("auditor") as c:
        assert c.get(f"/v1/searches/{sid}").json()["reviews"] == []


# --- principals -------------------------------------------------------------------------------------------------


def test_principals_that_differ_only_by_case_are_one_person(server):
    sid = _identify(server)["search_id"]
    top = _identify(server)["candidates"][0]["subject_ref"]
    r = _review(server, "Searcher-1", sid, "confirm", top)  # a reviewer key of the searcher, other spelling
    assert r.status_code == 403 and "self-review" in r.json()["error"]["message"]
    assert _review(server, "Reviewer-A", sid, "confirm", top).status_code == 201
    r = _review(server, "reviewer-a", sid, "confirm", top)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_reviewed"
    with server.client("auditor") as c:
        got = c.get(f"/v1/searches/{sid}").json()
    assert got["status"] == "pending_review" and [x["principal"] for x in got["reviews"]] == ["reviewer-a"]


# --- the review state machine under concurrency -----------------------------------------------------------------


def test_reviewers_racing_on_many_searches_never_change_a_decided_search(server):
    """Five reviewers send at once on 20 searches (two confirm, two reject, one confirms another candidate).
    Every search ends in the status its stored reviews give by the documented rule, holds at most three reviews,
    a decided search never changes status, and the ledger verifies."""
    searches = [_identify(server, face) for face in ("0002", "0005", "0007") * 7]
    plan = []
    for s in searches:
        a, b = s["candidates"][0]["subject_ref"], s["candidates"][1]["subject_ref"]
        plan += [
            (s["search_id"], "rev-1", "confirm", a),
            (s["search_id"], "rev-2", "reject", None),
            (s["search_id"], "rev-3", "confirm", a),
            (s["search_id"], "rev-4", "reject", None),
            (s["search_id"], "rev-5", "confirm", b),
        ]
    import random

    random.Random(7).shuffle(plan)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: (p[0], _review(server, p[1], p[0], p[2], p[3])), plan))
    decided: dict[str, str] = {}
    for sid, r in answers:
        assert r.status_code in (201, 409, 422), r.text
        if r.status_code == 201 and r.json()["status"] in ("confirmed", "rejected"):
            assert sid not in decided, f"search {sid} was decided twice"
            decided[sid] = r.json()["status"]
    with server.client("auditor") as c:
        for s in searches:
            got = c.get(f"/v1/searches/{s['search_id']}").json()
            reviews = [
                Review(x["principal"], Decision(x["decision"]), x["subject_ref"]) for x in got["reviews"]
            ]
            assert 2 <= len(reviews) <= 3
            assert got["status"] == decide(reviews).value
            assert SearchStatus(got["status"]).decided and decided[s["search_id"]] == got["status"]
        verdict = c.get("/v1/ledger/verify").json()
    assert verdict["intact"], verdict


# --- erasure ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["padded", "NFD"])
def test_erasure_through_the_api_with_the_ref_in_any_accepted_form(server, spelling):
    ref = f"erz-{spelling}-Zoë"
    name, consent, face = NAMES[spelling]
    enrol(server, "enroller", ref, face, name=name, consent_basis=consent)
    sid = _identify(server, face)["search_id"]
    assert _review(server, "rev-1", sid, "confirm", ref).status_code == 201
    typed = f"  {ref} " if spelling == "padded" else unicodedata.normalize("NFD", ref)
    with server.client("dpo") as c:
        r = c.delete(f"/v1/subjects/{quote(typed, safe='')}", params={"reason": "asked"})
    assert r.status_code == 200, r.text
    assert r.json()["erased"] == ref
    with server.client("auditor") as c:
        got = c.get(f"/v1/searches/{sid}").json()
    assert ref not in json.dumps(got, ensure_ascii=False) and name not in json.dumps(got, ensure_ascii=False)
    assert any(x.get("erased") for x in got["candidates"]) and got["reviews"][0]["subject_ref"] != ref
    if server.store.pg:
        assert run_cli("gallery", "scrub", "--vacuum", "--db", server.store.db).returncode == 0
    blob = stored_bytes(server.store)
    for secret in (ref, name, consent):
        assert secret.encode() not in blob and json.dumps(secret)[1:-1].encode() not in blob, secret


def test_gallery_erase_in_python_forgets_the_searches_in_its_own_transaction(server):
    """A Python user of ``Gallery.erase`` (no service involved) leaves no ref in the stored searches."""
    ref = "py-erase-Ångel"
    enrol(server, "enroller", ref, "0007", name="Ångel Pyth")
    sid = _identify(server, "0007")["search_id"]
    with server.store.gallery(create=False) as g:
        g.erase(unicodedata.normalize("NFD", f" {ref}"), reason="asked", operator="dpo desk")
    with server.store.raw() as conn:
        rows = conn.execute("SELECT candidates FROM service_searches WHERE search_id = ?", (sid,)).fetchall()
    assert ref not in rows[0][0] and "Pyth" not in rows[0][0]
    assert SubjectRef(f" {ref}") == ref


# --- exports that verify ----------------------------------------------------------------------------------------


def _recompute(entries: list[dict], key: bytes | None = None) -> int:
    """The documented hash, in a few lines: SHA-256 (or HMAC-SHA256) of prev_hash ‖ canonical JSON of the body,
    where the body is every field but the two hashes, and a null ``auth`` is left out."""
    prev, n = "0" * 64, 0
    for e in entries:
        body = {
            k: v
            for k, v in e.items()
            if k not in ("prev_hash", "entry_hash") and not (k == "auth" and v is None)
        }
        msg = (
            prev.encode()
            + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        )
        digest = hmac.new(key, msg, hashlib.sha256).hexdigest() if key else hashlib.sha256(msg).hexdigest()
        assert e["prev_hash"] == prev and e["entry_hash"] == digest, e["seq"]
        prev, n = e["entry_hash"], n + 1
    return n


def test_the_whole_chain_recomputes_from_the_api_and_the_console_export(server):
    entries, since = [], 0
    with server.client("auditor") as c:
        while True:
            page = c.get("/v1/ledger", params={"since": since, "limit": 250}).json()
            entries += page["entries"]
            if page["next_since"] is None:
                break
            since = page["next_since"]
    assert _recompute(entries) == len(entries) > 20
    assert {e["auth"]["auth"] for e in entries if e["auth"]} >= {"local", "api-key"}  # CLI vs authenticated
    with server.client() as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # sign-in CSRF
        r = c.post("/ui/login", data={"key": server.keys["auditor"], "csrf": token}, follow_redirects=False)
        assert r.status_code in (302, 303), r.text
        exported = c.get("/ui/ledger/export").json()
    assert _recompute(exported) == len(exported) >= len(entries)
