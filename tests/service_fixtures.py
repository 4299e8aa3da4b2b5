"""A real ``faceaudit serve`` process on a free 127.0.0.1 port over a throwaway gallery (a :class:`GalleryStore`
of either kind, see tests/stores.py), with a key per role."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from stores import GalleryStore

FAIRFACE = Path(__file__).parent / "data" / "fairface"
MODEL_ID = "sface-2021dec-int8bq"
ROLE_KEYS = ("enroller", "searcher", "reviewer", "auditor", "dpo", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_gallery(store: GalleryStore, n_synthetic: int = 20, seed: int = 0) -> None:
    """A gallery in ``store`` (its key written to ``store.key_file``) with ``n_synthetic`` subjects of random
    templates (where images are not the point)."""
    from faceaudit.gallery import Consent
    from faceaudit.gallery.crypto import generate_key, write_key_file

    write_key_file(store.key_file, generate_key())
    rng = np.random.default_rng(seed)
    with store.gallery(create=True, operator="test-setup") as g:
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


def make_key(store: GalleryStore, principal: str, roles: str, rate_limit: str | None = None) -> str:
    """A new API key for ``principal`` in the service store of ``store`` (as ``faceaudit keys create`` makes)."""
    from faceaudit.gallery.values import Actor, utc_today
    from faceaudit.operations.keys import KeyHasher
    from faceaudit.operations.records import open_service_store

    service = open_service_store(store.db)
    try:
        new = KeyHasher.for_gallery(store.db, store.key_file).create(
            service,
            principal=principal,
            roles=roles,
            actor=Actor.local("test-setup"),
            rate_limit=rate_limit,
            today=utc_today(),
        )
    finally:
        service.close()
    return new.key


@contextmanager
def in_process_service(store: GalleryStore, principals: dict[str, str], **config: Any):
    """A small gallery in ``store`` with a key per ``principals`` entry (principal → roles), served by an in-process
    app (no server process); yields ``(app, service, keys)`` and closes the service afterwards."""
    from faceaudit.service import ServiceConfig, create_app
    from faceaudit.service.state import Service

    make_gallery(store, n_synthetic=3)
    keys = {who: make_key(store, who, roles) for who, roles in principals.items()}
    service = Service(ServiceConfig(db=store.db, key_file=store.key_file, workers=1, **config))
    try:
        yield create_app(service=service), service, keys
    finally:
        service.close()


@dataclass
class LiveServer:
    store: GalleryStore
    url: str
    proc: subprocess.Popen
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> str:
        """What ``--db`` took: the SQLite file's path or the PostgreSQL URL."""
        return self.store.db

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


def start_server(store: GalleryStore, *args: str, log: Path | None = None) -> LiveServer:
    """Start ``python -m faceaudit serve --db DB --key-file KEY`` on ``store`` and wait until /healthz answers.

    Its log goes to ``log`` (default: a file in ``store.folder``); its audit jobs under ``store.folder/audits``
    (``$FACEAUDIT_AUDITS``, where a PostgreSQL gallery keeps them)."""
    port = free_port()
    log = log or store.folder / f"serve.{port}.log"
    fh = open(log, "w")  # noqa: SIM115
    env = {
        **os.environ,
        "FACEAUDIT_THREADS": os.environ.get("FACEAUDIT_THREADS", "1"),
        "FACEAUDIT_AUDITS": str(store.folder / "audits"),
    }
    env.pop("FACEAUDIT_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceaudit",
            "serve",
            *store.args(),
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
    fh.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"faceaudit serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveServer(store, url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"faceaudit serve did not answer within 120 s:\n{log.read_text()}")


def ledger_entries(store: GalleryStore, action: str | None = None) -> list[dict]:
    """The store's ledger rows (seq, actor, action, params, result, auth; JSON decoded), read straight from it."""
    with store.raw() as conn:
        rows = conn.execute(
            "SELECT seq, actor, action, params, result, auth FROM ledger ORDER BY seq"
        ).fetchall()
    out = [
        {
            "seq": r[0],
            "actor": r[1],
            "action": r[2],
            "params": json.loads(r[3]),
            "result": json.loads(r[4]),
            "auth": json.loads(r[5] or "null"),
        }
        for r in rows
    ]
    return [e for e in out if action is None or e["action"] == action]


def image(name: str = "0002") -> tuple[str, bytes, str]:
    """A real FairFace face as a multipart file tuple."""
    return (f"fairface_{name}.jpg", (FAIRFACE / f"fairface_{name}.jpg").read_bytes(), "image/jpeg")


def enrol(
    server: LiveServer,
    who: str,
    ref: str,
    face: str,
    *,
    name: str | None = None,
    n_images: int = 1,
    **fields: str,
) -> dict:
    """Enrol ``ref`` with ``n_images`` copies of FairFace face ``face`` through the API as ``who``; asserts 201
    and returns the answer. ``fields`` are extra form fields (``store_images="true"``)."""  # fmt: skip
    with server.client(who) as c:
        r = c.post(
            "/v1/subjects",
            files=[("images", image(face))] * n_images,
            data={"subject_ref": ref, "name": name or f"Person {face}", "consent_basis": "form",
                  "consent_by": "reg", **fields},
        )  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()
