"""Console pages in-process (no browser): the HTML 404, the key-format messages, the reason on the sign-in page
after a session ends, revoking one's own key and the last admin key, the ledger newest first with readable
results and filter errors, a failed audit shown as failed, and a searcher's own searches."""

from __future__ import annotations

import re
import time

import pytest
from service_fixtures import image, in_process_service
from starlette.testclient import TestClient
from stores import sqlite_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    principals = {"root": "admin", "ada": "auditor", "sam": "searcher", "sue": "searcher"}
    store = sqlite_store(tmp_path_factory.mktemp("pages"))
    with in_process_service(store, principals) as (application, _, keys):
        application.state.test_keys = keys
        yield application


def client(app, who: str | None = None) -> TestClient:
    c = TestClient(app, follow_redirects=False, client=(f"10.1.0.{len(who or '')}", 5000))
    if who:
        page = c.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/ui/login", data={"key": app.state.test_keys[who], "csrf": token})
        assert r.status_code == 303, r.text
    return c


def csrf(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_unknown_console_page_is_an_html_404_and_unknown_api_route_json(app):
    c = client(app, "ada")
    r = c.get("/ui/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "There is no such page." in r.text
    r = c.get("/v1/no-such-route")
    assert r.status_code == 404 and set(r.json()) == {"error"}


def test_key_format_messages_say_what_is_wrong(app):
    c = client(app)
    token = csrf(c.get("/ui/login"))
    r = c.post("/ui/login", data={"key": "fa_wrong_key", "csrf": token})
    assert r.status_code == 401 and "its id (after &#39;fa_&#39;) must be 12 hex digits" in r.text
    r = TestClient(app).get("/v1/me", headers={"Authorization": "Bearer hello"})
    assert "a key looks like fa_<12 hex digits>_<43 characters>" in r.json()["error"]["message"]


def test_revoking_ones_own_key_asks_first_and_the_last_admin_key_stays(app):
    c = client(app, "root")
    keys = c.get("/ui/keys")
    own = app.state.test_keys["root"].split("_")[1]
    r = c.post(f"/ui/keys/{own}/revoke", data={"csrf": csrf(keys)})
    assert (
        r.status_code == 200 and "Revoke your own key?" in r.text and 'name="confirm" value="yes"' in r.text
    )
    r = c.post(f"/ui/keys/{own}/revoke", data={"csrf": csrf(keys), "confirm": "yes"})
    assert r.status_code == 409 and "last live admin key" in r.text
    assert c.get("/ui/keys").status_code == 200  # still signed in: nothing was revoked
    # with a second admin, one's own key may go, after the confirmation; the session then ends with a reason
    r = c.post("/ui/keys", data={"csrf": csrf(keys), "principal": "root2", "roles": "admin"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/keys"
    assert "shown this once" in c.get("/ui/keys").text
    assert "shown this once" not in c.get("/ui/keys").text  # a reload does not show the key again
    r = c.post(f"/ui/keys/{own}/revoke", data={"csrf": csrf(keys), "confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?why=revoked"
    r = c.get("/ui/")
    assert r.headers["location"] == "/ui/login?why=revoked"
    assert "its key was revoked" in c.get("/ui/login?why=revoked").text


def test_ledger_newest_first_readable_and_a_bad_date_filter_is_said(app):
    c = client(app, "ada")
    page = c.get("/ui/ledger")
    seqs = [int(s) for s in re.findall(r'<td data-label="Seq">(\d+)</td>', page.text)]
    assert len(seqs) > 3 and seqs == sorted(seqs, reverse=True)
    assert "raw JSON" in page.text and "<details>" in page.text
    r = c.get("/ui/ledger", params={"date": "yesterday"})
    assert r.status_code == 422 and "date filter &#39;yesterday&#39;" in r.text


def test_failed_audit_is_shown_as_failed(app):
    c = client(app, "ada")
    page = c.get("/ui/audits")
    r = c.post(
        "/ui/audits",
        data={"csrf": csrf(page)},
        files={"scores": ("s.csv", b"not,a\nscores,file\n", "text/csv")},
    )
    assert r.status_code == 303
    for _ in range(100):
        job = c.get(r.headers["location"])
        if 'id="state">failed' in job.text:
            break
        time.sleep(0.1)
    assert 'class="badge failed" id="state">failed' in job.text and "<progress" not in job.text


def test_a_searcher_reads_their_own_searches(app):
    api = TestClient(app, headers={"Authorization": f"Bearer {app.state.test_keys['sam']}"})
    r = api.post("/v1/identify", files={"image": image("0002")}, data={"purpose": "p", "case": "c"})
    assert r.status_code == 200, r.text
    sid = r.json()["search_id"]
    assert [s["search_id"] for s in api.get("/v1/searches").json()] == [sid]
    other = TestClient(app, headers={"Authorization": f"Bearer {app.state.test_keys['sue']}"})
    assert other.get("/v1/searches").json() == []
    c = client(app, "sam")
    assert sid[:8] in c.get("/ui/search").text
    page = c.get(f"/ui/searches/{sid}")
    assert "candidates for human review, not an identification" in page.text
    assert client(app, "sue").get(f"/ui/searches/{sid}").status_code == 403


def test_serve_help_names_the_console_and_compare_help_reads_as_text():
    import subprocess
    import sys

    serve = subprocess.run(
        [sys.executable, "-m", "faceaudit", "serve", "--help"], capture_output=True, text=True
    )
    assert "/ui/" in serve.stdout and "--anonymous-rate-limit" in serve.stdout
    compare = subprocess.run(
        [sys.executable, "-m", "faceaudit", "compare", "--help"], capture_output=True, text=True
    )
    assert compare.returncode == 0 and "``" not in compare.stdout
