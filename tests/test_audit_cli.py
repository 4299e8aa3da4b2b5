"""The audit commands end to end (real subprocesses, real faces from tests/data/fairface)."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import FAIRFACE, SHARED, run_cli


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The 8 FairFace fixtures with made-up subject ids: the four Indian women's images form two 'subjects'
    (labels for the test only), so the female group has mated pairs and the male group has none."""
    d = tmp_path_factory.mktemp("labelled")
    for p in FAIRFACE.glob("*.jpg"):
        shutil.copy(p, d / p.name)
    with open(FAIRFACE / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    subjects = {"fairface_0002.jpg": "s1", "fairface_0004.jpg": "s1", "fairface_0005.jpg": "s2",
                "fairface_0008.jpg": "s2", "fairface_0003.jpg": "s2"}  # fmt: skip
    for r in rows:
        r["subject_id"] = subjects.get(r["path"], "")
        r["sex_label_source"] = "FairFace annotators"
    with open(d / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return d


def test_unknown_group_column(tmp_path):
    p = run_cli("audit", str(FAIRFACE / "manifest.csv"), "--root", str(FAIRFACE), "--group-by", "sex,colour",
                "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 2
    assert "unknown group column 'colour'" in p.stderr and "age_group" in p.stderr
    assert not (tmp_path / "o").exists()


def test_audit_warns_for_group_without_mated_pairs_and_still_runs(tmp_path, labelled):
    out = tmp_path / "out"
    p = run_cli("audit", str(labelled / "manifest.csv"), "--root", str(labelled), "--group-by", "sex",
                "--target-fmr", "0.1", "--out", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "warning: group 'male' has no mated pairs" in p.stderr
    doc = json.loads((out / "audit.json").read_text())
    assert doc["schema"] == "faceaudit.audit/1"
    assert doc["config"]["label_source"].startswith("sex_label_source: FairFace annotators")
    assert len(doc["config"]["manifest_sha256"]) == 64
    rows = {r["group"]: r for r in doc["by_group"]}
    # s1: 2 female images -> 1 pair; s2: 2 female + 1 female (0003) -> 3 pairs; all female
    assert rows["female"]["n_mated"] == 4 and rows["male"]["n_mated"] == 0
    assert rows["male"]["fnmr"] is None and "no mated" in rows["male"]["fnmr_note"]
    # female: 5 images, 10 pairs, 4 mated -> 6 non-mated; male: 3 images -> 3
    assert rows["female"]["n_non_mated"] == 6 and rows["male"]["n_non_mated"] == 3
    assert rows["female"]["policy"] == "central" and rows["female"]["fmr_ci_method"].startswith(
        "clopper-pearson"
    )
    table = pd.read_csv(out / "by_group.csv")
    assert set(table["group"]) == {"female", "male"}
    html = (out / "report.html").read_text()
    assert doc["headline"][:40] in html.replace("&#39;", "'")
    assert "<svg" in html and "FairFace annotators" in html
    assert not re.search(r"""(src|href)=["']https?:""", html)  # self-contained: nothing fetched


def test_templates_reuse_gives_the_same_audit(tmp_path, labelled):
    npz = tmp_path / "t.npz"
    p = run_cli("embed", str(labelled / "manifest.csv"), "--root", str(labelled), "--out", str(npz))
    assert p.returncode == 0, p.stderr
    import faceaudit

    a = faceaudit.run_audit(labelled / "manifest.csv", labelled, "sex", target_fmr=0.1)
    b = faceaudit.run_audit(labelled / "manifest.csv", group_by="sex", templates=npz, target_fmr=0.1)
    cols = ["n_mated", "n_non_mated", "fmr_errors", "fnmr_errors", "threshold"]
    pd.testing.assert_frame_equal(a.by_group[cols], b.by_group[cols])
    assert isinstance(a.by_group, pd.DataFrame) and a.summary["0.1"]["alpha"] == 0.5
    assert json.loads(a.to_json())["config"]["templates"] is None
    assert "<html" in a.to_html()


def _write_scores(path, rows, header=("score", "mated", "sex_a", "sex_b")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_scores_csv_with_non_numeric_score_names_the_line(tmp_path):
    f = tmp_path / "s.csv"
    _write_scores(f, [(0.1, 0, "f", "f"), (0.9, 1, "f", "f"), ("n/a", 0, "m", "m")])
    p = run_cli("audit-scores", str(f), "--group-by", "sex", "--out", str(tmp_path / "o"))
    assert p.returncode == 3
    assert "line 4" in p.stderr and "'n/a'" in p.stderr and "not a number" in p.stderr


def test_audit_scores_distances(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for sex, shift in (("f", 0.1), ("m", 0.0)):
        rows += [(round(rng.normal(1.2 - shift, 0.1), 4), 0, sex, sex) for _ in range(3000)]
        rows += [(round(rng.normal(0.5, 0.1), 4), 1, sex, sex) for _ in range(200)]
    rows += [(round(rng.normal(1.3, 0.1), 4), 0, "f", "m") for _ in range(1000)]
    f = tmp_path / "s.csv"
    _write_scores(f, rows)
    out = tmp_path / "o"
    p = run_cli("audit-scores", str(f), "--group-by", "sex", "--lower-is-better", "--target-fmr", "1e-2",
                "--out", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "audit.json").read_text())
    tau = doc["thresholds"]["0.01"]["threshold"]
    arr = np.array([r[0] for r in rows])
    mated = np.array([r[1] for r in rows]) == 1
    # a match is a distance <= tau; the overall FMR meets the target
    assert (arr[~mated] <= tau).mean() <= 0.01
    by = {r["group"]: r for r in doc["by_group"]}
    assert by["f"]["fmr"] > by["m"]["fmr"]  # women's non-mated distances are shifted closer
    assert doc["cross_group_fmr"]["0.01"]["groups"] == ["f", "m"]
    assert "f–f non-mated comparisons false-match" in doc["headline"]


def test_audit_scores_group_columns_and_bad_mated(tmp_path):
    f = tmp_path / "s.csv"
    _write_scores(
        f, [(0.1, 0, "a", "b"), (0.2, "yes", "a", "a")], header=("score", "mated", "group_a", "group_b")
    )
    p = run_cli("audit-scores", str(f), "--out", str(tmp_path / "o"))
    assert p.returncode == 3 and "line 3" in p.stderr and "mated" in p.stderr


def test_demo_on_a_few_images(tmp_path):
    out = tmp_path / "demo"
    p = run_cli("demo", "--sample", str(FAIRFACE), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "no repeat identities" in p.stdout and "faceaudit audit" in p.stdout
    assert (out / "report.html").is_file() and (out / "by-sex" / "report.html").is_file()
    doc = json.loads((out / "audit.json").read_text())
    assert doc["config"]["group_by"] == ["race", "sex"]
    assert doc["config"]["runtime"].startswith("detector=") and "embedder=" in doc["config"]["runtime"]
    assert doc["config"]["runtime"] in (out / "report.html").read_text()
    assert "no repeat identities" in " ".join(doc["warnings"])
    assert "not measurable with this data" in (out / "report.html").read_text()
    assert "cannot support a 1:N audit" in p.stdout and "faceaudit audit-identification" in p.stdout


def test_demo_shows_the_1n_section_on_a_sample_with_identities(tmp_path, labelled):
    p = run_cli("demo", "--sample", str(labelled), "--out", str(tmp_path / "demo"))
    assert p.returncode == 0, p.stderr
    assert "== 1:N identification: gallery" in p.stdout and "FNIR rank 1" in p.stdout
    doc = json.loads((tmp_path / "demo" / "identification" / "audit.json").read_text())
    assert doc["identification"]["schema"] == "faceaudit.identification/1"


@pytest.mark.skipif(
    not (SHARED / "nist-frvt3-annex15").is_dir(), reason="needs ../shared/datasets (NIST Annex 15)"
)
def test_fairness_on_the_whole_annex15_file():
    p = run_cli("fairness", str(SHARED / "nist-frvt3-annex15" / "nist-frvt3-annex15-data-flat.csv"), "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 126 and all(len(r["groups"]) == 8 for r in rows)
    cyber = next(r for r in rows if r["name"] == "cyberextruder-002")
    assert cyber["fmr_max_min_ratio"] == pytest.approx(39.8107170553497)


def test_compare_policies_side_by_side(tmp_path, labelled):
    import faceaudit

    r = faceaudit.run_audit(labelled / "manifest.csv", labelled, "sex", target_fmr=0.1, compare_policies=True)
    pc = r.policy_comparison
    assert set(pc.index.get_level_values("policy")) == {"central", "largest", "best"}
    assert set(pc.index.get_level_values("group")) == {"female", "male"}
    assert "policy_comparison" in json.loads(r.to_json())
    assert "Face-selection policies compared" in r.to_html()


def test_audit_scores_finds_label_columns_and_skips_subjects(tmp_path):
    from faceaudit.audit import audit_scores

    f = tmp_path / "s.csv"
    rows = [(0.9, 1, "f", "f", "s1", "s1"), (0.2, 0, "f", "m", "s1", "s2"), (0.3, 0, "m", "m", "s2", "s3")]
    _write_scores(f, rows * 20, header=("score", "mated", "sex_a", "sex_b", "subject_a", "subject_b"))
    r = audit_scores(f, target_fmr=0.5, label_source="vendor's enrolment records")
    assert r.groups == ["f", "m"]
    assert r.by_group.loc[(0.5, "f"), "n_mated"] == 20 and r.by_group.loc[(0.5, "m"), "n_non_mated"] == 20
    assert r.config["label_source"] == "vendor's enrolment records"
    assert "vendor&#39;s enrolment records" in r.to_html()


def test_failure_to_enrol_per_group_from_templates(tmp_path):
    """An npz with a no-face image and an unreadable one: they count in FTE and in no comparison."""
    import faceaudit
    from faceaudit.pipeline.batch import EmbedResult

    rng = np.random.default_rng(0)
    n = 12
    paths = [f"img{i}.jpg" for i in range(n)]
    status = ["ok"] * n
    status[1], status[7] = "no_face", "error: not an image"
    x = rng.standard_normal((n, 8)).astype(np.float32)
    x[[1, 7]] = 0
    nan = np.full(n, np.nan, np.float32)
    n_faces = np.array([1] * n, np.int32)
    n_faces[[0, 3]] = 2
    n_faces[[1, 7]] = 0
    EmbedResult(paths, x, status, n_faces, nan, nan, nan, nan, "test-model", "largest").save(
        tmp_path / "t.npz"
    )
    sex = ["female"] * 6 + ["male"] * 6
    subj = ["a", "a", "b", "b", "", "", "c", "c", "c", "", "", ""]
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": sex}).to_csv(tmp_path / "m.csv", index=False)
    r = faceaudit.run_audit(tmp_path / "m.csv", group_by="sex", templates=tmp_path / "t.npz", target_fmr=0.2)
    f, m = r.by_group.loc[(0.2, "female")], r.by_group.loc[(0.2, "male")]
    assert (f["n_fte"], f["n_no_face"], f["n_unreadable"], f["fte"]) == (1, 1, 0, 1 / 6)
    assert (m["n_fte"], m["n_no_face"], m["n_unreadable"]) == (1, 0, 1)
    assert f["n_multi_face"] == 2 and f["policy"] == "largest" and r.config["model_id"] == "test-model"
    assert r.config["runtime"] == "not recorded in the templates file"
    # female: 5 templates -> 10 pairs; subject a lost one image, b keeps its pair -> 1 mated, 9 non-mated
    assert (f["n_mated"], f["n_non_mated"]) == (1, 9)
    # male: 5 templates; subject c keeps 2 of 3 images -> 1 mated, 9 non-mated
    assert (m["n_mated"], m["n_non_mated"]) == (1, 9)
    assert list(r.ratio().columns) == ["fmr", "fnmr"] and len(r.difference()) == 1
    assert "no template" in " ".join(r.warnings)


def _two_group_scores(path, n_non: int, fm_f: int, fm_m: int) -> None:
    """n_non same-group non-mated scores per sex, fm_* of them high (false matches at any τ ≤ 0.9)."""
    rows = []
    for sex, fm in (("f", fm_f), ("m", fm_m)):
        rows += [(0.95, 0, sex, sex)] * fm + [(0.1, 0, sex, sex)] * (n_non - fm)
        rows += [(0.97, 1, sex, sex)] * 50
    _write_scores(path, rows)


def test_headline_warns_when_the_intervals_overlap(tmp_path):
    from faceaudit.audit import audit_scores

    few = tmp_path / "few.csv"
    _two_group_scores(few, n_non=2000, fm_f=3, fm_m=1)  # 3 vs 1 errors: a 3× ratio that the data cannot carry
    r = audit_scores(few, group_by="sex", target_fmr=1e-2)
    assert "3.0× as often as" in r.headline and "intervals overlap" in r.headline

    many = tmp_path / "many.csv"
    _two_group_scores(many, n_non=20000, fm_f=60, fm_m=10)  # 6× with tight intervals
    r = audit_scores(many, group_by="sex", target_fmr=1e-2)
    assert "6.0× as often as" in r.headline and "overlap" not in r.headline
