"""The console walked through as its users would, in a real browser, at a given base URL (direct, or behind a
proxy with a path prefix): enrol with consent and two photos, search, two confirmations, a split resolved by a
third reviewer, the searcher reading the confirmed subject, a 1:1 comparison; every page checked at 1280 and
390 px wide for sideways scrolling of the page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

FAIRFACE = Path(__file__).parent / "data" / "fairface"


def photo(name: str) -> str:
    return str(FAIRFACE / f"fairface_{name}.jpg")


def _replaced(old) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        old.is_enabled()
    except WebDriverException:
        return True
    return False


def go(browser, element) -> None:
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 60).until(lambda _: _replaced(old))


def fits(browser, where: str) -> None:
    """The page has no sideways scrolling at 1280 px nor at 390 px."""
    for width in (1280, 390):
        browser.set_window_size(width, 900)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (where, width, overflow)
    browser.set_window_size(1280, 900)


def sign_in(browser, base: str, key: str, who: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base}/ui/login")
    assert browser.title == "Sign in · faceaudit"
    fits(browser, "sign-in")
    browser.find_element(By.ID, "key").send_keys(key)
    go(browser, browser.find_element(By.ID, "signin"))
    assert f"Signed in as {who}" in " ".join(browser.find_element(By.ID, "who").text.split())
    fits(browser, f"home of {who}")


def nav(browser, text: str) -> None:
    go(browser, browser.find_element(By.CSS_SELECTOR, "nav").find_element(By.LINK_TEXT, text))


def enrol(browser, ref: str, name: str, photos: list[str]) -> str:
    nav(browser, "Enrol")
    fits(browser, "enrol form")
    browser.find_element(By.ID, "subject_ref").send_keys(ref)
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "consent_basis").send_keys("signed consent form")
    browser.find_element(By.ID, "consent_by").clear()
    browser.find_element(By.ID, "consent_by").send_keys("front desk")
    browser.find_element(By.ID, "photos").send_keys("\n".join(photo(p) for p in photos))
    browser.find_element(By.ID, "store_images").click()
    go(browser, browser.find_element(By.ID, "enrol"))
    fits(browser, "enrol result")
    return browser.find_element(By.ID, "message").text


def search(browser, probe: str, case: str) -> str:
    """Run a search; returns its id (from the result page's URL)."""
    nav(browser, "Search")
    fits(browser, "search form")
    browser.find_element(By.ID, "probe").send_keys(photo(probe))
    browser.find_element(By.ID, "purpose").send_keys("walk-through")
    browser.find_element(By.ID, "case").send_keys(case)
    go(browser, browser.find_element(By.ID, "search"))
    assert "/ui/searches/" in browser.current_url and "?" not in browser.current_url
    assert "candidates for human review, not an identification" in browser.find_element(By.ID, "verdict").text
    fits(browser, "search result")
    return browser.current_url.rsplit("/", 1)[1]


def review(browser, sid: str, decision: str, subject: str | None = None) -> str:
    nav(browser, "Review queue")
    fits(browser, "review queue")
    row = browser.find_element(By.XPATH, f"//table[@id='queue']//tr[td/a[text()='{sid[:8]}']]")
    reviews = row.find_element(By.CSS_SELECTOR, "td.reviews").text
    go(browser, row.find_element(By.LINK_TEXT, sid[:8]))
    fits(browser, "search to review")
    Select(browser.find_element(By.ID, "decision")).select_by_value(decision)
    if subject:
        Select(browser.find_element(By.ID, "subject_ref")).select_by_value(subject)
    browser.find_element(By.ID, "reason").send_keys("compared the faces")
    go(browser, browser.find_element(By.ID, "submit-review"))
    assert "Recorded." in browser.find_element(By.ID, "message").text
    browser.refresh()  # after the redirect a reload sends nothing again
    assert "Recorded." not in browser.page_source
    return reviews + " → " + browser.find_element(By.ID, "status").text


def queue_ids(browser) -> list[str]:
    nav(browser, "Review queue")
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#queue td a")]


def walk(browser, base: str, keys: dict[str, str]) -> None:
    """The whole walk-through; ``keys``: erin (enroller), sam (searcher), rita, rob, tess (reviewers)."""
    sign_in(browser, base, keys["erin"], "erin")
    assert "Enrolled walk-1: 2 photo(s)" in enrol(browser, "walk-1", "Walker One", ["0002", "0007"])
    assert "walk-1" in browser.find_element(By.ID, "mine").text
    message = enrol(browser, "walk-bad", "Blurry Person", ["0002", "0004"])
    assert "Nothing was stored" in message
    assert "failed" in browser.find_element(By.ID, "checks").text
    assert "walk-bad" not in browser.find_element(By.ID, "mine").text
    nav(browser, "Compare")
    browser.find_element(By.ID, "photo_a").send_keys(photo("0002"))
    browser.find_element(By.ID, "photo_b").send_keys(photo("0002"))
    go(browser, browser.find_element(By.ID, "compare"))
    assert "match" in browser.find_element(By.ID, "decision").text
    assert float(browser.find_element(By.ID, "similarity").text) > 0.9
    assert len(browser.find_elements(By.CSS_SELECTOR, "#faces tbody tr")) == 2
    fits(browser, "compare result")

    sign_in(browser, base, keys["sam"], "sam")
    agreed = search(browser, "0002", "WALK-1")
    split = search(browser, "0002", "WALK-2")
    nav(browser, "Search")
    mine = browser.find_element(By.ID, "mine").text
    assert "awaiting review" in mine and "WALK-1" in mine

    sign_in(browser, base, keys["rita"], "rita")
    assert review(browser, agreed, "confirm", "walk-1") == "0 of 2 → pending_review"
    assert agreed[:8] not in queue_ids(browser)  # reviewed: no longer in her queue
    assert review(browser, split, "confirm", "walk-1") == "0 of 2 → pending_review"
    sign_in(browser, base, keys["rob"], "rob")
    assert review(browser, agreed, "confirm", "walk-1") == "1 of 2 → confirmed"
    assert review(browser, split, "reject") == "1 of 2 → disputed"
    assert split[:8] not in queue_ids(browser)
    sign_in(browser, base, keys["rita"], "rita")
    assert split[:8] not in queue_ids(browser)  # both who split it: out of their queues, waiting for a third
    sign_in(browser, base, keys["tess"], "tess")
    nav(browser, "Review queue")
    row = browser.find_element(By.XPATH, f"//table[@id='queue']//tr[td/a[text()='{split[:8]}']]")
    assert "disputed" in row.text and "2 of 3" in row.text
    assert review(browser, split, "confirm", "walk-1") == "2 of 3 → confirmed"

    sign_in(browser, base, keys["sam"], "sam")
    nav(browser, "Search")
    for sid in (agreed, split):
        browser.get(f"{base}/ui/searches/{sid}")
        assert browser.find_element(By.ID, "confirmed-subject").text == "walk-1"
        assert "Walker One" in browser.find_element(By.ID, "verdict").text
        fits(browser, "confirmed search")


@contextmanager
def browser_or_skip() -> Iterator[Any]:
    """Debian's chromium through selenium, headless (skipped without it, unless CI requires it)."""
    import os
    import shutil

    import pytest
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        if os.environ.get("FACEAUDIT_REQUIRE_BROWSER") == "1":
            raise RuntimeError("no browser: .ci/run installs chromium and chromium-driver")
        pytest.skip("no browser (Debian's chromium + chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    browser = webdriver.Chrome(service=DriverService(driver), options=opts)
    browser.implicitly_wait(5)
    try:
        yield browser
    finally:
        browser.quit()
