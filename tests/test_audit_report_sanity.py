"""A report never contradicts itself: every data shape's headline, warnings, table and report.html are scanned
for nan/inf, doubled punctuation, a headline on a threshold the warnings call unsupported, a zero-width
interval of a zero-error rate, and an interval kind that differs between the table and the headline."""

from __future__ import annotations

import html as html_lib
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import faceaudit
from faceaudit.audit.given_scores import audit_scores
from faceaudit.audit.run_identification import audit_identification
from faceaudit.pipeline.batch import EmbedResult
from faceaudit.pipeline.results import load_templates

BAD_WORDS = re.compile(r"\b[nN]a[nN]\b|\b[iI]nf\b|∞|\bNone\b")
BOOT = 200
"""Bootstrap resamples in these shapes (enough to give every interval; fewer than the default, for speed)."""
DOUBLED = re.compile(r",\s*[,.;)]|(?<!\.)\.\s*\.(?!\.)|;\s*[;.,]|\(\s*\)|\s,|,,")


def _templates(tmp_path, subj, sex, *, dim=24, spread=0.8, seed=0, name="t"):
    rng = np.random.default_rng(seed)
    n = len(subj)
    x = (rng.standard_normal((subj.max() + 1, dim))[subj] + spread * rng.standard_normal((n, dim))).astype(
        np.float32
    )
    paths = [f"i{i}.jpg" for i in range(n)]
    nan = np.full(n, np.nan, np.float32)
    EmbedResult(paths, x, ["ok"] * n, np.ones(n, np.int32), nan, nan, nan, nan, "m", "central").save(
        tmp_path / f"{name}.npz"
    )
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": sex, "sex_label_source": "test labels"}).to_csv(
        tmp_path / f"{name}.csv", index=False
    )
    return tmp_path / f"{name}.csv", tmp_path / f"{name}.npz"


def _scores_file(path, n, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    mated = rng.random(n) < 0.1
    s = np.where(mated, rng.normal(0.6, 0.1, n), rng.normal(0.0, 0.1, n))
    pd.DataFrame({"score": np.round(s, 6), "mated": mated.astype(int), "sex_a": sex, "sex_b": sex}).to_csv(
        path, index=False
    )
    return path


def shapes(tmp_path):
    """(name, result) for every data shape: mated and not, one group, tiny groups, scores, 1:N."""
    out = []
    subj = np.repeat(np.arange(60), 4)
    m, t = _templates(tmp_path, subj, np.where(subj % 2 == 0, "female", "male"), name="two")
    out.append(
        (
            "two groups, bootstrap",
            faceaudit.run_audit(m, group_by="sex", templates=t, bootstrap=BOOT, target_fmr=[0.05, 1e-3]),
        )
    )
    # a tiny group (2 subjects, 7 mated pairs at most) beside big ones: zero errors, unbounded ratios
    subj = np.concatenate([np.repeat(np.arange(50), 4), np.repeat([50, 51], [4, 3])])
    sex = np.where(subj >= 50, "tiny", np.where(subj % 2 == 0, "female", "male"))
    m, t = _templates(tmp_path, subj, sex, spread=0.5, name="tiny")
    out.append(
        (
            "tiny group",
            faceaudit.run_audit(m, group_by="sex", templates=t, bootstrap=BOOT, target_fmr=[0.05, 1e-3]),
        )
    )
    # mated pairs only across labels: no group has a mated comparison within it, the overall DET curve remains
    subj = np.repeat(np.arange(40), 2)
    m, t = _templates(tmp_path, subj, np.where(np.arange(80) % 2 == 0, "female", "male"), name="across")
    out.append(
        (
            "mated across groups only",
            faceaudit.run_audit(m, group_by="sex", templates=t, bootstrap=BOOT, target_fmr=0.05),
        )
    )
    # no repeat identities (the demo's shape)
    subj = np.arange(200)
    m, t = _templates(tmp_path, subj, np.where(subj % 2 == 0, "female", "male"), name="nomated")
    out.append(
        (
            "no mated",
            faceaudit.run_audit(m, group_by="sex", templates=t, bootstrap=BOOT, target_fmr=[1e-2, 1e-3]),
        )
    )
    subj = np.repeat(np.arange(40), 3)
    m, t = _templates(tmp_path, subj, np.full(len(subj), "female"), name="one")
    out.append(
        ("one group", faceaudit.run_audit(m, group_by="sex", templates=t, bootstrap=BOOT, target_fmr=0.05))
    )
    # 2,400 comparisons: FMR 1e-3 needs 3,000 (unsupported), 1e-2 is supported
    s = _scores_file(tmp_path / "s2400.csv", 2640)
    out.append(("scores, unsupported 1e-3", audit_scores(s, group_by="sex", target_fmr=[1e-3, 1e-2])))
    out.append(
        ("scores", audit_scores(_scores_file(tmp_path / "s.csv", 8000), group_by="sex", target_fmr=1e-2))
    )
    subj = np.repeat(np.arange(80), 3)
    m, t = _templates(tmp_path, subj, np.where(subj % 3 == 0, "female", "male"), name="ident")
    first = audit_identification(
        m, group_by="sex", templates=t, bootstrap=BOOT, target_fpir=[1e-1, 1e-2], target_fmr=0.05
    )
    out.append(("1:N", first))
    gallery = first.identification.split["gallery"]
    out.append(
        (
            "1:N, 3 splits",
            audit_identification(
                m, group_by="sex", templates=t, bootstrap=BOOT, target_fpir=[1e-1], splits=3
            ),
        )
    )
    out.append(
        (
            "1:N, recorded split",
            audit_identification(m, group_by="sex", templates=t, bootstrap=BOOT, split=gallery, seed=None),
        )
    )
    subj = np.concatenate(
        [np.repeat(np.arange(60), 3), np.arange(60, 84)]
    )  # 24 singletons, about 12 searches
    sex = np.where(subj >= 60, "few", np.where(subj % 2 == 0, "female", "male"))
    m, t = _templates(tmp_path, subj, sex, name="few")
    e = load_templates(t)  # 'few' in 64 dimensions of their own (random): never a false positive
    few = (sex == "few")[:, None]
    other = np.random.default_rng(1).standard_normal((len(subj), 64))
    x = np.hstack([np.where(few, 0.0, e.templates), np.where(few, other, 0.0)]).astype(np.float32)
    nan = np.full(len(x), np.nan, np.float32)
    EmbedResult(e.paths, x, ["ok"] * len(x), np.ones(len(x), np.int32), nan, nan, nan, nan, "m", "c").save(t)
    out.append(
        (
            "1:N small group",
            audit_identification(m, group_by="sex", templates=t, bootstrap=BOOT, target_fpir=[1e-1]),
        )
    )
    out.append(
        (
            "candidate lists",
            audit_scores(_candidate_lists(tmp_path), group_by="sex", target_fpir=(0.1,), rank=3),
        )
    )
    return out


def _candidate_lists(tmp_path):
    """Another system's candidate lists: 60 mated and 60 non-mated searches, 3 candidates each."""
    rng = np.random.default_rng(5)
    rows = []
    for q in range(120):
        mated, sex = q < 60, ("female", "male")[q % 2]
        scores = np.sort(rng.normal(0.3, 0.1, 3))[::-1]
        mate_rank = rng.integers(1, 5) if mated else 0
        for r in range(3):
            rows.append({"search_id": f"q{q}", "mated": int(mated), "rank": r + 1, "score": round(float(scores[r]), 6),
                         "is_mate": int(mate_rank == r + 1), "probe_sex": sex, "candidate_sex": sex})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "lists.csv", index=False)
    return tmp_path / "lists.csv"


def _visible_text(page: str) -> str:
    page = re.sub(r"<(svg|style|script)\b.*?</\1>", " ", page, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", page))


def _sentences(result) -> list[str]:
    texts = [result.headline, *result.warnings]
    for target in {t.target_fmr for t in result.measured}:
        texts.append(result.table(target).to_string())
    return texts


@pytest.fixture(scope="module")
def all_shapes(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (or any other) may leak to the terminal
        return shapes(tmp_path_factory.mktemp("shapes"))


def test_no_nan_inf_or_doubled_punctuation_anywhere(all_shapes):
    for name, r in all_shapes:
        for text in [*_sentences(r), _visible_text(r.to_html())]:
            assert not BAD_WORDS.search(text), (name, BAD_WORDS.search(text).group(), text[:2000])
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                assert not DOUBLED.search(sentence), (name, sentence)


def test_headline_never_uses_a_threshold_the_warnings_call_unsupported(all_shapes):
    for name, r in all_shapes:
        for w in r.warnings:
            hit = re.search(r"threshold for FMR (\S+) needs", w)
            if hit:
                assert f"gives FMR {float(hit.group(1)):.0e} overall" not in r.headline, (name, r.headline)
        for t in r.measured:
            if not t.threshold.measurable:
                assert f"gives FMR {t.target_fmr:.0e} overall (τ" not in r.headline
                assert f"cannot support a threshold at FMR {t.target_fmr:.0e}" in r.headline


def test_zero_error_rates_have_intervals_of_positive_width(all_shapes):
    seen = 0
    for name, r in all_shapes:
        for t in r.measured:
            for g in t.rates.values():
                for rate, boot in (("fmr", g.fmr_boot), ("fnmr", g.fnmr_boot)):
                    rr = getattr(g, rate)
                    if rr.value == 0:
                        seen += 1
                        assert rr.ci_high > 0, (name, g.group, rate)
                        if boot is not None and boot.low is not None:
                            assert boot.high >= rr.ci_high > 0, (name, g.group, rate, boot)
    assert seen  # the shapes do include zero-error rates


def test_table_labels_the_interval_kind_the_headline_uses(all_shapes):
    for name, r in all_shapes:
        for t in r.measured:
            cols = " ".join(r.table(t.target_fmr).columns)
            assert re.search(r"FMR \[95% (clustered|Clopper–Pearson)\]", cols), (name, cols)
        for kind in re.findall(r"Their 95 % (\S+) intervals overlap", r.headline.split("1:N,")[0]):
            first = next(t for t in r.measured if t.threshold.measurable)
            assert f"[95% {kind}]" in " ".join(r.table(first.target_fmr).columns), (name, kind)


def test_1n_small_group_is_not_measurable_and_never_an_extreme(all_shapes):
    r = dict(all_shapes)["1:N small group"]
    t = r.identification.targets[0]
    few = t.rates["few"].fpir
    assert 0 < few.trials < 30 and few.errors == 0 and few.value is None and "need 30" in few.note
    assert "of few" not in r.headline and "those of few" not in r.headline
    assert "1:N, at the threshold that gives FPIR 1e-01" in r.headline


def test_det_curves_whenever_there_are_mated_comparisons(all_shapes):
    from faceaudit.audit.report import det_figure

    for name, r in all_shapes:
        if "overall" in r.curves:
            has_mated = not np.isnan(r.curves["overall"]["fnmr"][0])
            assert (det_figure(r) is not None) == has_mated, name
