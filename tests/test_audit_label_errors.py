"""Suspected label errors (non-mated above the median mated score) are listed; --exclude removes images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from conftest import run_cli

from faceaudit.audit.run_identification import audit_identification
from faceaudit.audit.verify import verify_report
from faceaudit.pipeline.batch import EmbedResult


def _files(tmp_path):
    """60 people of 3 images; person 7 appears again as 'alias7' (2 more images of the same face)."""
    rng = np.random.default_rng(3)
    subj = [f"p{s}" for s in np.repeat(np.arange(60), 3)] + ["alias7", "alias7"]
    centre = rng.standard_normal((61, 128))  # face-like: non-mated cosines spread about 0.09
    idx = np.r_[np.repeat(np.arange(60), 3), 7, 7]
    x = (centre[idx] + 0.6 * rng.standard_normal((len(idx), 128))).astype(np.float32)
    paths = [f"i{i}.jpg" for i in range(len(idx))]
    nan = np.full(len(idx), np.nan, np.float32)
    EmbedResult(paths, x, ["ok"] * len(idx), np.ones(len(idx), np.int32), nan, nan, nan, nan, "m", "c").save(
        tmp_path / "t.npz"
    )
    sex = np.where(idx % 2 == 0, "female", "male")
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": sex}).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv", tmp_path / "t.npz"


def test_aliases_are_listed_and_can_be_excluded_with_a_reason(tmp_path):
    m, t = _files(tmp_path)
    options = {"group_by": "sex", "templates": t, "target_fpir": [0.1], "target_fmr": 0.05, "bootstrap": 0}
    found = False
    for seed in range(6):  # a seed where alias7 is searched while p7 is enrolled (or the reverse)
        r = audit_identification(m, seed=seed, **options)
        listed = r.identification.label_check["listed"]
        found = any({e["probe_subject"], e["candidate_subject"]} == {"p7", "alias7"} for e in listed)
        if found:
            break
    assert found
    pairs = {frozenset((e["subject_a"], e["subject_b"])) for e in r.label_check["listed"]}
    assert pairs == {frozenset(("p7", "alias7"))}  # 1:1: the alias pairs, and no false alarm
    assert r.label_check["threshold"] > 0 and r.label_check["count"] >= 4
    assert any("possible label errors" in w for w in r.warnings)
    html = r.to_html()
    assert "Suspected label errors: 1:1 non-mated comparisons" in html and "alias7" in html

    pd.DataFrame({"path": ["i180.jpg", "i181.jpg"], "reason": "alias7 is p7 (same person)"}).to_csv(
        tmp_path / "x.csv", index=False
    )
    p = run_cli("audit-identification", str(m), "--group-by", "sex", "--templates", str(t), "--target-fpir", "0.1",
                "--target-fmr", "0.05", "--bootstrap", "0", "--seed", str(seed), "--exclude", str(tmp_path / "x.csv"),
                "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "o" / "audit.json").read_text())
    ex = doc["config"]["excluded"]
    assert ex["images_excluded"] == 2 and ex["reasons"] == {"alias7 is p7 (same person)": 2}
    assert "2 images excluded (x.csv): alias7 is p7 (same person) (2)" in p.stderr
    assert not any("alias7" in json.dumps(e) for e in doc["label_check"]["listed"])
    assert (
        doc["identification"]["split"]["gallery_size"]
        + doc["identification"]["split"]["mated_searches"]
        + doc["identification"]["split"]["non_mated_searches"]
        == 180
    )
    v = verify_report(tmp_path / "o" / "audit.json", reproduce_from={"templates": t, "manifest": m})
    assert v.ok, v.differences
    pd.DataFrame({"path": ["nowhere.jpg"]}).to_csv(tmp_path / "bad.csv", index=False)
    p = run_cli("audit", str(m), "--group-by", "sex", "--templates", str(t), "--exclude", str(tmp_path / "bad.csv"),
                "--out", str(tmp_path / "b"))  # fmt: skip
    assert (
        p.returncode != 0
        and "bad.csv" in p.stderr
        and "line 2: 'nowhere.jpg' is not in the manifest" in p.stderr
    )
