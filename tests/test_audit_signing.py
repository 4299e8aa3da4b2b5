"""Signed, reproducible reports: Ed25519 over audit.json, tamper checks, --reproduce, separate alphas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import faceaudit
from faceaudit.audit.given_scores import audit_scores
from faceaudit.audit.signing import ReportSignatureError
from faceaudit.audit.verify import verify_report
from faceaudit.pipeline.batch import EmbedResult


@pytest.fixture
def keys(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    (tmp_path / "other.pub.pem").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return priv, pub, tmp_path / "other.pub.pem"


def _scores(path, seed=0, n=6000):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    mated = rng.random(n) < 0.05
    s = np.where(mated, rng.normal(0.6, 0.1, n), rng.normal(0.0, 0.1, n) + (sex == "female") * 0.03)
    pd.DataFrame({"score": np.round(s, 6), "mated": mated.astype(int), "sex_a": sex, "sex_b": sex}).to_csv(
        path, index=False
    )


def _edit(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False))


def test_signature_detects_a_changed_number_and_a_changed_manifest_hash(tmp_path, keys):
    priv, pub, other = keys
    _scores(tmp_path / "s.csv")
    r = audit_scores(
        tmp_path / "s.csv", group_by="sex", target_fmr=1e-2, alpha={"fdr": 0.3, "garbe": 0.5, "ir": 0.7}
    )
    out = r.save(tmp_path / "o", sign_key=priv)["json"]
    doc = json.loads(out.read_text())
    assert doc["signature"]["algorithm"] == "Ed25519" and doc["config"]["scores_sha256"]
    assert doc["config"]["alpha"] == {"fdr": 0.3, "garbe": 0.5, "ir": 0.7}
    assert doc["summary"]["0.01"]["alpha_ir"] == 0.7
    assert verify_report(out, public_key=pub).key_fingerprint
    with pytest.raises(ReportSignatureError, match="another key"):
        verify_report(out, public_key=other)

    one_number = tmp_path / "o" / "number.json"
    one_number.write_text(out.read_text())
    _edit(one_number, lambda d: d["by_group"][0].update(fmr_errors=d["by_group"][0]["fmr_errors"] + 1))
    with pytest.raises(ReportSignatureError, match="changed after signing"):
        verify_report(one_number, public_key=pub)

    hashed = tmp_path / "o" / "hash.json"
    hashed.write_text(out.read_text())
    _edit(hashed, lambda d: d["config"].update(scores_sha256="0" * 64))
    p = run_cli("verify-report", str(hashed), "--public-key", str(pub))
    assert p.returncode == 1 and "changed after signing" in p.stderr


def test_reproduce_recomputes_every_number_and_lists_differences(tmp_path, keys):
    priv, pub, _ = keys
    _scores(tmp_path / "s.csv")
    audit_scores(tmp_path / "s.csv", group_by="sex", target_fmr=1e-2).save(tmp_path / "o", sign_key=priv)
    report = tmp_path / "o" / "audit.json"
    v = verify_report(report, public_key=pub, reproduce_from={"scores": tmp_path / "s.csv"})
    assert v.ok and v.reproduced
    _scores(tmp_path / "other.csv", seed=1)
    p = run_cli("verify-report", str(report), "--reproduce", "--scores", str(tmp_path / "other.csv"))
    assert p.returncode == 1 and "config.scores_sha256" in p.stdout and "thresholds." in p.stdout


def test_reproduce_a_manifest_audit_from_templates(tmp_path, keys):
    priv, pub, _ = keys
    rng = np.random.default_rng(2)
    n = 90
    subj = np.repeat(np.arange(30), 3)
    x = (rng.standard_normal((30, 16))[subj] + rng.standard_normal((n, 16))).astype(np.float32)
    paths = [f"i{i}.jpg" for i in range(n)]
    nan = np.full(n, np.nan, np.float32)
    EmbedResult(paths, x, ["ok"] * n, np.ones(n, np.int32), nan, nan, nan, nan, "m", "c").save(
        tmp_path / "t.npz"
    )
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": np.where(subj % 2, "f", "m")}).to_csv(
        tmp_path / "m.csv", index=False
    )
    r = faceaudit.run_audit(
        tmp_path / "m.csv", group_by="sex", templates=tmp_path / "t.npz", target_fmr=0.05, bootstrap=100
    )
    r.save(tmp_path / "o", sign_key=priv)
    report = tmp_path / "o" / "audit.json"
    assert json.loads(report.read_text())["config"]["templates_sha256"]
    v = verify_report(report, public_key=pub, reproduce_from={"templates": tmp_path / "t.npz"})
    assert v.ok, v.differences[:5]
    x[0] += 0.5
    EmbedResult(paths, x, ["ok"] * n, np.ones(n, np.int32), nan, nan, nan, nan, "m", "c").save(
        tmp_path / "t2.npz"
    )
    v = verify_report(report, reproduce_from={"templates": tmp_path / "t2.npz"})
    assert not v.ok and v.differences[0][0] == "config.templates_sha256"


def test_a_signed_report_with_a_duplicated_key_is_refused(tmp_path, keys):
    priv, pub, _ = keys
    _scores(tmp_path / "s.csv")
    out = audit_scores(tmp_path / "s.csv", group_by="sex", target_fmr=1e-2).save(
        tmp_path / "o", sign_key=priv
    )
    text = out["json"].read_text()
    doc = json.loads(text)
    errors = doc["by_group"][0]["fmr_errors"]
    # the signed value stays last (Python keeps the last), a first-value reader would see 0
    needle = f'"fmr_errors": {errors}'
    assert needle in text
    dup = tmp_path / "dup.json"
    dup.write_text(text.replace(needle, f'"fmr_errors": 0, {needle}', 1))
    assert json.loads(dup.read_text())["by_group"][0]["fmr_errors"] == errors
    with pytest.raises(ReportSignatureError, match="'fmr_errors' appears twice"):
        verify_report(dup, public_key=pub)
    p = run_cli("verify-report", str(dup), "--public-key", str(pub))
    assert p.returncode == 1 and "appears twice" in p.stderr
    assert verify_report(out["json"], public_key=pub).key_fingerprint
