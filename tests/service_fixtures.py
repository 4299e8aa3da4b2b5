"""A real ``faceaudit serve`` process on a free 127.0.0.1 port over a throwaway gallery, with a key per role."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

FAIRFACE = Path(__file__).parent / "data" / "fairface"
MODEL_ID = "sface-2021dec-int8bq"
ROLE_KEYS = ("enroller", "searcher", "reviewer", "auditor", "dpo", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_gallery(db: Path, n_synthetic: int = 20, seed: int = 0) -> None:
    """A gallery with ``n_synthetic`` subjects of random templates (where images are not the point)."""
    from faceaudit.gallery import Consent, Gallery
    from faceaudit.gallery.crypto import generate_key, write_key_file

    write_key_file(Path(f"{db}.key"), generate_key())
    rng = np.random.default_rng(seed)
    with Gallery(db, create=True, operator="test-setup") as g:
        for i in range(n_synthetic):
            v = rng.standard_normal((2, 128)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            g.enroll_templates(
                f"syn-{i:03d}",
                v,
                name=f"Synthetic {i}",
                consent=Consent("test consent", "test registrar"),
                operator="test-setup",
                model_id=MODEL_ID,
            )


def make_key(db: Path, principal: str, roles: str, rate_limit: str | None = None) -> str:
    from faceaudit.gallery.values import Actor, utc_today
    from faceaudit.service.keys import KeyHasher
    from faceaudit.service.store import ServiceStore

    store = ServiceStore(db)
    try:
        new = KeyHasher.for_gallery(db).create(
            store,
            principal=principal,
            roles=roles,
            actor=Actor.local("test-setup"),
            rate_limit=rate_limit,
            today=utc_today(),
        )
    finally:
        store.close()
    return new.key


@dataclass
class LiveServer:
    db: Path
    url: str
    proc: subprocess.Popen
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys.get(who, who)}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(db: Path, *args: str, log: Path | None = None) -> LiveServer:
    """Start ``python -m faceaudit serve`` on ``db`` and wait until /healthz answers."""
    port = free_port()
    log = log or db.with_suffix(f".{port}.log")
    fh = open(log, "w")  # noqa: SIM115
    env = {**os.environ, "FACEAUDIT_THREADS": os.environ.get("FACEAUDIT_THREADS", "1")}
    env.pop("FACEAUDIT_KEY", None)
    proc = subprocess.Popen(
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
            *args,
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"faceaudit serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveServer(db, url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"faceaudit serve did not answer within 120 s:\n{log.read_text()}")


def image(name: str = "0002") -> tuple[str, bytes, str]:
    """A real FairFace face as a multipart file tuple."""
    return (f"fairface_{name}.jpg", (FAIRFACE / f"fairface_{name}.jpg").read_bytes(), "image/jpeg")
