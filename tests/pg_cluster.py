"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, ``initdb`` in a temporary folder.

The cluster runs as an unprivileged user (``nobody`` when the tests run as root, since PostgreSQL refuses to
run as root), listens on a free port of 127.0.0.1 only, keeps its unix socket in its own folder, requires a
random password (SCRAM) and is stopped and deleted when the test session ends. It trades durability for speed
(``fsync=off``): nothing in it outlives the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

UNPRIVILEGED_USER = "nobody"


class ClusterUnavailable(RuntimeError):
    """No PostgreSQL server can be had here; the message says why (tests skip with it)."""


def find_bindir() -> Path:
    """The newest PostgreSQL server bin folder (Debian keeps them in /usr/lib/postgresql/VERSION/bin)."""
    env = os.environ.get("FACEAUDIT_PG_BINDIR")
    candidates = [Path(env)] if env else []
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise ClusterUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) found: install Debian's 'postgresql' package "
        "(apt-get install -y postgresql) or set FACEAUDIT_PG_BINDIR"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """A running throwaway cluster. ``url(dbname)`` is a libpq URI for one of its databases."""

    root: Path
    bindir: Path
    port: int
    password: str
    user: str = "postgres"
    run_as: tuple[int, int] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self.run_as is not None:
            kwargs = {"user": self.run_as[0], "group": self.run_as[1], "extra_groups": []}
        env = {**os.environ, "HOME": str(self.root), "LC_ALL": "C", "PGPASSWORD": ""}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.root,
            **kwargs,
        )

    def stop(self) -> None:
        """Stop the server (immediately: nothing needs to survive) and delete the folder."""
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any session still connected to it."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster(attempts: int = 3) -> PgCluster:
    """initdb and start a cluster; raises :class:`ClusterUnavailable` saying why when it cannot."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ClusterUnavailable(
            "psycopg is not installed (pip install 'psycopg[binary]' psycopg-pool)"
        ) from None
    bindir = find_bindir()
    run_as = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(UNPRIVILEGED_USER)
        except KeyError:
            raise ClusterUnavailable(
                f"running as root and there is no user {UNPRIVILEGED_USER!r} to run PostgreSQL as"
            ) from None
        run_as = (pw.pw_uid, pw.pw_gid)
    root = Path(tempfile.mkdtemp(prefix="faceaudit-pg-"))
    os.chmod(root, 0o700)
    if run_as is not None:
        os.chown(root, *run_as)
    cluster = PgCluster(root=root, bindir=bindir, port=0, password=secrets.token_hex(16), run_as=run_as)
    pwfile = root / "pwfile"
    pwfile.write_text(cluster.password + "\n")
    if run_as is not None:
        os.chown(pwfile, *run_as)
    init = cluster._run(
        "initdb",
        "-D",
        str(cluster.data),
        "-U",
        cluster.user,
        "--pwfile",
        str(pwfile),
        "-A",
        "scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
        timeout=120,
    )
    pwfile.unlink()
    if init.returncode != 0:
        cluster.stop()
        raise ClusterUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    last_error = ""
    for _ in range(attempts):
        cluster.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        start = cluster._run(
            "pg_ctl",
            "start",
            "-D",
            str(cluster.data),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "-l",
            str(root / "log"),
        )
        if start.returncode == 0 and _ready(cluster):
            return cluster
        log = root / "log"
        last_error = (start.stderr or "") + (log.read_text()[-800:] if log.exists() else "")
        cluster._run("pg_ctl", "stop", "-D", str(cluster.data), "-m", "immediate", "-w", timeout=30)
    cluster.stop()
    raise ClusterUnavailable(f"the PostgreSQL server did not start: {last_error.strip()[-800:]}")


def _ready(cluster: PgCluster, timeout: float = 30) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(cluster.url(), connect_timeout=5):
                return True
        except psycopg.OperationalError:
            time.sleep(0.2)
    return False
