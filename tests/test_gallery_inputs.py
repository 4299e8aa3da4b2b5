"""Every gallery entry point names the file an error came from; bad key files and caches are clear errors.

The tests on a gallery run on both stores: an SQLite file and a real PostgreSQL database (``module_store``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from test_imaging_formats import corrupt_jpeg

from faceaudit.gallery.crypto import GalleryKeyError, load_key

FAIRFACE = Path(__file__).parent / "data" / "fairface"
GOOD = str(FAIRFACE / "fairface_0001.jpg")
CONSENT = ["--consent-basis", "form", "--consent-by", "Ruth"]


@pytest.fixture(scope="module")
def setup(module_store, tmp_path_factory):
    """The images' folder and the gallery's ``--db … --key-file …`` arguments."""
    root = tmp_path_factory.mktemp("inputs")
    db = module_store.args()
    assert run_cli("gallery", "init", *db, env={"FACEAUDIT_KEY": ""}).returncode == 0
    r = run_cli("gallery", "enroll", "s1", GOOD, "--name", "N", *CONSENT, "--operator", "o", *db)
    assert r.returncode == 0, r.stderr
    truncated = root / "truncated.jpg"
    truncated.write_bytes(Path(GOOD).read_bytes()[:3000])
    (root / "corrupt.jpg").write_bytes(corrupt_jpeg())
    shutil.copy(GOOD, root / "good.jpg")
    (root / "m.csv").write_text("subject_ref,path\ns2,good.jpg\ns2,truncated.jpg\n")
    return root, db


@pytest.mark.parametrize("bad", ["truncated.jpg", "corrupt.jpg"])
def test_every_command_names_the_file(setup, bad):
    root, db = setup
    path = str(root / bad)
    for args in (
        ["gallery", "enroll", "s9", GOOD, path, "--name", "N", *CONSENT, "--operator", "o"],
        ["identify", path, "--purpose", "p", "--case", "c", "--operator", "o"],
        ["verify-subject", path, "s1", "--operator", "o"],
    ):
        r = run_cli(*args, *db)
        assert r.returncode == 3 and f"{path}:" in r.stderr and "<bytes>" not in r.stderr, (args, r.stderr)


def test_enroll_manifest_names_the_file_and_refuses_a_directory(setup):
    root, db = setup
    base = ["gallery", "enroll-manifest", "--root", str(root), *CONSENT, "--operator", "o", *db]
    r = run_cli(*base, str(root / "m.csv"))
    assert r.returncode == 3 and "truncated.jpg" in r.stderr and "<bytes>" not in r.stderr, r.stderr
    r = run_cli(*base, str(root))
    assert r.returncode == 3 and "is a directory" in r.stderr and "Traceback" not in r.stderr


def test_a_key_file_that_is_not_text_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEAUDIT_KEY", raising=False)
    key_file = tmp_path / "k.key"
    key_file.write_bytes(b"\xff\xfe" + bytes(range(200, 255)))
    key_file.chmod(0o600)
    with pytest.raises(GalleryKeyError, match="not a gallery key"):
        load_key(None, key_file)
    with pytest.raises(GalleryKeyError, match="32 bytes"):
        load_key("caf\udce9" * 16)


def test_an_unwritable_home_falls_back_for_the_model_cache(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    env = {"FACEAUDIT_CACHE": "", "XDG_CACHE_HOME": "", "HOME": str(afile / "home"), "TMPDIR": str(tmp_path)}
    r = run_cli("verify", GOOD, GOOD, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = run_cli("verify", GOOD, GOOD, env={**env, "FACEAUDIT_CACHE": str(afile / "cache")})
    assert r.returncode == 2 and "FACEAUDIT_CACHE" in r.stderr, r.stderr


def test_directories_where_files_belong_are_clear_errors(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nfairface_0001.jpg\n")
    for args in (
        ["embed", str(folder), "--root", str(FAIRFACE), "--out", str(tmp_path / "e.npz")],
        ["embed", str(manifest), "--root", str(FAIRFACE), "--out", str(folder)],
        ["ledger", "export", "--out", str(folder), "--db", str(tmp_path / "none.db")],
    ):
        r = run_cli(*args)
        assert r.returncode in (2, 3) and "Traceback" not in r.stderr, (args, r.stderr)
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_an_unloadable_onnx_model_is_a_clear_error(tmp_path, setup):
    _, db = setup
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(bytes(range(256)) * 20)
    for args in (
        ["verify", GOOD, GOOD],
        ["identify", GOOD, "--purpose", "p", "--case", "c", "--operator", "o", *db],
    ):
        r = run_cli(*args, "--model", f"onnx:{junk}")
        assert r.returncode == 3 and str(junk) in r.stderr and "Traceback" not in r.stderr, r.stderr
