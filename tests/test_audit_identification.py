"""1:N identification rates against an explicit loop over searches (ties at the threshold, empty groups)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceaudit.audit.identification import fpir_threshold, identification_rates, search, split_subjects
from faceaudit.audit.run_identification import identify


def make_data(seed: int, n: int):
    """±1/4 templates (exact scores: many ties), subjects of 1-4 images, groups 0-2 and unlabelled (-1);
    group 'd' (index 3) has no image at all."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 2, (n, 16)) * 2 - 1).astype(np.float32) / 4.0  # unit norm; scores in steps of 1/8
    subj = np.repeat(np.arange(n), rng.integers(1, 5, n))[:n]
    group = rng.integers(-1, 3, subj.max() + 1)[subj]
    return x, subj, group, ["a", "b", "c", "d"]


def loop_rates(x, subj, group, n_groups, split, tau, rank):
    """Each search against each gallery entry in Python: mate rank (ties against the mate), FNIR, FPIR."""
    gal = split.gallery
    out = {}
    for g in range(n_groups):
        fn1 = fnr = n_m = fp = n_nm = 0
        for probe, mate in [*zip(split.mated, split.mate, strict=True), *((p, -1) for p in split.non_mated)]:
            if group[probe] != g:
                continue
            scores = [float(np.dot(x[probe], x[e])) for e in gal]
            if mate >= 0:
                n_m += 1
                ms = scores[mate]
                r = 1 + sum(1 for j, s in enumerate(scores) if j != mate and s >= ms)
                fn1 += not (r == 1 and ms >= tau)
                fnr += not (r <= rank and ms >= tau)
            else:
                n_nm += 1
                fp += max(scores) >= tau
        out[g] = (fn1, fnr, n_m, fp, n_nm)
    return out


@pytest.mark.parametrize(("seed", "n", "rank"), [(0, 120, 3), (1, 90, 1)])
def test_rates_equal_an_explicit_loop_over_searches(seed, n, rank):
    x, subj, group, groups = make_data(seed, n)
    split = split_subjects(subj, seed=seed)
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1)])
    s = search(x[split.gallery], x[probes], mate, top=rank, block=7)
    targets = identification_rates(
        s, group[probes], mate >= 0, group[split.gallery], groups, targets=(0.3, 0.1), rank=rank
    )
    top_nm = np.sort([max(float(np.dot(x[p], x[e])) for e in split.gallery) for p in split.non_mated])
    tied = 0
    for t in targets:
        # the threshold lies just above a top score; with scores in steps of 1/8 that score is tied
        assert (top_nm >= t.threshold).sum() <= math.floor(t.target_fpir * len(top_nm))
        below = (top_nm == np.nextafter(t.threshold, -np.inf)).sum()
        assert below >= 1
        tied += below >= 2
        ref = loop_rates(x, subj, group, len(groups), split, t.threshold, rank)
        for g_i, g in enumerate(groups):
            r = t.rates[g]
            fn1, fnr, n_m, fp, n_nm = ref[g_i]
            assert (r.fnir_rank1.errors, r.fnir_rank1.trials) == (fn1, n_m)
            assert (r.fnir_rank_r.errors, r.fnir_rank_r.trials) == (fnr, n_m)
            assert (r.fpir.errors, r.fpir.trials) == (fp, n_nm)
        assert t.rates["d"].fpir.value is None and t.rates["d"].fnir_rank1.value is None  # the empty group
        assert sum(sum(c.values()) for c in t.false_positive_groups.values()) >= sum(
            ref[g][3] for g in range(len(groups))
        )
    assert tied


def test_mate_rank_counts_ties_against_the_mate():
    gallery = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    probes = np.array([[1, 0], [0, 1]], np.float32)
    s = search(gallery, probes, np.array([1, -1]), top=2)
    assert s.mate_rank[0] == 2 and s.mate_score[0] == pytest.approx(1.0)  # entry 0 ties with the mate
    assert s.scores[1, 0] == pytest.approx(1.0) and s.candidates[1, 0] == 2


def test_fpir_threshold_with_ties():
    top = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    assert fpir_threshold(top, 0.2) == np.nextafter(0.5, 1)  # one false positive allowed: above the tie
    assert fpir_threshold(top, 0.8) == np.nextafter(0.1, 1)
    tau = fpir_threshold(top.astype(np.float32), 0.2)
    assert tau == np.nextafter(np.float32(0.5), np.float32(1)) and (top.astype(np.float32) >= tau).sum() == 1


def test_split_is_seeded_and_covers_every_image_once():
    subj = np.repeat(np.arange(50), 3)
    a, b = split_subjects(subj, seed=4), split_subjects(subj, seed=4)
    np.testing.assert_array_equal(a.gallery, b.gallery)
    allidx = np.sort(np.concatenate([a.gallery, a.mated, a.non_mated]))
    np.testing.assert_array_equal(allidx, np.arange(150))
    assert set(subj[a.mated]) <= set(subj[a.gallery]) and not set(subj[a.non_mated]) & set(subj[a.gallery])
    np.testing.assert_array_equal(subj[a.gallery][a.mate], subj[a.mated])


def test_identify_reports_composition_and_warns_for_empty_groups():
    x, subj, group, groups = make_data(2, 200)
    r = identify(x, subj, group, groups, target_fpir=(0.1,), rank=5)
    d = r.to_dict()
    assert (
        d["schema"] == "faceaudit.identification/1"
        and d["split"]["gallery_size"] == len(np.unique(subj)) // 2
    )
    assert any("'d' has no mated searches" in w for w in r.warnings)
    assert sum(r.gallery_composition.values()) == d["split"]["gallery_size"]


def test_audit_identification_command_writes_the_block_and_the_section(tmp_path):
    import json

    import pandas as pd
    from conftest import run_cli

    from faceaudit.pipeline.batch import EmbedResult

    rng = np.random.default_rng(8)
    n_subj, per = 80, 3
    subj = np.repeat(np.arange(n_subj), per)
    x = (rng.standard_normal((n_subj, 24))[subj] + 0.8 * rng.standard_normal((len(subj), 24))).astype(
        np.float32
    )
    paths = [f"i{i}.jpg" for i in range(len(subj))]
    nan = np.full(len(subj), np.nan, np.float32)
    EmbedResult(
        paths, x, ["ok"] * len(subj), np.ones(len(subj), np.int32), nan, nan, nan, nan, "m", "c"
    ).save(tmp_path / "t.npz")
    sex = np.where(subj % 3 == 0, "female", "male")
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": sex}).to_csv(tmp_path / "m.csv", index=False)
    p = run_cli("audit-identification", str(tmp_path / "m.csv"), "--group-by", "sex", "--templates",
                str(tmp_path / "t.npz"), "--target-fpir", "0.1", "--rank", "3", "--bootstrap", "50",
                "--target-fmr", "0.05", "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "1:N identification: gallery 40" in p.stdout and "FNIR rank 3" in p.stdout
    block = json.loads((tmp_path / "o" / "audit.json").read_text())["identification"]
    assert block["schema"] == "faceaudit.identification/1" and block["targets"][0]["target_fpir"] == 0.1
    assert set(block["targets"][0]["by_group"]) == {"female", "male"}
    assert "1:N identification (FRVT Part 3 protocol)" in (tmp_path / "o" / "report.html").read_text()


def test_candidate_list_csv_gives_the_same_rates_as_the_searches(tmp_path):
    """Another system's candidate lists (one row per candidate) audited by audit-scores: the same counts."""
    import pandas as pd
    from conftest import run_cli

    from faceaudit.audit.given_scores import audit_scores

    rng = np.random.default_rng(11)
    n_subj = 150
    subj = np.repeat(np.arange(n_subj), 2)
    x = (rng.standard_normal((n_subj, 16))[subj] + 0.7 * rng.standard_normal((len(subj), 16))).astype(
        np.float32
    )
    group = np.where(subj % 3 == 0, 0, 1)
    groups = ["female", "male"]
    split = split_subjects(subj, seed=1)
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1)])
    s = search(x[split.gallery], x[probes], mate, top=5)
    ref = identification_rates(
        s, group[probes], mate >= 0, group[split.gallery], groups, targets=(0.1,), rank=5
    )
    rows = []
    for i in range(len(probes)):
        for r in range(5):
            c = s.candidates[i, r]
            rows.append({"search_id": f"q{i}", "mated": int(mate[i] >= 0), "rank": r + 1,
                         "score": float(s.scores[i, r]), "is_mate": int(c == mate[i]),
                         "probe_sex": groups[group[probes[i]]], "candidate_sex": groups[group[split.gallery[c]]]})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "lists.csv", index=False)
    r = audit_scores(tmp_path / "lists.csv", group_by="sex", target_fpir=(0.1,), rank=5)
    got = r.identification.targets[0]
    for g in groups:
        a, b = got.rates[g], ref[0].rates[g]
        for name in ("fnir_rank1", "fnir_rank_r", "fpir"):
            assert (getattr(a, name).errors, getattr(a, name).trials) == (
                getattr(b, name).errors,
                getattr(b, name).trials,
            )
    assert got.false_positive_groups == ref[0].false_positive_groups
    assert "FPIR 1e-01 overall" in r.headline
    p = run_cli("audit-scores", str(tmp_path / "lists.csv"), "--group-by", "sex", "--target-fpir", "0.1",
                "--rank", "5", "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "given candidate lists" in p.stdout and "FNIR rank 5" in p.stdout


def _ident_files(tmp_path, seed=8):
    import pandas as pd

    from faceaudit.pipeline.batch import EmbedResult

    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(90), rng.integers(1, 5, 90))
    x = (rng.standard_normal((90, 24))[subj] + 0.8 * rng.standard_normal((len(subj), 24))).astype(np.float32)
    paths = [f"i{i}.jpg" for i in range(len(subj))]
    nan = np.full(len(subj), np.nan, np.float32)
    EmbedResult(
        paths, x, ["ok"] * len(subj), np.ones(len(subj), np.int32), nan, nan, nan, nan, "m", "c"
    ).save(tmp_path / "t.npz")
    sex = np.where(subj % 3 == 0, "female", "male")
    pd.DataFrame({"path": paths, "subject_id": [f"p{s}" for s in subj], "sex": sex}).to_csv(
        tmp_path / "m.csv", index=False
    )
    return tmp_path / "m.csv", tmp_path / "t.npz"


def test_split_rebuilt_from_audit_json_alone_gives_the_same_counts(tmp_path, monkeypatch):
    import json

    from conftest import run_cli

    from faceaudit.audit import splits
    from faceaudit.audit.run_identification import audit_identification

    m, t = _ident_files(tmp_path)
    options = {"group_by": "sex", "templates": t, "target_fpir": [0.1], "target_fmr": 0.05, "bootstrap": 0}
    first = audit_identification(m, seed=3, **options)
    first.save(tmp_path / "o")
    doc = json.loads((tmp_path / "o" / "audit.json").read_text())
    record = doc["identification"]["split"]["gallery"]
    assert len(record) == doc["identification"]["split"]["gallery_size"] and record[0][1].endswith(".jpg")

    def no_rng(*a, **k):
        raise AssertionError("a recorded split must be rebuilt without random numbers")

    monkeypatch.setattr(splits.np.random, "default_rng", no_rng)
    again = audit_identification(m, split=tmp_path / "o" / "audit.json", seed=None, **options)
    a, b = first.identification.to_dict(), again.identification.to_dict()
    assert b["split"]["seed"] is None and a["split"]["seed"] == 3
    a["split"].pop("seed"), b["split"].pop("seed")
    assert a == b  # every count, threshold and the recorded gallery itself
    monkeypatch.undo()

    p = run_cli("audit-identification", str(m), "--group-by", "sex", "--templates", str(t), "--target-fpir",
                "0.1", "--target-fmr", "0.05", "--bootstrap", "0", "--split", str(tmp_path / "o" / "audit.json"),
                "--out", str(tmp_path / "cli"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    cli = json.loads((tmp_path / "cli" / "audit.json").read_text())["identification"]
    assert cli["split"]["gallery"] == record and cli["targets"] == doc["identification"]["targets"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gallery": [["p999", "nowhere.jpg"]]}))
    p = run_cli("audit-identification", str(m), "--group-by", "sex", "--templates", str(t), "--split", str(bad),
                "--out", str(tmp_path / "x"))  # fmt: skip
    assert p.returncode != 0 and "bad.json" in p.stderr and "'nowhere.jpg'" in p.stderr


def test_verify_report_reproduces_a_1n_audit_from_its_recorded_split(tmp_path):
    from faceaudit.audit.run_identification import audit_identification
    from faceaudit.audit.verify import verify_report

    m, t = _ident_files(tmp_path, seed=9)
    audit_identification(m, group_by="sex", templates=t, target_fpir=[0.1], target_fmr=0.05, bootstrap=20,
                         seed=5, splits=3).save(tmp_path / "o")  # fmt: skip
    v = verify_report(tmp_path / "o" / "audit.json", reproduce_from={"templates": t, "manifest": m})
    assert v.reproduced and v.ok, v.differences


def test_splits_report_the_spread_and_the_headline_follows_it(tmp_path):
    import json

    from conftest import run_cli

    m, t = _ident_files(tmp_path, seed=10)
    p = run_cli("audit-identification", str(m), "--group-by", "sex", "--templates", str(t), "--target-fpir", "0.1",
                "--target-fmr", "0.05", "--bootstrap", "50", "--splits", "4", "--seed", "2",
                "--out", str(tmp_path / "o"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "o" / "audit.json").read_text())
    sp = doc["identification"]["splits"]
    assert sp["seeds"] == [2, 3, 4, 5] and len(set(sp["galleries_sha256"])) == 4
    block = sp["targets"]["0.1"]
    for key in ("fpir", "fnir_rank1"):
        r = block[f"{key}_ratio"]
        assert r["n_splits"] <= 4 and 0 <= r["direction_holds"] <= r["n_splits"]
        if r["median"] is not None:
            assert r["min"] <= r["median"] <= r["max"]
        name = "FPIR" if key == "fpir" else "FNIR at rank 1"
        sentence = doc["headline"].split(f"{name} ")[0]
        assert f"Across {r['n_splits']} splits the ratio" in doc["headline"]
        if r["direction_holds"] < r["n_splits"]:
            assert f"so this {name} difference is not established by this data" in doc["headline"]
        assert sentence
    g = block["by_group"]["female"]["fnir_rank1"]
    assert g["n"] == 4 and g["min"] <= g["median"] <= g["max"]
    assert "Across 4 splits (median [min, max])" in p.stdout
    assert "subject-clustered" in doc["headline"] and doc["identification"]["bootstrap"]["0.1"]["reset"]
