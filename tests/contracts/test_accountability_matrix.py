"""One matrix per accountability field: the same input through Python, the CLI and HTTP gives the same stored
value or the same refusal naming the field, on both stores. (The console's forms: test_accountability_console.py.)

Each row is a field and a bad value; each surface must refuse it, name the field, and store nothing. A good value
written with padding and in NFD must be stored once, in NFC, trimmed, the same on every surface.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from conftest import FAIRFACE, run_cli
from service_fixtures import MODEL_ID, image, make_gallery, make_key, start_server

from faceaudit.accountable import TextRefused
from faceaudit.errors import ConsentError, UsageError
from faceaudit.gallery import Consent

pytestmark = pytest.mark.slow

BAD = {
    "bidi override": "form\u202eA",
    "zero-width space": "for\u200bm",
    "escape sequence": "\x1b[31mform",
    "newline": "form\nB",
    "blank": " \u3000 ",
}

ENROL_FIELDS = {  # field: (HTTP form field, CLI option or None for the positional ref)
    "subject_ref": ("subject_ref", None),
    "name": ("name", "--name"),
    "consent_basis": ("consent_basis", "--consent-basis"),
    "consent_by": ("consent_by", "--consent-by"),
}
GOOD = {"subject_ref": "m-ref", "name": "M Name", "consent_basis": "form", "consent_by": "desk"}


@pytest.fixture(scope="module")
def server(module_store):
    make_gallery(module_store, n_synthetic=3)
    keys = {
        "enroller": make_key(module_store, "enroller", "enroller"),
        "dpo": make_key(module_store, "dpo", "dpo"),
    }
    srv = start_server(module_store, "--workers", "1")
    srv.keys = keys
    yield srv
    srv.stop()


def _subjects(server) -> list[dict]:
    with server.client("dpo") as c:
        return c.get("/v1/subjects").json()


def _python_enrol(server, values: dict[str, str]) -> None:
    v = np.eye(1, 128, dtype=np.float32)
    with server.store.gallery(create=False) as g:
        g.enroll_templates(
            values["subject_ref"],
            v,
            name=values["name"],
            consent=Consent(values["consent_basis"], values["consent_by"]),
            operator="matrix",
            model_id=MODEL_ID,
        )


def _cli_enrol(server, values: dict[str, str]):
    args = ["gallery", "enroll", values["subject_ref"], str(FAIRFACE / "fairface_0002.jpg")]
    for field, (_, option) in ENROL_FIELDS.items():
        if option:
            args += [option, values[field]]
    return run_cli(*args, "--operator", "matrix", *server.store.args())


def _http_enrol(server, values: dict[str, str]):
    with server.client("enroller") as c:
        return c.post("/v1/subjects", files=[("images", image("0002"))], data=values)


@pytest.mark.parametrize("why", list(BAD))
@pytest.mark.parametrize("field", list(ENROL_FIELDS))
def test_enrolment_fields_are_refused_alike(server, field, why):
    values = {
        **GOOD,
        field: BAD[why],
        "subject_ref": GOOD["subject_ref"] if field != "subject_ref" else BAD[why],
    }
    before = _subjects(server)
    with pytest.raises((TextRefused, ConsentError, UsageError)) as err:
        _python_enrol(server, values)
    named = field.replace("_", " ") if field != "subject_ref" else "subject ref"
    assert named in str(err.value).replace("-", " ") or field in str(err.value), str(err.value)
    if why in (
        "bidi override",
        "escape sequence",
    ):  # each CLI row starts a process: two kinds of bad text suffice
        done = _cli_enrol(server, values)
        assert done.returncode == 2, done.stderr
        option = ENROL_FIELDS[field][1]
        assert (option or "subject ref") in done.stderr, done.stderr
    r = _http_enrol(server, values)
    assert r.status_code == 422 and r.json()["error"].get("field") == field, r.text
    assert _subjects(server) == before  # nothing stored on any surface


@pytest.mark.parametrize("surface", ["python", "cli", "http"])
def test_a_good_value_is_stored_once_in_one_form(server, surface):
    ref = f"Zoë-{surface}"
    values = {
        "subject_ref": "  " + unicodedata.normalize("NFD", ref) + " ",
        "name": unicodedata.normalize("NFD", " Zoë Matrix "),
        "consent_basis": " signed\u00a0form ",
        "consent_by": "desk",
    }
    if surface == "python":
        _python_enrol(server, values)
    elif surface == "cli":
        assert _cli_enrol(server, values).returncode == 0
    else:
        assert _http_enrol(server, values).status_code == 201
    stored = {s["subject_ref"]: s for s in _subjects(server)}[unicodedata.normalize("NFC", ref)]
    assert stored["name"] == "Zoë Matrix" and stored["consent_basis"] == "signed\u00a0form"


@pytest.mark.parametrize("why", ["bidi override", "escape sequence", "blank"])
def test_an_erasure_reason_is_refused_alike(server, why):
    ref = f"keep-{why.replace(' ', '-')}"
    _python_enrol(server, {**GOOD, "subject_ref": ref})
    with server.store.gallery(create=False) as g, pytest.raises(TextRefused, match="reason"):
        g.erase(ref, reason=BAD[why], operator="dpo desk")
    done = run_cli(
        "gallery", "erase", ref, "--reason", BAD[why], "--operator", "dpo desk", *server.store.args()
    )
    assert done.returncode == 2 and "reason" in done.stderr, done.stderr
    with server.client("dpo") as c:
        r = c.delete(f"/v1/subjects/{ref}", params={"reason": BAD[why]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason", r.text
    assert ref in [s["subject_ref"] for s in _subjects(server)]  # still enrolled: nothing was erased
