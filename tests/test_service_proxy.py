"""The console and the API behind a real nginx (Debian's package) with a path prefix, configured as the README
says: every link, form action, redirect and cookie path carries ``--root-path``; the walk-through of every role
passes there as it does directly; ``/docs`` renders from the server's own files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from service_fixtures import free_port, make_gallery, make_key, start_server
from stores import sqlite_store

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
README = Path(__file__).parents[1] / "README.md"
PREFIX = "/faceaudit"

if not NGINX:
    if os.environ.get("FACEAUDIT_REQUIRE_BROWSER") == "1":  # CI must run it (.ci/run installs nginx)
        raise RuntimeError("no nginx: .ci/run installs Debian's nginx package")
    pytest.skip("no nginx (Debian's package)", allow_module_level=True)


def readme_location(port: int) -> str:
    """The README's nginx ``location`` block, pointed at ``port``."""
    block = re.search(r"`(location /faceaudit/ \{.*?\})`", README.read_text(), re.S)
    assert block, "the README's nginx recipe is gone"
    return re.sub(r"\s+", " ", block.group(1)).replace("127.0.0.1:8000", f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proxy")
    store = sqlite_store(folder)
    make_gallery(store, n_synthetic=3)
    keys = {
        "erin": make_key(store, "erin", "enroller"),
        "sam": make_key(store, "sam", "searcher"),
        "rita": make_key(store, "rita", "reviewer"),
        "rob": make_key(store, "rob", "reviewer"),
        "tess": make_key(store, "tess", "reviewer"),
    }
    server = start_server(store, "--root-path", PREFIX, "--workers", "2")
    port = free_port()
    nginx_dir = folder / "nginx"
    nginx_dir.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = " ".join(
        f"{kind}_temp_path {nginx_dir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = nginx_dir / "nginx.conf"
    conf.write_text(
        f"{user}daemon off; worker_processes 1; pid {nginx_dir}/nginx.pid; error_log {nginx_dir}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; {temps}\n"
        f"server {{ listen 127.0.0.1:{port}; {readme_location(int(server.url.rsplit(':', 1)[1]))} }} }}\n"
    )
    proc = subprocess.Popen([NGINX, "-p", str(nginx_dir), "-c", str(conf)], stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (nginx_dir / "error.log").read_text()
            time.sleep(0.2)
        yield base, keys
    finally:
        proc.terminate()
        proc.wait(10)
        server.stop()


def test_links_forms_redirects_and_cookies_carry_the_prefix(proxied):
    base, keys = proxied
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        assert c.get("/ui/").headers["location"] == f"{PREFIX}/ui/login"
        page = c.get("/ui/login")
        assert (
            f'action="{PREFIX}/ui/login"' in page.text
            and f'href="{PREFIX}/ui/static/console.css"' in page.text
        )
        assert f"Path={PREFIX}/ui" in page.headers["set-cookie"]
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/ui/login", data={"key": keys["rita"], "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == f"{PREFIX}/ui/"
        assert f"Path={PREFIX}/ui" in r.headers["set-cookie"]
        home = c.get("/ui/")
        assert home.status_code == 200
        paths = re.findall(r'(?:href|action|src)="([^"]+)"', home.text)
        assert paths and all(p.startswith(PREFIX + "/") for p in paths), paths
        docs = c.get("/docs")
        assert docs.status_code == 200 and f'data-openapi="{PREFIX}/openapi.json"' in docs.text
        for asset in re.findall(r'(?:href|src)="([^"]+)"', docs.text):
            assert c.get(asset.removeprefix(PREFIX)).status_code == 200, asset


def test_walk_through_behind_nginx(proxied):
    from console_walk import browser_or_skip, walk
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, keys = proxied
    with browser_or_skip() as browser:
        walk(browser, base, keys)
        assert {c["path"] for c in browser.get_cookies()} == {f"{PREFIX}/ui"}
        browser.get(f"{base}/docs")  # Swagger UI renders from the server's own files, nothing from elsewhere
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))
        assert "faceaudit" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        origin = base.removesuffix(PREFIX)
        assert loaded and all(name.startswith(origin + "/") for name in loaded), loaded
