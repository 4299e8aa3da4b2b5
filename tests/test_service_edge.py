"""The HTTP edge: refusals of anonymous traffic rate-limited per address and summarised in the ledger, security
headers on every response, the key checked before the body, a CSRF token on the sign-in form, every refused
audit request ledgered, and an access log that never names a subject (in-process app; one real server for the
log)."""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest
from service_fixtures import enrol, in_process_service, ledger_entries, make_gallery, make_key, start_server
from starlette.testclient import TestClient
from stores import sqlite_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """An in-process app over a small SQLite gallery; ``edge.client(address)`` calls it from that address."""
    store = sqlite_store(tmp_path_factory.mktemp("edge"))
    principals = {"ada": "auditor", "sam": "searcher", "old": "searcher"}
    with in_process_service(store, principals, max_upload_bytes=100_000) as (app, service, keys):

        class Edge:
            def __init__(self) -> None:
                self.store, self.keys, self.service, self.app = store, keys, service, app

            def client(self, address: str = "10.0.0.1", who: str | None = None):
                """A client (its ``with`` does not run the app's lifespan, which would close the service)."""
                headers = {"Authorization": f"Bearer {keys[who]}"} if who else {}
                client = TestClient(app, client=(address, 40000), headers=headers, follow_redirects=False)
                return contextlib.nullcontext(client)

        yield Edge()


def test_anonymous_refusals_are_rate_limited_and_summarised(edge):
    before = len(ledger_entries(edge.store))
    bad = [{}, {"Authorization": "Basic x"}, {"Authorization": "Bearer fa_wrong_key"}]
    bad.append({"Authorization": "Bearer fa_0123456789ab_" + "A" * 43})  # well formed, unknown

    async def flood() -> list[int]:
        import httpx

        transport = httpx.ASGITransport(edge.app, client=("10.0.0.5", 40000))
        codes = []
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as c:
            for i in range(5000):
                r = await c.get("/v1/me" if i % 2 else "/v1/searches", headers=bad[i % len(bad)])
                codes.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) >= 1
                    assert r.json()["error"]["code"] == "rate_limited"
        return codes

    codes = asyncio.run(flood())
    limit = edge.service.refusals.count
    assert codes[:limit] == [401] * limit
    assert codes[limit:].count(429) >= 5000 - 2 * limit  # the bucket refills a little while the loop runs
    edge.service.refusals.flush()
    new = ledger_entries(edge.store)[before:]
    assert 2 <= len(new) <= 24, len(new)
    assert {e["action"] for e in new} == {"access_denied"} and {e["actor"] for e in new} == {"anonymous"}
    # every refusal is accounted for: each full entry stands for one, each summary for its count
    summaries = [e["params"] for e in new if e["params"]["route"] == "*"]
    n_full = len(new) - len(summaries)
    assert n_full + sum(p["refused"] + p["rate_limited"] for p in summaries) == 5000
    assert all(p["client"] == "10.0.0.5" for p in summaries)
    assert "GET /v1/me" in summaries[0]["routes"]


def test_refusals_of_a_known_key_stay_one_entry_each(edge):
    with edge.client("10.0.0.6", who="old") as c:
        assert c.get("/v1/me").status_code == 200
    key_id = edge.keys["old"].split("_")[1]
    edge.service.store.revoke_key(key_id, actor=_actor())
    before = len(ledger_entries(edge.store))
    with edge.client("10.0.0.6", who="old") as c:
        assert [c.get("/v1/me").status_code for _ in range(3)] == [401] * 3
    new = ledger_entries(edge.store)[before:]
    assert len(new) == 3 and {e["actor"] for e in new} == {"old"}


def _actor():
    from faceaudit.gallery.values import Actor

    return Actor.local("test-setup")


def test_security_headers_on_every_response(edge):
    with edge.client("10.0.0.7") as c:
        responses = [
            c.get("/healthz"),
            c.get("/ui/login"),
            c.get("/ui/"),
            c.get("/v1/me"),
            c.get("/nowhere"),
            c.get("/docs"),
            c.get("/openapi.json"),
            c.get("/ui/static/console.css"),
            c.post("/v1/subjects", files={"images": ("a.jpg", b"x", "image/jpeg")}),
        ]
    for r in responses:
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, r.url
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"


def test_no_page_has_inline_script_or_style_or_an_external_host(edge):
    with edge.client("10.0.0.8") as c:
        pages = [c.get("/ui/login").text, c.get("/docs").text]
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), html
        assert "<style" not in html and " style=" not in html
        assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", html), html


def test_the_key_is_checked_before_the_body_is_read(edge):
    big = {"image": ("big.jpg", b"\xff" * 2_000_000, "image/jpeg")}
    with edge.client("10.0.0.9") as c:
        r = c.post("/v1/detect", files=big)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    with edge.client("10.0.0.9", who="sam") as c:
        assert c.post("/v1/detect", files=big).status_code == 413


def test_sign_in_form_carries_a_csrf_token(edge):
    with edge.client("10.0.0.10") as c:
        # a cross-site form: no token, no cookie
        r = c.post("/ui/login", data={"key": edge.keys["ada"]})
        assert r.status_code == 403 and "another site" in r.text
        page = c.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/ui/login", data={"key": edge.keys["ada"], "csrf": "forged"})
        assert r.status_code == 403
        page = c.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/ui/login", data={"key": edge.keys["ada"], "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/ui/"


def test_every_refused_audit_request_is_ledgered(edge):
    before = len(ledger_entries(edge.store))
    with edge.client("10.0.0.11", who="ada") as c:
        assert c.post("/v1/audits/manifest", json={"manifest": "x.csv"}).status_code == 409  # no data folder
        assert c.post("/v1/audits", files={"scores": ("s.csv", b"", "text/csv")}).status_code == 422
        assert c.post("/v1/audits", data={"group_by": "sex"}).status_code in (415, 422)  # no file
        assert (
            c.post("/v1/audits", files={"scores": ("s.csv", b"x" * 200_000, "text/csv")}).status_code == 413
        )
    new = ledger_entries(edge.store)[before:]
    assert [e["action"] for e in new] == ["audit"] * 4
    assert {e["result"]["status"] for e in new} == {"refused"} and {e["actor"] for e in new} == {"ada"}


def test_access_log_names_route_templates_never_a_subject(tmp_path):
    store = sqlite_store(tmp_path)
    make_gallery(store, n_synthetic=1)
    server = start_server(store, "--log-level", "info")
    try:
        server.keys = {"erin": make_key(store, "erin", "enroller"), "dora": make_key(store, "dora", "dpo")}
        enrol(server, "erin", "erz-77", "0002", name="Erika Zander")
        with server.client("dora") as c:
            r = c.delete("/v1/subjects/erz-77", params={"reason": "asked-to-forget"})
            assert r.status_code == 200, r.text
            assert c.get("/v1/subjects/erz-77/nothing-here?x=erz-77").status_code == 404
    finally:
        server.stop()
    log = server.log.read_text()
    assert '"DELETE /v1/subjects/{ref}" 200' in log and '"POST /v1/subjects" 201' in log
    assert re.search(r"console +http://127\.0\.0\.1:\d+/ui/", log) and "/docs" in log  # addresses at start
    for secret in ("erz-77", "Erika", "Zander", "asked-to-forget", "?"):
        assert secret not in log, secret


def test_an_unexpected_error_is_the_envelope_with_the_headers_and_no_path(edge, caplog):
    def boom(ref: str) -> dict:
        raise RuntimeError(f"broken while handling {ref}")

    edge.app.add_api_route("/v1/boom/{ref}", boom)
    try:
        c = TestClient(edge.app, raise_server_exceptions=False)
        r = c.get("/v1/boom/erz-99")
    finally:
        edge.app.router.routes[:] = [
            r for r in edge.app.router.routes if getattr(r, "path", "") != "/v1/boom/{ref}"
        ]
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "GET /v1/boom/{ref}" in caplog.text and "erz-99" not in caplog.messages[0]
