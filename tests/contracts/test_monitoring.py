"""Post-market monitoring on both stores, through a real ``faceaudit serve``: declared attributes enter by the
API (sealed, apart, never shown per person, a keyed hash in the ledger, gone after erasure), and the monitor's
counts (``GET /v1/monitor``, ``faceaudit monitor``) equal the counts computed offline from the same searches;
``monitor.json`` signed with ``--sign-key`` verifies with ``verify-report``."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from service_fixtures import enrol, image, ledger_entries, make_gallery, make_key, start_server
from stores import stored_bytes

from faceaudit.gallery.declared import DeclaredAttributeError, DeclaredAttributes
from faceaudit.gallery.values import Consent

pytestmark = pytest.mark.slow

SECRET = "selfdescribed-Qzvx"
"""A declared value distinctive enough for a byte search of the store."""
PEOPLE = (("dec-0002", "0002", "F"), ("dec-0005", "0005", "M"), ("dec-0007", "0007", "F"))
DECLARED = {"declared_consent_basis": "bias-monitoring consent form B-2", "declared_consent_by": "desk"}


@pytest.fixture(scope="module")
def server(module_store):
    store = module_store
    make_gallery(store, n_synthetic=20)
    keys = {p: make_key(store, p, r) for p, r in (("enroller", "enroller"), ("searcher", "searcher"),
            ("rev-1", "reviewer"), ("rev-2", "reviewer"), ("auditor", "auditor"), ("dpo", "dpo"))}  # fmt: skip
    srv = start_server(store)
    srv.keys = keys
    for ref, face, sex in PEOPLE:
        enrol(srv, "enroller", ref, face, declared=[f"sex={sex}", f"group={SECRET}-{ref}"], **DECLARED)
    yield srv
    srv.stop()


def _identify(server, face: str) -> dict:
    with server.client("searcher") as c:
        r = c.post(
            "/v1/identify", files={"image": image(face)}, data={"purpose": "monitoring test", "case": "M-1"}
        )
    assert r.status_code == 200, r.text
    return r.json()


def _review(server, sid: str, decision: str, ref: str | None = None) -> None:
    for who in ("rev-1", "rev-2"):
        with server.client(who) as c:
            r = c.post(
                f"/v1/searches/{sid}/reviews", json={"decision": decision, "subject_ref": ref, "reason": "x"}
            )
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def searches(server):
    """Three searches, decided by two reviewers who know the truth: two confirmed mates, one rejected."""
    out = []
    for ref, face, _ in PEOPLE:
        s = _identify(server, face)
        if ref == "dec-0005":
            _review(server, s["search_id"], "reject")
        else:
            _review(server, s["search_id"], "confirm", ref)
        with server.client("rev-1") as c:
            out.append(c.get(f"/v1/searches/{s['search_id']}").json())
        assert SECRET not in json.dumps(s)
    return out


def test_declared_attributes_need_their_own_consent_and_clean_keys(server):
    with server.client("enroller") as c:
        r = c.post("/v1/subjects", files=[("images", image("0002"))],
                   data={"subject_ref": "x-1", "name": "X", "consent_basis": "form", "consent_by": "reg",
                         "declared": ["sex=F"]})  # fmt: skip
    assert r.status_code == 422 and "declared_consent_basis" in r.text, r.text
    with pytest.raises(DeclaredAttributeError):
        DeclaredAttributes.parse(["Not A Key=1"], "b", "c")
    with pytest.raises(DeclaredAttributeError):
        DeclaredAttributes.parse(["sex"], "b", "c")
    assert DeclaredAttributes({"Sex": " F "}, Consent("b", "c")).values == {"sex": "F"}


def test_declared_values_are_sealed_and_shown_to_no_one_per_person(server, searches):
    store = server.store
    assert SECRET.encode() not in stored_bytes(store)  # sealed: not even on disk in the clear
    with store.raw() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM declared_attributes") >= 3
    with server.client("dpo") as c:
        assert SECRET not in c.get("/v1/subjects").text
    assert all(SECRET not in json.dumps(s) and "sex" not in json.dumps(s["candidates"]) for s in searches)
    enrolments = [e for e in ledger_entries(store, "enroll") if "declared" in e["params"]]
    assert len(enrolments) == 3
    for e in enrolments:
        assert re.fullmatch(r"[0-9a-f]{64}", e["params"]["declared"]) and SECRET not in json.dumps(e)


def _offline(searches: list[dict]) -> dict:
    """The counts computed straight from the searches as the API returns them."""
    confirmed = [s for s in searches if s["status"] == "confirmed"]
    false = sum(
        1 for s in searches if s["status"] in ("confirmed", "rejected")
        for c in s["candidates"] if c["above_threshold"] and c["subject_ref"] != s["confirmed_subject"]
    )  # fmt: skip
    misses = sum(
        1 for s in confirmed for c in s["candidates"]
        if c["subject_ref"] == s["confirmed_subject"] and (c["rank"] != 1 or not c["above_threshold"])
    )  # fmt: skip
    return {"searches": len(searches), "confirmed": len(confirmed), "false": false, "misses": misses}


def test_the_monitor_counts_equal_the_offline_counts_and_only_auditors_see_them(server, searches):
    with server.client("rev-1") as c:
        assert c.get("/v1/monitor").status_code == 403
    with server.client("auditor") as c:
        r = c.get("/v1/monitor", params={"k": 2})
    assert r.status_code == 200, r.text
    doc = r.json()
    (w,) = doc["windows"]
    want = _offline(searches)
    got = {"searches": w["volume"]["searches"], "confirmed": w["misses"]["confirmed"],
           "false": w["false_candidates"]["total"], "misses": w["misses"]["misses"]}  # fmt: skip
    assert got == want and want["confirmed"] == 2
    # two confirmed F subjects: F has 2 >= k subjects, M none, so both are hidden (a lone suppressed group)
    assert w["misses"]["by_group"]["F"]["suppressed"] and w["misses"]["by_group"]["M"]["suppressed"]
    assert doc["gallery"]["by_group"]["(undeclared)"] == {"subjects": 20}
    text = json.dumps(doc)
    assert all(ref not in text for ref, _, _ in PEOPLE) and SECRET not in text
    assert ledger_entries(server.store, "monitor")[-1]["actor"] == "auditor"


def test_monitor_json_is_signed_and_verifies(server, searches, tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    out, html = tmp_path / "monitor.json", tmp_path / "monitor.html"
    r = run_cli("monitor", *server.store.args(), "--operator", "aud-cli", "--k", "2", "--out", str(out),
                "--html", str(html), "--sign-key", str(priv))  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert (
        doc["schema"] == "faceaudit.monitor/1"
        and doc["windows"][0]["false_candidates"]["total"] == _offline(searches)["false"]
    )
    assert "<script" not in html.read_text() and "invisible" in html.read_text()
    r = run_cli("verify-report", str(out), "--public-key", str(pub))
    assert r.returncode == 0 and "signature: valid" in r.stdout, r.stderr
    doc["k"] = 1  # tampered
    out.write_text(json.dumps(doc))
    assert run_cli("verify-report", str(out), "--public-key", str(pub)).returncode != 0


def test_erasure_takes_the_declared_attributes_with_the_subject(server, searches):
    store = server.store
    with store.raw() as conn:
        sealed = bytes(
            conn.scalar(
                "SELECT d.sealed FROM declared_attributes d JOIN subjects s ON s.id = d.subject_id "
                "WHERE s.subject_ref = ?",
                ("dec-0007",),
            )
        )
    assert sealed in stored_bytes(store)
    with store.raw() as conn:
        before = conn.scalar("SELECT COUNT(*) FROM declared_attributes")
    with server.client("dpo") as c:
        r = c.delete("/v1/subjects/dec-0007", params={"reason": "erasure request"})
    assert r.status_code == 200, r.text
    with store.raw() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM declared_attributes") == before - 1
    if store.pg:  # VACUUM FULL rewrites the table files without the dead tuples (docs/scaling.md)
        assert run_cli("gallery", "scrub", "--vacuum", "--db", store.db).returncode == 0
    assert sealed not in stored_bytes(store)


def test_the_cli_enrols_declared_attributes_with_their_own_consent(server, searches):
    store = server.store
    face = str(image("0005")[0])
    path = store.folder / face
    path.write_bytes(image("0005")[1])
    base = ("gallery", "enroll", "cli-1", str(path), *store.args(), "--name", "Cli Person", "--operator", "desk",
            "--consent-basis", "form", "--consent-by", "reg", "--declare", "sex=M")  # fmt: skip
    with store.raw() as conn:
        before = conn.scalar("SELECT COUNT(*) FROM declared_attributes")
    r = run_cli(*base)
    assert r.returncode == 2 and "--declared-consent-basis" in r.stderr, r.stderr
    r = run_cli(*base, "--declared-consent-basis", "bias form", "--declared-consent-by", "desk")
    assert r.returncode == 0, r.stderr
    with store.raw() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM declared_attributes") == before + 1


def test_withdrawing_declared_attributes_is_ledgered_and_leaves_the_subject(server, searches):
    store = server.store
    with store.raw() as conn:
        sealed = bytes(
            conn.scalar(
                "SELECT d.sealed FROM declared_attributes d JOIN subjects s ON s.id = d.subject_id "
                "WHERE s.subject_ref = ?",
                ("dec-0005",),
            )
        )
    with server.client("rev-1") as c:
        assert c.delete("/v1/subjects/dec-0005/declared", params={"reason": "x"}).status_code == 403
    with server.client("dpo") as c:
        r = c.delete("/v1/subjects/dec-0005/declared", params={"reason": "consent withdrawn"})
        assert r.status_code == 200, r.text
        assert c.delete("/v1/subjects/dec-0005/declared", params={"reason": "again"}).status_code == 400
        assert "dec-0005" in c.get("/v1/subjects").text  # still enrolled
    (entry,) = ledger_entries(store, "withdraw_declared")
    assert entry["actor"] == "dpo" and entry["result"]["subject"].startswith("subj:")
    if store.pg:
        assert run_cli("gallery", "scrub", "--vacuum", "--db", store.db).returncode == 0
    assert sealed not in stored_bytes(store)
