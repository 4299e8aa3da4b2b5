"""``make screenshots``: a PNG of each console page (1280 px wide), from the seeded demo gallery.

Needs Debian's chromium and chromium-driver, and selenium (dev extras). Each picture is saved only once its page
has loaded and shows what it is named for (its title and a page element, checked); the set of pictures is the
same on every run. They are written to a new folder first and copied to ``--out`` only when all were taken, so
a failed run leaves ``--out`` as it was. ``make screenshots`` writes to build/screenshots; ``make screenshots
SCREENSHOTS=docs/ui`` updates the pictures of the README.

    python examples/console_screenshots.py [--out build/screenshots]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from serve_demo import FACES, build_demo  # noqa: E402

SHOTS = (
    "login",
    "home-reviewer",
    "enrol",
    "search",
    "search-result",
    "compare",
    "review-queue",
    "search-review",
    "forbidden",
    "ledger",
    "audit-job",
    "audits",
    "subjects",
    "erase",
    "keys",
    "docs",
)
"""Every picture, in the order taken: the same set on every run."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/screenshots")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    work = Path(tempfile.mkdtemp())
    staged = work / "shots"
    staged.mkdir()
    db, keys = build_demo(work / "demo")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceaudit",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    browser = None
    taken: list[str] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        browser = webdriver.Chrome(service=DriverService(driver_path), options=opts)
        browser.implicitly_wait(0)
        wait = WebDriverWait(browser, 120)

        def loaded(element_id: str, title: str, text: str | None = None) -> None:
            """Wait for the page titled ``title`` with element ``element_id`` (holding ``text``), fully loaded."""

            def ready(b) -> bool:
                if b.execute_script("return document.readyState") != "complete" or b.title != title:
                    return False
                found = b.find_elements(By.ID, element_id)
                return bool(found) and (text is None or text in found[0].text)

            wait.until(ready, f"{title!r} with #{element_id} {text or ''}")

        def shot(name: str, element_id: str, title: str, text: str | None = None) -> None:
            assert name in SHOTS and name not in taken, name
            loaded(element_id, title, text)
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(str(staged / f"{name}.png"))
            taken.append(name)
            print(f"{name}.png: {title}")

        def click(element_id: str) -> None:
            old = browser.find_element(By.TAG_NAME, "html")
            browser.find_element(By.ID, element_id).click()
            wait.until(lambda _: _gone(old))

        def sign_in(who: str) -> None:
            browser.delete_all_cookies()
            browser.get(f"{url}/ui/login")
            loaded("key", "Sign in · faceaudit")
            browser.find_element(By.ID, "key").send_keys(keys[who])
            click("signin")
            loaded("who", "faceaudit console · faceaudit")

        browser.get(f"{url}/ui/login")
        shot("login", "signin", "Sign in · faceaudit")

        sign_in("enroller")
        browser.get(f"{url}/ui/enrol")
        browser.find_element(By.ID, "subject_ref").send_keys("demo-0008")
        browser.find_element(By.ID, "name").send_keys("Demo Person Eight")
        browser.find_element(By.ID, "consent_basis").send_keys("signed consent form")
        browser.find_element(By.ID, "photos").send_keys(
            "\n".join(str(FACES / f"fairface_{n}.jpg") for n in ("0007", "0008"))
        )
        click("enrol")
        shot("enrol", "checks", "Enrol a person · faceaudit", "failed")
        browser.get(f"{url}/ui/compare")
        browser.find_element(By.ID, "photo_a").send_keys(str(FACES / "fairface_0003.jpg"))
        browser.find_element(By.ID, "photo_b").send_keys(str(FACES / "fairface_0003.jpg"))
        click("compare")
        shot("compare", "similarity", "Compare two photos · faceaudit")

        sign_in("searcher")
        search_ids = []
        for case in ("SEC-76", "SEC-77"):
            browser.get(f"{url}/ui/search")
            browser.find_element(By.ID, "probe").send_keys(str(FACES / "fairface_0003.jpg"))
            browser.find_element(By.ID, "purpose").send_keys("building access review")
            browser.find_element(By.ID, "case").send_keys(case)
            click("search")
            loaded("verdict", f"Search {browser.current_url.rsplit('/', 1)[1][:8]} · faceaudit")
            search_ids.append(browser.current_url.rsplit("/", 1)[1])
        shot("search-result", "verdict", f"Search {search_ids[1][:8]} · faceaudit", "not an identification")
        browser.get(f"{url}/ui/search")
        shot("search", "mine", "Search the gallery · faceaudit", "SEC-77")

        sign_in("reviewer-1")
        browser.get(f"{url}/ui/searches/{search_ids[0]}")
        loaded("review-form", f"Search {search_ids[0][:8]} · faceaudit")
        Select(browser.find_element(By.ID, "subject_ref")).select_by_value("demo-0003")
        browser.find_element(By.ID, "reason").send_keys("same face shape, ears and hairline")
        click("submit-review")
        shot("search-review", "needed", f"Search {search_ids[0][:8]} · faceaudit", "1 of 2")
        browser.get(f"{url}/ui/")
        shot("home-reviewer", "todo", "faceaudit console · faceaudit")
        browser.get(f"{url}/ui/reviews")
        shot("review-queue", "queue", "Review queue · faceaudit", search_ids[1][:8])
        browser.get(f"{url}/ui/subjects")
        shot("forbidden", "message", "Not allowed · faceaudit")

        sign_in("auditor")
        browser.get(f"{url}/ui/ledger")
        click("verify")
        shot("ledger", "verdict", "Ledger · faceaudit", "chain intact")
        scores = work / "vendor-scores.csv"
        rows = ["score,mated,sex_a,sex_b"] + [
            f"{(0.8 if m else 0.2) + (i % 13) / 60:.3f},{m},{g},{g}"
            for i in range(400)
            for m, g in ((1, "female" if i % 2 else "male"), (0, "female" if i % 3 else "male"))
        ]
        scores.write_text("\n".join(rows) + "\n")
        browser.get(f"{url}/ui/audits")
        browser.find_element(By.ID, "scores").send_keys(str(scores))
        browser.find_element(By.ID, "group_by").send_keys("sex")
        click("run-audit")
        for _ in range(240):  # the job page reloads itself until the audit is done
            if browser.find_elements(By.ID, "report-link"):
                break
            time.sleep(0.5)
        title = browser.title
        shot("audit-job", "report-link", title)
        browser.get(f"{url}/ui/audits")
        shot("audits", "audits", "Audits · faceaudit", "done")

        sign_in("dpo")
        browser.get(f"{url}/ui/subjects")
        shot("subjects", "subjects", "Subjects · faceaudit", "demo-0007")
        browser.get(f"{url}/ui/subjects/demo-0007/erase")
        shot("erase", "erase-form", "Erase demo-0007 · faceaudit")

        sign_in("admin")
        browser.get(f"{url}/ui/keys")
        shot("keys", "keys", "Keys · faceaudit", "reviewer-2")
        browser.get(f"{url}/docs")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), "Swagger UI")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) > 10, "the operations")
        shot("docs", "swagger-ui", "faceaudit API docs")
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(30)
    if sorted(taken) != sorted(SHOTS):
        sys.exit(f"only {len(taken)} of {len(SHOTS)} pictures were taken; {args.out} is unchanged")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        shutil.copyfile(staged / f"{name}.png", out / f"{name}.png")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{len(SHOTS)} pictures in {out}")
    return 0


def _gone(old) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        old.is_enabled()
    except WebDriverException:
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
