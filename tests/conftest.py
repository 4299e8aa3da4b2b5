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
