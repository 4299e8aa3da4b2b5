"""One rule for accountability fields, in the API and the CLI: NFC, trimmed, visible, no control characters.

The tests that open a gallery run on both stores: an SQLite file and a real PostgreSQL database (``store``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from test_gallery_files import ENROL

from faceaudit.errors import ConsentError, FaceAuditError
from faceaudit.gallery import Consent, Gallery
from faceaudit.gallery.crypto import generate_key

FACE = str(Path(__file__).parent / "data" / "fairface" / "fairface_0001.jpg")
INVISIBLE = ["\u200b", "\u200b\u200c\u2060", "\x1b\x07", " \u00a0\t", "\ufeff", "ok\x1b[31m", "ok\x00"]
CONSENT = Consent("signed form", "Registrar")


class FakeEngine:
    model_id, threshold, policy, dim = "fake-model", 0.5, "central", 8


@pytest.fixture()
def gallery(store):
    g = Gallery(store.db, key=generate_key(), engine=FakeEngine())
    yield g
    g.close()


def vec(i: int) -> np.ndarray:
    return np.eye(8, dtype=np.float32)[i : i + 1]


@pytest.mark.parametrize("bad", INVISIBLE)
def test_the_api_refuses_invisible_or_control_values_in_every_field(gallery, bad):
    def enrol(**kw):
        args = {"name": "N", "consent": CONSENT, "operator": "o", "model_id": "fake-model", **kw}
        ref = args.pop("ref", "s1")
        gallery.enroll_templates(ref, vec(0), **args)

    calls = {
        "subject ref": lambda: enrol(ref=bad),
        "--name": lambda: enrol(name=bad),
        "--operator": lambda: enrol(operator=bad),
        "--consent-basis": lambda: Consent(bad, "r"),
        "--consent-by": lambda: Consent("b", bad),
        "bulk ref": lambda: gallery.enroll_many(
            [(bad, "n", vec(0))], consent=CONSENT, operator="o", model_id="m"
        ),
        "bulk --name": lambda: gallery.enroll_many(
            [("s", bad, vec(0))], consent=CONSENT, operator="o", model_id="m"
        ),
        "--purpose": lambda: gallery.identify_template(
            vec(0)[0], probe_sha256="0" * 64, purpose=bad, case="c", operator="o"
        ),
        "--case": lambda: gallery.identify_template(
            vec(0)[0], probe_sha256="0" * 64, purpose="p", case=bad, operator="o"
        ),
        "--reason": lambda: gallery.erase("s1", reason=bad, operator="o"),
    }
    for field, call in calls.items():
        with pytest.raises(FaceAuditError) as err:
            call()
        assert err.value.exit_code == 2, field
        words = "subject ref" if "ref" in field else field.replace("bulk ", "")
        if field.startswith("--consent"):
            assert isinstance(err.value, ConsentError)
        assert words in str(err.value), (field, str(err.value))
    assert gallery.subjects() == [] and gallery.ledger.store.count() == 1


def test_refs_are_found_the_way_they_are_stored(gallery):
    gallery.enroll_templates(
        " ref ", vec(0), name=" Ada ", consent=CONSENT, operator=" o ", model_id="fake-model"
    )
    gallery.enroll_templates(
        "Jose\u0301", vec(1), name="José", consent=CONSENT, operator="o", model_id="fake-model"
    )
    assert [s["subject_ref"] for s in gallery.subjects()] == ["ref", "Jos\u00e9"]
    assert gallery.subjects()[0]["name"] == "Ada"
    res = gallery.identify_template(
        vec(0)[0], probe_sha256="0" * 64, purpose="p", case="c", operator="o", top_k=1
    )
    assert res.candidates[0].subject_ref == "ref"
    gallery.erase(" ref ", reason="request", operator="dpo")
    gallery.erase("Jos\u00e9", reason="request", operator="dpo")  # composed finds decomposed
    assert gallery.subjects() == []


def cli(*args: str, env: dict | None = None):
    return run_cli(*args, env={"FACEAUDIT_KEY": "", **(env or {})})


@pytest.mark.parametrize("bad", ["\u200b", "\x1b\x07"])
def test_the_cli_refuses_them_naming_the_field(store, bad):
    db = store.args()
    assert cli("gallery", "init", *db).returncode == 0
    enrol = list(ENROL)
    search = ["identify", FACE, "--purpose", "p", "--case", "c", "--operator", "o"]
    cases = [
        (enrol[:2] + [bad] + enrol[3:], "subject ref"),
        (enrol + ["--name", bad], "--name"),
        (enrol + ["--consent-basis", bad], "--consent-basis"),
        (enrol + ["--consent-by", bad], "--consent-by"),
        (enrol + ["--operator", bad], "--operator"),
        (search + ["--purpose", bad], "--purpose"),
        (search + ["--case", bad], "--case"),
        (search + ["--operator", bad], "--operator"),
        (["gallery", "erase", "s1", "--reason", bad, "--operator", "o"], "--reason"),
        (["verify-subject", FACE, "s1", "--operator", "o", "--purpose", bad], "--purpose"),
    ]
    for args, field in cases:
        r = cli(*args, *db)
        assert r.returncode == 2 and field in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_non_utf8_arguments_are_a_clear_error(store):
    assert cli("gallery", "init", *store.args()).returncode == 0
    env = {**os.environ, "FACEAUDIT_KEY": "", "LC_ALL": "C.UTF-8"}
    cmd = [
        sys.executable,
        "-m",
        "faceaudit",
        "identify",
        FACE,
        "--case",
        "c",
        "--operator",
        "o",
        *store.args(),
    ]
    r = subprocess.run([*cmd, b"--purpose", b"caf\xe9"], capture_output=True, env=env, timeout=120)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and "UTF-8" in err and "Traceback" not in err, err


def test_help_says_what_enters_the_permanent_ledger():
    for command, options in (
        (["identify"], ["--purpose", "--case", "--operator"]),
        (["gallery", "erase"], ["--reason", "--operator"]),
        (["gallery", "enroll"], ["--name", "--consent-basis", "--consent-by", "--operator"]),
    ):
        text = " ".join(cli(*command, "--help").stdout.split())
        for option in options:
            part = text.split(option, 2)[-1][:300]
            assert "ledger" in part, (command, option, part)
