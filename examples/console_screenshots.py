"""``make screenshots``: a PNG of each console page (1280×800), from the seeded demo gallery, into docs/ui/.

Needs Debian's chromium and chromium-driver, and selenium (dev extras).

    python examples/console_screenshots.py [--out docs/ui]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/ui")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
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
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(arg)
    browser = None
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        auth = {"Authorization": f"Bearer {keys['searcher']}"}
        probe = (FACES / "fairface_0003.jpg").read_bytes()
        search = httpx.post(
            f"{url}/v1/identify",
            headers=auth,
            files={"image": ("probe.jpg", probe, "image/jpeg")},
            data={"purpose": "building access review", "case": "SEC-77"},
            timeout=60,
        ).json()["search_id"]
        browser = webdriver.Chrome(service=DriverService(driver_path), options=opts)
        browser.implicitly_wait(10)

        def shot(name: str) -> None:
            browser.save_screenshot(str(out / f"{name}.png"))
            print(out / f"{name}.png")

        def sign_in(who: str) -> None:
            browser.delete_all_cookies()
            browser.get(f"{url}/ui/login")
            browser.find_element(By.ID, "key").send_keys(keys[who])
            browser.find_element(By.ID, "signin").click()

        browser.get(f"{url}/ui/login")
        shot("login")
        sign_in("reviewer-1")
        browser.get(f"{url}/ui/reviews")
        shot("review-queue")
        browser.get(f"{url}/ui/searches/{search}")
        Select(browser.find_element(By.ID, "subject_ref")).select_by_value("demo-0003")
        browser.find_element(By.ID, "reason").send_keys("same face shape, ears and hairline")
        browser.find_element(By.ID, "submit-review").click()
        shot("search-review")
        browser.get(f"{url}/ui/subjects")
        shot("forbidden")
        sign_in("auditor")
        browser.get(f"{url}/ui/ledger")
        browser.find_element(By.ID, "verify").click()
        shot("ledger")
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
        browser.find_element(By.ID, "run-audit").click()
        for _ in range(120):
            if browser.find_elements(By.ID, "report-link"):
                break
            time.sleep(0.5)
        shot("audit-job")
        browser.get(f"{url}/ui/audits")
        shot("audits")
        sign_in("dpo")
        browser.get(f"{url}/ui/subjects")
        shot("subjects")
        browser.get(f"{url}/ui/subjects/demo-0007/erase")
        shot("erase")
        sign_in("admin")
        browser.get(f"{url}/ui/keys")
        shot("keys")
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
