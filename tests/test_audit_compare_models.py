"""Model comparison: the same manifest, two models' templates, one report with the side-by-side table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

import faceaudit
from faceaudit.errors import UsageError
from faceaudit.pipeline.batch import EmbedResult


def _npz(path, model_id: str, noise_female: float, seed: int, subj: np.ndarray, female: np.ndarray) -> None:
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((subj.max() + 1, 32))
    noise = np.where(female[:, None], noise_female, 0.8)
    x = (centre[subj] + noise * rng.standard_normal((len(subj), 32))).astype(np.float32)
    nan = np.full(len(subj), np.nan, np.float32)
    ones = np.ones(len(subj), np.int32)
    EmbedResult([f"i{i}.jpg" for i in range(len(subj))], x, ["ok"] * len(subj), ones, nan, nan, nan, nan,
                model_id, "central").save(path)  # fmt: skip


def test_two_models_side_by_side_with_verdicts(tmp_path):
    subj = np.repeat(np.arange(200), 3)
    female = subj % 2 == 0
    pd.DataFrame(
        {
            "path": [f"i{i}.jpg" for i in range(len(subj))],
            "subject_id": subj,
            "sex": np.where(female, "f", "m"),
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    _npz(
        tmp_path / "a.npz", "a-synthetic", 1.6, 0, subj, female
    )  # women's templates much noisier: big FNMR gap
    _npz(tmp_path / "b.npz", "b-synthetic", 0.85, 0, subj, female)  # nearly even
    p = run_cli("audit", str(tmp_path / "m.csv"), "--group-by", "sex", "--model", "a,b", "--templates",
                f"{tmp_path / 'a.npz'},{tmp_path / 'b.npz'}", "--target-fmr", "1e-2", "--bootstrap", "200",
                "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Models compared" in p.stdout and "==== model b (b-synthetic)" in p.stdout
    doc = json.loads((tmp_path / "o" / "audit.json").read_text())
    rows = {r["model"]: r for r in doc["model_comparison"]["by_model"]}
    assert set(rows) == {"a-synthetic", "b-synthetic"}
    assert rows["a-synthetic"]["fnmr_max_min_ratio"] > rows["b-synthetic"]["fnmr_max_min_ratio"]
    fnmr = next(v for v in doc["model_comparison"]["verdicts"] if v["rate"] == "FNMR")
    assert fnmr["smaller"] == "b-synthetic" and fnmr["established"] is True
    assert "Models compared" in (tmp_path / "o" / "report.html").read_text()
    assert (tmp_path / "o" / "model-2" / "audit.json").is_file()


def test_audit_identification_compares_models_and_refuses_a_model_that_did_not_make_the_templates(tmp_path):
    subj = np.repeat(np.arange(120), 3)
    female = subj % 2 == 0
    pd.DataFrame(
        {
            "path": [f"i{i}.jpg" for i in range(len(subj))],
            "subject_id": subj,
            "sex": np.where(female, "f", "m"),
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    _npz(tmp_path / "a.npz", "a-synthetic", 1.6, 0, subj, female)
    _npz(tmp_path / "b.npz", "b-synthetic", 0.85, 0, subj, female)
    common = ["--group-by", "sex", "--target-fmr", "1e-2", "--target-fpir", "0.1", "--bootstrap", "50"]
    p = run_cli("audit-identification", str(tmp_path / "m.csv"), *common, "--model", "a,b", "--templates",
                f"{tmp_path / 'a.npz'},{tmp_path / 'b.npz'}", "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "1:N, models compared" in p.stdout
    doc = json.loads((tmp_path / "o" / "audit.json").read_text())
    rows = {r["model"]: r for r in doc["model_comparison"]["identification_by_model"]}
    assert (
        set(rows) == {"a-synthetic", "b-synthetic"}
        and doc["identification"]["targets"][0]["target_fpir"] == 0.1
    )
    assert (
        json.loads((tmp_path / "o" / "model-2" / "audit.json").read_text())["config"]["model_id"]
        == "b-synthetic"
    )
    p = run_cli("audit-identification", str(tmp_path / "m.csv"), *common, "--model", "dlib", "--templates",
                str(tmp_path / "a.npz"), "--out", str(tmp_path / "x"))  # fmt: skip
    assert p.returncode == 2 and "--model dlib does not match the templates in" in p.stderr, p.stderr
    assert "a-synthetic" in p.stderr
    with pytest.raises(UsageError, match="--model onnx:other.onnx does not match the templates"):
        faceaudit.run_audit(
            tmp_path / "m.csv", group_by="sex", templates=tmp_path / "a.npz", model="onnx:other.onnx"
        )
    # without --model the templates' own model is audited: every other CLI test with --templates does that
