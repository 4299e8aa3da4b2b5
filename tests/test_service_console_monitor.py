"""The auditor's monitoring page in a real browser (chromium through selenium; the helpers of
tests/test_service_console.py): figures per declared group with small cells suppressed, no script, no subject,
and only for auditors."""

from __future__ import annotations

import pytest
from service_fixtures import enrol, image, make_gallery, make_key, start_server
from test_service_console import By, browser, go, sign_in  # noqa: F401  (browser is a fixture)

pytestmark = pytest.mark.slow
SECRET = "declared-Wqpz"


@pytest.fixture(scope="module")
def server(module_store):
    if module_store.pg:
        pytest.skip("about the console's page, not the store (tests/contracts/test_monitoring.py runs both)")
    make_gallery(module_store, n_synthetic=5)
    keys = {p: make_key(module_store, p, r) for p, r in (("ada", "auditor"), ("erin", "enroller"),
            ("sam", "searcher"), ("rita", "reviewer"), ("rob", "reviewer"))}  # fmt: skip
    srv = start_server(module_store)
    srv.keys = keys
    enrol(srv, "erin", "m-0002", "0002", declared=["sex=F", f"group={SECRET}"],
          declared_consent_basis="monitoring consent", declared_consent_by="desk")  # fmt: skip
    with srv.client("sam") as c:
        r = c.post("/v1/identify", files={"image": image("0002")}, data={"purpose": "p", "case": "c"})
    sid = r.json()["search_id"]
    for who in ("rita", "rob"):
        with srv.client(who) as c:
            c.post(
                f"/v1/searches/{sid}/reviews",
                json={"decision": "confirm", "subject_ref": "m-0002", "reason": "r"},
            )
    yield srv
    srv.stop()


def test_the_auditor_sees_the_monitor_and_no_person(browser, server):  # noqa: F811
    sign_in(browser, server, "ada")
    browser.get(f"{server.url}/ui/monitor")
    assert browser.title.startswith("Monitoring")
    assert "Post-market monitoring" in browser.find_element(By.ID, "monitor").text
    browser.find_element(By.ID, "m-k").clear()
    browser.find_element(By.ID, "m-k").send_keys("2")
    go(browser, browser.find_element(By.ID, "monitor-run"))
    section = browser.find_element(By.ID, "monitor").text
    assert "fewer than k=2" in section and "invisible" in section  # one search, one subject: no figure
    page = browser.page_source
    assert "<script" not in page and SECRET not in page and "m-0002" not in page


def test_other_roles_are_refused(browser, server):  # noqa: F811
    sign_in(browser, server, "rita")
    browser.get(f"{server.url}/ui/monitor")
    assert "auditor" in browser.find_element(By.TAG_NAME, "body").text
    assert "Post-market monitoring" not in browser.page_source
