"""The console surface of the accountability rules, on both stores: its forms reach the same values and refusals
as the API (the browser suite, tests/test_service_console.py, covers the pages themselves)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import httpx
import pytest
from service_fixtures import enrol, image, make_gallery, make_key, start_server
from stores import stored_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_store):
    store = module_store
    make_gallery(store, n_synthetic=10)
    keys = {p: make_key(store, p, role) for p, role in (
        ("searcher-c", "searcher"), ("rev-c1", "reviewer"), ("rev-c2", "reviewer"), ("enroller", "enroller"),
        ("dpo", "dpo"), ("auditor", "auditor"), ("admin", "admin"),
    )}  # fmt: skip
    srv = start_server(store, "--workers", "2")
    srv.keys = keys
    yield srv
    srv.stop()


def _csrf(html: str) -> str | None:
    found = re.search(r'name="csrf"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf"', html
    )
    return found.group(1) if found else None


@contextmanager
def _console(server, who: str) -> Iterator[httpx.Client]:
    """A signed-in console session (the sign-in form's own token sent when it has one)."""
    with httpx.Client(base_url=server.url, timeout=60) as c:
        token = _csrf(c.get("/ui/login").text)
        r = c.post("/ui/login", data={"key": server.keys[who], **({"csrf": token} if token else {})})
        assert r.status_code in (200, 302, 303) and c.cookies, r.text
        yield c


def _post(c: httpx.Client, page: str, action: str, data: dict) -> httpx.Response:
    token = _csrf(c.get(page).text)
    assert token, f"no form token on {page}"
    return c.post(action, data={**data, "csrf": token}, follow_redirects=True)


def _search(server, face: str = "0002") -> dict:
    with server.client("searcher-c") as c:
        r = c.post("/v1/identify", files={"image": image(face)}, data={"purpose": "test", "case": "C-9"})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_review_reason_refused_in_the_console_as_in_the_api(server):
    s = _search(server)
    top = s["candidates"][0]["subject_ref"]
    page = f"/ui/searches/{s['search_id']}"
    with _console(server, "rev-c1") as c:
        for bad in ("ok\x1b[2J", "fine\u202eenif", "\u200b"):
            r = _post(c, page, f"{page}/review", {"decision": "confirm", "subject_ref": top, "reason": bad})
            assert r.status_code == 422 and "reason" in r.text, r.status_code
        r = _post(
            c, page, f"{page}/review", {"decision": "confirm", "subject_ref": top, "reason": " same person "}
        )
        assert r.status_code == 200, r.text
    with server.client("auditor") as api:
        got = api.get(f"/v1/searches/{s['search_id']}").json()
    assert [(x["principal"], x["reason"]) for x in got["reviews"]] == [("rev-c1", "same person")]


def test_erasure_from_the_console_with_the_ref_in_another_normal_form(server):
    ref, name, consent = "con-Zoë-1", "Zoë Consolewitz", "paper form CW-5"
    enrol(server, "enroller", ref, "0005", name=name, consent_basis=consent)
    s = _search(server, "0005")
    nfd = unicodedata.normalize("NFD", ref)
    with _console(server, "dpo") as c:
        r = _post(
            c,
            "/ui/subjects",
            f"/ui/subjects/{quote(nfd, safe='')}/erase",
            {"reason": "asked", "confirm": "yes"},
        )
    assert r.status_code == 200, r.text
    with server.client("auditor") as api:
        got = api.get(f"/v1/searches/{s['search_id']}").json()
    assert ref not in json.dumps(got, ensure_ascii=False) and name not in json.dumps(got, ensure_ascii=False)
    with server.client("dpo") as api:
        assert ref not in [x["subject_ref"] for x in api.get("/v1/subjects").json()]
    if server.store.pg:
        from conftest import run_cli

        assert run_cli("gallery", "scrub", "--vacuum", "--db", server.store.db).returncode == 0
    blob = stored_bytes(server.store)
    for secret in (ref, name, consent):
        assert secret.encode() not in blob and json.dumps(secret)[1:-1].encode() not in blob, secret


def test_a_ledger_filter_with_hidden_characters_is_refused_and_not_written(server):
    with _console(server, "auditor") as c:
        r = c.get("/ui/ledger", params={"purpose": "te\u202est"})
        assert r.status_code == 422 and "filter purpose" in r.text
        assert c.get("/ui/ledger", params={"purpose": " test "}).status_code == 200
    with server.client("auditor") as api:
        entries = api.get("/v1/ledger", params={"limit": 1000}).json()["entries"]
    filters = [
        e["params"].get("filters") for e in entries if e["action"] == "export" and e["params"].get("via")
    ]
    assert {"operator": "", "action": "", "purpose": "test", "case": "", "date": ""} in filters
    assert not [f for f in filters if "\u202e" in json.dumps(f, ensure_ascii=False)]


def test_a_key_made_in_the_console_names_its_principal_canonically(server):
    with _console(server, "admin") as c:
        r = _post(c, "/ui/keys", "/ui/keys", {"principal": "Reviewer-B", "roles": "reviewer"})
        assert r.status_code == 200, r.text
    with server.client("admin") as api:
        principals = [k["principal"] for k in api.get("/v1/keys").json()]
    assert "reviewer-b" in principals and "Reviewer-B" not in principals


def test_declared_attributes_from_the_console_enrol_form_are_sealed_with_their_consent(server):
    """The enrol page's declared-attributes fields reach the same value type as the API and the CLI: stored
    sealed (never as text), readable only by the monitor; without their own consent they are refused."""
    ref = "con-declared-1"
    form = {"subject_ref": ref, "name": "Dee Clared", "consent_basis": "form", "consent_by": "desk"}
    with _console(server, "enroller") as c:
        token = _csrf(c.get("/ui/enrol").text)
        r = c.post(
            "/ui/enrol",
            data={**form, "declared": "sex=female", "csrf": token},
            files=[("photos", image("0007"))],
            follow_redirects=True,
        )
        assert r.status_code == 422 and "consent" in r.text  # declared attributes need their own consent
        token = _csrf(c.get("/ui/enrol").text)
        r = c.post(
            "/ui/enrol",
            data={
                **form,
                "declared": "sex=female",
                "declared_consent_basis": "bias monitoring form",
                "declared_consent_by": "desk",
                "csrf": token,
            },  # fmt: skip
            files=[("photos", image("0007"))],
            follow_redirects=True,
        )
        assert r.status_code == 200, r.text
    with server.store.gallery(create=False) as g:
        assert g.declared_groups("sex").get(ref) == "female"
    assert b"bias monitoring form" not in stored_bytes(server.store)
