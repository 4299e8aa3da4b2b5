"""The web console in a real browser (Debian's chromium + chromium-driver, driven by selenium) against a real
server: sign-in per role, two-person review (confirmed and rejected), self-review refusal, erasure, ledger
verification, key creation, role boundaries and CSRF."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from service_fixtures import enrol, image, ledger_entries, make_gallery, make_key, start_server
from stores import sqlite_store

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover
    webdriver = None

if webdriver is None or not CHROMIUM or not DRIVER:
    _WHY = (
        "no browser: the console tests need selenium and Debian's chromium + chromium-driver "
        "(.ci/run installs them with apt-get)"
    )
    if os.environ.get("FACEAUDIT_REQUIRE_BROWSER") == "1":  # CI must run them (set by .ci/run)
        raise RuntimeError(_WHY)
    pytest.skip(_WHY, allow_module_level=True)


def sqlite_only(server) -> None:
    """The browser is slow: on PostgreSQL the module runs only the tests that exercise the store (sign-in, search
    and two reviews, ledger verification, key creation); the others are about the pages, the same on both."""
    if server.store.pg:
        pytest.skip("about the console's pages, not the store: run on SQLite only (the browser is slow)")


@pytest.fixture(scope="module")
def server(module_store):
    """One server for the module, on each backend in turn (SQLite file, PostgreSQL database)."""
    store = module_store
    make_gallery(store, n_synthetic=5)
    keys = {
        "sam": make_key(store, "sam", "searcher,reviewer"),
        "rita": make_key(store, "rita", "reviewer"),
        "rob": make_key(store, "rob", "reviewer"),
        "tess": make_key(store, "tess", "reviewer"),
        "ada": make_key(store, "ada", "auditor"),
        "dora": make_key(store, "dora", "dpo"),
        "root": make_key(store, "root", "admin"),
        "erin": make_key(store, "erin", "enroller"),
    }
    srv = start_server(store, "--workers", "2")
    srv.keys = keys
    for face in ("0005", "0001"):
        enrol(srv, "erin", f"p-{face}", face)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(DRIVER), options=opts)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def go(browser, element) -> None:
    """Click ``element`` and wait until the next page has replaced this one (the machine may be slow)."""
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 60).until(lambda _: _replaced(old))


def _replaced(old) -> bool:
    """Whether the page that held ``old`` is gone (chromium may answer mid-navigation with an error, too)."""
    from selenium.common.exceptions import WebDriverException

    try:
        old.is_enabled()
    except WebDriverException:  # stale, or "node does not belong to the document": the old page is gone
        return True
    return False


def sign_in(browser, server, who: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{server.url}/ui/login")
    assert browser.title == "Sign in · faceaudit"
    browser.find_element(By.ID, "key").send_keys(server.keys[who])
    go(browser, browser.find_element(By.ID, "signin"))
    assert f"Signed in as {who}" in browser.find_element(By.ID, "who").text


def identify(server, face: str = "0005") -> str:
    with server.client("sam") as c:
        r = c.post(
            "/v1/identify", files={"image": image(face)}, data={"purpose": "console test", "case": "UI-1"}
        )
    assert r.status_code == 200, r.text
    return r.json()["search_id"]


def review(browser, server, who: str, search_id: str, decision: str, subject: str | None = None) -> str:
    sign_in(browser, server, who)
    go(browser, browser.find_element(By.LINK_TEXT, "Review queue"))
    go(browser, browser.find_element(By.LINK_TEXT, search_id[:8]))
    Select(browser.find_element(By.ID, "decision")).select_by_value(decision)
    if subject:
        Select(browser.find_element(By.ID, "subject_ref")).select_by_value(subject)
    browser.find_element(By.ID, "reason").send_keys("compared the faces")
    go(browser, browser.find_element(By.ID, "submit-review"))
    return browser.find_element(By.ID, "status").text


def test_sign_in_as_each_role_and_role_boundaries(browser, server):
    pages = {
        "sam": ["Search", "Compare", "Review queue"],
        "ada": ["Ledger", "Audits", "Monitoring"],
        "dora": ["Subjects"],
        "root": ["Keys"],
        "erin": ["Enrol", "Compare"],
    }
    for who, links in pages.items():
        sign_in(browser, server, who)
        nav = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
        assert nav == ["Home", *links], (who, nav)
    sign_in(browser, server, "rita")
    for path in ("/ui/subjects", "/ui/keys", "/ui/ledger"):
        browser.get(f"{server.url}{path}")
        assert browser.title == "Not allowed · faceaudit", path
    go(browser, browser.find_element(By.ID, "signout"))
    assert browser.title == "Sign in · faceaudit"
    browser.get(f"{server.url}/ui/")
    assert browser.title == "Sign in · faceaudit"  # the session ended on the server


def test_identification_two_reviews_confirmed_and_rejected(browser, server):
    sid = identify(server)
    assert review(browser, server, "rita", sid, "confirm", "p-0005") == "pending_review"
    assert browser.find_element(By.ID, "needed").text.startswith("1 of 2 reviews")
    assert review(browser, server, "rob", sid, "confirm", "p-0005") == "confirmed"
    assert [li.text.split(":")[0] for li in browser.find_elements(By.CSS_SELECTOR, "#reviews li")] == [
        "rita",
        "rob",
    ]
    sid2 = identify(server)
    assert review(browser, server, "rita", sid2, "reject") == "pending_review"
    assert review(browser, server, "rob", sid2, "reject") == "rejected"


def test_searcher_cannot_review_own_search(browser, server):
    sqlite_only(server)
    sid = identify(server)
    sign_in(browser, server, "sam")
    browser.get(f"{server.url}/ui/searches/{sid}")
    assert not browser.find_elements(By.ID, "review-form")
    old = browser.find_element(By.TAG_NAME, "html")
    browser.execute_script(
        """const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['decision', 'confirm'],
                              ['subject_ref', 'p-0005'], ['reason', 'mine']]) {
          const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit();""",
        f"/ui/searches/{sid}/review",
    )
    WebDriverWait(browser, 60).until(lambda _: _replaced(old))
    assert browser.title == "Not allowed · faceaudit"
    assert "no self-review" in browser.find_element(By.ID, "message").text


def test_form_without_csrf_token_is_refused_and_erasure_works(browser, server):
    sqlite_only(server)
    sign_in(browser, server, "dora")
    browser.get(f"{server.url}/ui/subjects/p-0001/erase")
    browser.find_element(By.ID, "reason").send_keys("subject asked")
    browser.find_element(By.ID, "confirm").click()
    browser.execute_script("document.querySelector('#erase-form input[name=csrf]').remove()")
    go(browser, browser.find_element(By.ID, "do-erase"))
    assert (
        browser.title == "Not allowed · faceaudit" and "CSRF" in browser.find_element(By.ID, "message").text
    )
    browser.get(f"{server.url}/ui/subjects")
    assert "p-0001" in browser.find_element(By.ID, "subjects").text  # nothing happened
    go(browser, browser.find_element(By.ID, "erase-p-0001"))
    browser.find_element(By.ID, "reason").send_keys("subject asked")
    browser.find_element(By.ID, "confirm").click()
    go(browser, browser.find_element(By.ID, "do-erase"))
    assert "Erased p-0001" in browser.find_element(By.ID, "message").text
    assert "p-0001" not in browser.find_element(By.ID, "subjects").text
    with server.client("sam") as c:
        r = c.post(
            "/v1/identify", files={"image": image("0001")}, data={"purpose": "after erasure", "case": "UI-2"}
        )
    assert "p-0001" not in [c["subject_ref"] for c in r.json()["candidates"]]


def test_auditor_verifies_the_ledger_and_admin_creates_a_key(browser, server):
    sign_in(browser, server, "ada")
    go(browser, browser.find_element(By.LINK_TEXT, "Ledger"))
    go(browser, browser.find_element(By.ID, "verify"))
    assert re.fullmatch(r"\d+ entries, chain intact", browser.find_element(By.ID, "verdict").text)
    browser.find_element(By.ID, "f-action").send_keys("enroll")
    go(browser, browser.find_element(By.CSS_SELECTOR, "#filters button"))
    actions = {
        row.find_elements(By.TAG_NAME, "td")[4].text
        for row in browser.find_elements(By.CSS_SELECTOR, "#ledger tbody tr")
    }
    assert actions == {"enroll"}  # the fixture enrolled two subjects through the API
    sign_in(browser, server, "root")
    go(browser, browser.find_element(By.LINK_TEXT, "Keys"))
    browser.find_element(By.ID, "principal").send_keys("newbie")
    browser.find_element(By.ID, "role-auditor").click()
    go(browser, browser.find_element(By.ID, "create"))
    key = browser.find_element(By.ID, "new-key").text
    assert key.startswith("fa_")
    with server.client() as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).json()["principal"] == "newbie"
    go(browser, browser.find_element(By.ID, f"revoke-{key.split('_')[1]}"))
    assert "Revoked" in browser.find_element(By.ID, "message").text
    with server.client() as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_auditor_uploads_scores_and_opens_the_report(browser, server, tmp_path):
    sqlite_only(server)
    from test_service_api import scores_csv

    csv_path = tmp_path / "vendor-scores.csv"
    csv_path.write_bytes(scores_csv())
    sign_in(browser, server, "ada")
    go(browser, browser.find_element(By.LINK_TEXT, "Audits"))
    browser.find_element(By.ID, "scores").send_keys(str(csv_path))
    browser.find_element(By.ID, "group_by").send_keys("sex")
    go(browser, browser.find_element(By.ID, "run-audit"))
    assert browser.title.startswith("Audit ")
    link = WebDriverWait(browser, 600).until(lambda b: b.find_elements(By.ID, "report-link"))
    assert browser.find_element(By.ID, "state").text == "done"
    assert browser.find_element(By.ID, "progress").get_attribute("value") == "100"
    go(browser, link[0])
    assert "female" in browser.page_source and "male" in browser.page_source
    browser.get(f"{server.url}/ui/audits")  # a reload keeps the job
    assert "vendor-scores.csv" in browser.find_element(By.ID, "audits").text
    assert not browser.find_elements(By.ID, "manifest-form")  # no --audit-data: no manifest to pick
    with server.client("ada") as c:
        r = c.post("/v1/audits/manifest", json={"manifest": "m.csv"})
    assert r.status_code == 409 and "--audit-data" in r.json()["error"]["message"]


def test_auditor_audits_a_manifest_from_the_data_folder(browser, tmp_path):
    """SQLite only: about the audits pages and the data folder (the API suite audits a manifest on both)."""
    from test_service_api import _audit_data

    store = sqlite_store(tmp_path / "store")
    make_gallery(store, n_synthetic=2)
    data = _audit_data(tmp_path)
    keys = {"ada": make_key(store, "ada", "auditor")}
    srv = start_server(store, "--workers", "1", "--audit-data", str(data))
    srv.keys = keys
    try:
        sign_in(browser, srv, "ada")
        go(browser, browser.find_element(By.LINK_TEXT, "Audits"))
        Select(browser.find_element(By.ID, "manifest")).select_by_visible_text("fairface/manifest.csv")
        browser.find_element(By.ID, "manifest-group-by").send_keys("sex")
        go(browser, browser.find_element(By.ID, "run-manifest-audit"))
        assert browser.title.startswith("Audit ")
        link = WebDriverWait(browser, 600).until(lambda b: b.find_elements(By.ID, "report-link"))
        assert browser.find_element(By.ID, "progress").get_attribute("value") == "100"
        go(browser, link[0])
        assert "female" in browser.page_source
        browser.get(f"{srv.url}/ui/audits")  # a reload keeps the job
        assert "fairface/manifest.csv" in browser.find_element(By.ID, "audits").text
    finally:
        srv.stop()


def test_reviewer_sees_probe_and_enrolment_images_each_view_ledgered(browser, server):
    """On both backends: the sealed probe is a column of the service store (BLOB / BYTEA) and each view a
    ledger entry."""
    import httpx

    enrol(server, "erin", "p-0003", "0003", store_images="true")
    sid = identify(server, "0003")
    sign_in(browser, server, "rita")
    browser.get(f"{server.url}/ui/searches/{sid}")
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    probe = browser.find_element(By.ID, "probe")
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(loaded, probe))
    first = browser.find_elements(By.CSS_SELECTOR, "img.candidate")[0]
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(loaded, first))
    cookie = {c["name"]: c["value"] for c in browser.get_cookies()}
    r = httpx.get(f"{server.url}/ui/searches/{sid}/probe", cookies=cookie)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store" and r.content == image("0003")[1]
    views = [
        (e["action"], e["actor"])
        for e in ledger_entries(server.store)
        if e["action"] in ("view_probe", "view_images")
    ]
    assert ("view_probe", "rita") in views and ("view_images", "rita") in views
    sign_in(browser, server, "ada")  # an auditor may read the search, but not see faces
    browser.get(f"{server.url}/ui/searches/{sid}/probe")
    assert browser.title == "Not allowed · faceaudit"
    browser.get(f"{server.url}/ui/searches/{sid}")
    assert not browser.find_elements(By.ID, "probe")
    for who in ("rita", "rob"):
        assert review(browser, server, who, sid, "confirm", "p-0003") in ("pending_review", "confirmed")
    assert browser.find_element(By.ID, "status").text == "confirmed"
    r = httpx.get(
        f"{server.url}/ui/searches/{sid}/probe",
        cookies={c["name"]: c["value"] for c in browser.get_cookies()},
    )
    assert r.status_code == 404  # the probe is deleted once the search is decided


def test_pages_fit_a_phone_and_sign_in_works_from_the_keyboard(browser, server):
    sqlite_only(server)
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(390, 844)
    try:
        browser.delete_all_cookies()
        browser.get(f"{server.url}/ui/login")
        field = browser.switch_to.active_element
        field.send_keys(Keys.TAB)  # from the page to the first control
        browser.find_element(By.ID, "key").send_keys(server.keys["ada"], Keys.ENTER)
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "who"))
        for path in ("/ui/ledger", "/ui/audits"):
            browser.get(f"{server.url}{path}")
            assert (
                browser.find_element(By.TAG_NAME, "title")
                .get_attribute("textContent")
                .endswith("· faceaudit")
            )
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, (path, overflow)  # wide tables become cards
        for who, paths in (("dora", ("/ui/subjects", "/ui/subjects/p-0005/erase")), ("root", ("/ui/keys",))):
            sign_in(browser, server, who)
            for path in paths:
                browser.get(f"{server.url}{path}")
                overflow = browser.execute_script(
                    "return document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 1, (path, overflow)
    finally:
        browser.set_window_size(1280, 800)


def test_walk_through_every_role_at_desktop_and_phone_width(browser, server):
    """Enrol with consent and two photos, search, confirm twice, split and resolve, read the result, compare."""
    sqlite_only(server)
    from console_walk import walk

    try:
        walk(browser, server.url, server.keys)
    finally:
        browser.set_window_size(1280, 800)
