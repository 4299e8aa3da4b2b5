"""Input hygiene of audit-scores and of templates from elsewhere: each rule, with the five cases of issue 12."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from faceaudit.audit.given_scores import audit_scores
from faceaudit.errors import InputError


def scores_frame(seed: int = 0, n: int = 40_000) -> pd.DataFrame:
    """Two groups, 4 % mated, distinct image pairs, scores with 6 decimals (female non-mated a little higher)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n, p=[0.3, 0.7])
    mated = rng.random(n) < 0.04
    score = np.where(mated, rng.normal(0.65, 0.12, n), rng.normal(0.05, 0.1, n) + (sex == "female") * 0.02)
    return pd.DataFrame(
        {
            "score": np.round(score, 6),
            "mated": mated.astype(int),
            "sex_a": sex,
            "sex_b": sex,
            "image_a": [f"a{i}" for i in range(n)],
            "image_b": [f"b{i}" for i in range(n)],
        }
    )


def run(df: pd.DataFrame, tmp_path, name: str = "s.csv", **kw):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return audit_scores(path, group_by="sex", target_fmr=kw.pop("target_fmr", 1e-3), **kw)


def exact_false_matches(df: pd.DataFrame, tau: float) -> int:
    nm = df[df.mated == 0]
    return int((nm.score >= tau).sum())


def test_repeated_pairs_are_refused_or_removed_with_a_count(tmp_path):
    """Issue 12: 30 top pairs tripled moved a ratio from 2.4× to 7.9×."""
    df = scores_frame()
    clean = run(df, tmp_path, "clean.csv")
    top = df[df.mated == 0].nlargest(30, "score")
    swapped = top.rename(columns={"image_a": "image_b", "image_b": "image_a"})  # the same pair, either order
    tripled = pd.concat([df, top, swapped], ignore_index=True)
    with pytest.raises(InputError, match=r"line 40002: the pair .* repeats line \d+ \(60 repeated rows"):
        run(tripled, tmp_path, "tripled.csv")
    r = run(tripled, tmp_path, "tripled.csv", dedupe=True)
    assert r.thresholds == clean.thresholds and r.summary == clean.summary
    assert "60 repeated pairs removed" in " ".join(r.warnings)
    assert r.config["input_checks"]["duplicates_removed"] == 60

    out = run_cli("audit-scores", str(tmp_path / "tripled.csv"), "--out", str(tmp_path / "o"))
    assert out.returncode == 3 and "line 40002" in out.stderr and "--dedupe" in out.stderr


def test_without_pair_columns_duplicates_cannot_be_checked(tmp_path):
    r = run(scores_frame().drop(columns=["image_a", "image_b"]), tmp_path)
    assert any("repeated pairs" in w and "cannot be checked" in w for w in r.warnings)


def test_sentinel_outliers_are_reported_and_do_not_set_the_bins(tmp_path):
    """Issue 12: three sentinel scores of 999 widened the bins: 58 false matches counted instead of 100."""
    df = scores_frame(1, 100_000)
    sentinels = df.iloc[:3].assign(score=999.0, mated=0, image_a=["x1", "x2", "x3"])
    with_sentinels = pd.concat([df, sentinels], ignore_index=True)
    r = run(with_sentinels, tmp_path)
    t = r.thresholds["0.001"]
    n_nm = int((with_sentinels.mated == 0).sum())
    assert t["false_matches"] == exact_false_matches(with_sentinels, t["threshold"])
    assert 0.9 * 1e-3 * n_nm <= t["false_matches"] <= 1e-3 * n_nm  # the threshold resolves the target
    assert r.grid["bin_width"] < 1e-4  # set by the bulk (about 1.2 wide), not by 999
    assert r.config["input_checks"]["far_outliers"] == 3
    assert any("3 far outlier scores" in w and "100002, 100003, 100004" in w for w in r.warnings)


def test_an_offset_changes_no_count(tmp_path):
    """Issue 12: scores offset by 1e6 were binned in float32: wrong counts, then a traceback."""
    df = scores_frame(2)
    base = run(df, tmp_path, "base.csv")
    shifted = run(df.assign(score=df.score + 1e6), tmp_path, "shifted.csv")
    for key, t in base.thresholds.items():
        s = shifted.thresholds[key]
        assert (s["false_matches"], s["non_mated_comparisons"]) == (
            t["false_matches"],
            t["non_mated_comparisons"],
        )
        assert s["threshold"] == pytest.approx(t["threshold"] + 1e6, abs=1e-6)
    cols = ["fmr_errors", "fmr_trials", "fnmr_errors", "fnmr_trials"]
    pd.testing.assert_frame_equal(base.by_group[cols], shifted.by_group[cols])
    assert shifted.distributions["female"]["mated"]["mean"] == pytest.approx(
        base.distributions["female"]["mated"]["mean"] + 1e6, abs=1e-6
    )


@pytest.mark.parametrize(("value", "why"), [("1e300", "too large to resolve"), ("inf", "not a finite"),
                                            ("nan", "not a finite"), ("1e400", "not a finite")])  # fmt: skip
def test_unresolvable_or_non_finite_scores_are_refused_with_the_line(tmp_path, value, why):
    """Issue 12: a score of 1e300 gave a traceback."""
    df = scores_frame(3, 2000).astype({"score": str})
    df.loc[1500, "score"] = value
    with pytest.raises(InputError, match=f"line 1502: score .*{why}"):
        run(df, tmp_path, target_fmr=1e-2)


def test_one_group_gets_the_true_reason(tmp_path):
    """Issue 12: a file with one group claimed a reason that is not true."""
    df = scores_frame(4, 20_000)
    r = run(df.assign(sex_a="female", sex_b="female"), tmp_path, target_fmr=1e-2)
    assert "There is one group (female): no differential can be measured with one group" in r.headline
    assert "could be measured" not in r.headline and "×" not in r.headline


def test_unsupported_threshold_is_named_and_no_rates_are_compared_at_it(tmp_path):
    df = scores_frame(5, 3000)  # ~2,900 non-mated comparisons: 1e-4 needs 30,000
    r = run(df, tmp_path, target_fmr=[1e-4, 1e-2])
    assert r.headline.startswith("Data: s.csv; labels: ")
    assert "The data cannot support a threshold at FMR 1e-04" in r.headline
    assert "no rates are compared there" in r.headline
    assert "At the threshold that gives FMR 1e-02" in r.headline and "FMR 1e-04 overall" not in r.headline
    only = run(df, tmp_path, target_fmr=1e-4)
    assert "×" not in only.headline and "as often" not in only.headline


def test_third_party_templates_are_accepted_as_an_unknown_model(tmp_path):
    import faceaudit

    rng = np.random.default_rng(6)
    n = 24
    paths = [f"p{i}.jpg" for i in range(n)]
    x = rng.standard_normal((n, 16)).astype(np.float32)
    x[5] = 0  # a failed image
    np.savez(tmp_path / "theirs.npz", embeddings=x, paths=np.array(paths))
    sex = ["female" if i % 2 else "male" for i in range(n)]
    pd.DataFrame({"path": paths, "subject_id": [f"s{i // 2}" for i in range(n)], "sex": sex}).to_csv(
        tmp_path / "m.csv", index=False
    )
    r = faceaudit.run_audit(
        tmp_path / "m.csv", group_by="sex", templates=tmp_path / "theirs.npz", target_fmr=0.1
    )
    assert r.config["model_id"].startswith("unknown")
    assert any("lacks faceaudit's metadata" in w for w in r.warnings)
    assert r.config["n_templates"] == n - 1
    x[7, 3] = np.nan
    np.savez(tmp_path / "bad.npz", templates=x, path=np.array(paths))
    with pytest.raises(InputError, match="'p7.jpg'.*non-finite"):
        faceaudit.run_audit(
            tmp_path / "m.csv", group_by="sex", templates=tmp_path / "bad.npz", target_fmr=0.1
        )
