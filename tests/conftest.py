"""Shared fixtures: real FairFace faces (CC BY 4.0, see tests/data/fairface/ATTRIBUTION.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
FAIRFACE = DATA / "fairface"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory):
    """Keep derived model files (the onnxruntime-fixed graphs) in one cache for the whole run."""
    os.environ.setdefault("FACEAUDIT_CACHE", str(tmp_path_factory.mktemp("model-cache")))


@pytest.fixture(scope="session")
def engine():
    from faceaudit.pipeline.engine import Engine

    return Engine("sface")


@pytest.fixture(scope="session")
def face_paths() -> list[Path]:
    return sorted(FAIRFACE.glob("fairface_*.jpg"))


def run_cli(
    *args: str,
    cwd: str | Path | None = None,
    env: dict | None = None,
    timeout: float = 300,
    stdin: str | None = None,
):
    """Run ``python -m faceaudit ARGS`` in a real subprocess (``stdin`` fed to it); returns CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "faceaudit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
        input=stdin,
    )


REQUIRE_PG_ENV = "FACEAUDIT_REQUIRE_PG"
"""Set to 1 (as .ci/run does) to make a missing PostgreSQL server an error instead of a skip."""


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the session (see tests/pg_cluster.py); skips, saying why, without one."""
    from pg_cluster import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{REQUIRE_PG_ENV}=1 but no PostgreSQL server: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture()
def pg_url(pg_cluster, request) -> str:
    """The URL of a fresh, empty database in the session's cluster, dropped after the test."""
    name = _pg_name(request.node.name)
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The one parametrised store fixture: every test that uses it (through ``store`` or ``module_store``) runs
    on SQLite and on PostgreSQL. The PostgreSQL run skips, saying why, when no server can be had (fails in CI)."""
    if request.param == "postgresql":
        pytest.importorskip("psycopg", reason="psycopg is not installed (faceaudit[postgres])")
        request.getfixturevalue("pg_cluster")
    return request.param


def _pg_name(node_name: str) -> str:
    import re
    import uuid

    return re.sub(r"[^a-z0-9_]", "_", node_name.lower())[:40] + "_" + uuid.uuid4().hex[:8]


@pytest.fixture()
def store(backend, request, tmp_path):
    """An empty gallery location for one test, on the parametrised backend (see tests/stores.py)."""
    from stores import postgres_store, sqlite_store

    if backend == "sqlite":
        yield sqlite_store(tmp_path / "store")
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = _pg_name(request.node.name)
    yield postgres_store(cluster.create_database(name), tmp_path / "store")
    cluster.drop_database(name)


@pytest.fixture(scope="module")
def module_store(backend, request, tmp_path_factory):
    """An empty gallery location shared by one module's tests, on the parametrised backend."""
    from stores import postgres_store, sqlite_store

    folder = tmp_path_factory.mktemp(f"{request.module.__name__}-{backend}")
    if backend == "sqlite":
        yield sqlite_store(folder)
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = _pg_name(request.module.__name__)
    yield postgres_store(cluster.create_database(name), folder)
    cluster.drop_database(name)


@pytest.fixture(scope="session")
def dask_local():
    """A real Dask LocalCluster of 2 worker processes on 127.0.0.1, shared by the session's Dask tests."""
    pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (pip install 'faceaudit[dask]')"
    )
    from faceaudit.dask_cluster import dask_client

    with dask_client("local:2") as client:
        yield client
