"""The monitor simulation's logic (benchmarks/monitor_simulation.py) on the faces of tests/data, on both stores,
through a real ``faceaudit serve``: for both periods every count ``faceaudit monitor`` shows equals the count
computed offline from the same search answers and reviews, and a signed baseline is read and compared. (The
degradation that raises an alert needs more faces than tests/data holds: the benchmark shows it on LFW; the
alert rule itself is tested in tests/test_audit_monitor.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from faceaudit.audit.signing import sign

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from monitor_simulation import Person, simulate  # noqa: E402

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[1] / "data"
FAIRFACE = [("0001", "male"), ("0002", "female"), ("0003", "female"), ("0005", "female"), ("0007", "male")]


def _people() -> list[Person]:
    people = [Person(f"ff-{n}", g, DATA / "fairface" / f"fairface_{n}.jpg", DATA / "fairface" / f"fairface_{n}.jpg")
              for n, g in FAIRFACE]  # fmt: skip
    fr = DATA / "face_recognition"
    people.append(Person("obama", "male", fr / "obama.jpg", fr / "obama2.jpg"))
    return people


def _baseline(folder: Path) -> tuple[Path, Path]:
    key = ed25519.Ed25519PrivateKey.generate()
    priv, pub = folder / "k.pem", folder / "k.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    by_group = {g: {"fnir_rank1": {"value": 0.0}} for g in ("female", "male")}
    doc = {"schema": "faceaudit.audit/3", "identification": {"targets": [
        {"target_fpir": 0.1, "threshold": 0.36, "by_group": by_group, "false_positive_candidates": {}}]}}  # fmt: skip
    path = folder / "audit.json"
    path.write_text(json.dumps(sign(doc, priv)))
    return path, pub


def test_operational_counts_equal_offline_counts(store):
    audit, pub = _baseline(store.folder)
    result = simulate(store, _people(), [], degrade="female", k=2, baseline=audit, baseline_key=pub)
    for period in result["periods"]:
        assert period["equal"], period
        assert period["monitor"]["searches"] == 6 - period["refused"]
        assert not [a for a in period["alerts"] if a["group"] == "male"]
    shown = result["periods"][0]["monitor"]["by_group"]
    assert (
        shown["male"]["miss_trials"] == 3 and shown["female"]["miss_trials"] == 3
    )  # counts per group compared
