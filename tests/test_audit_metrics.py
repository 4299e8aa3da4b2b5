"""Metrics and fairness measures against values computed by hand.

Test vectors: two rows of NIST FRVT Part 3 (NISTIR 8280, 2019) Annex 15, as reshaped in
TheMdTF/mdtf-public datasets/nist-frvt-annex15/nist-frvt3-annex15-data-flat.csv (see
shared/datasets/nist-frvt3-annex15/SOURCE.txt).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from faceaudit.audit import fairness
from faceaudit.audit.intervals import CP_ZERO_METHOD, clopper_pearson
from faceaudit.audit.metrics import eer, fmr_rate, fnmr_rate, histogram_stats, threshold_index

GROUPS = ["F.AmIndian", "F.Asian", "F.Black", "F.White", "M.AmIndian", "M.Asian", "M.Black", "M.White"]
NIST_ROWS = {
    "cyberextruder-002": {
        "FNMR": [0.0909, 0.0709, 0.0699, 0.0824, 0.0793, 0.0521, 0.048, 0.0765],
        "FMR": [0.000398107170553497, 7.94328234724282e-05, 0.000199526231496888, 1.25892541179417e-05,
                6.30957344480193e-05, 1.58489319246111e-05, 2.51188643150958e-05, 1e-05],
    },
    "didiglobalface-001": {
        "FNMR": [0.0033, 0.0052, 0.0011, 0.0021, 0.005, 0.0031, 0.0011, 0.0036],
        "FMR": [0.000501187233627273, 3.16227766016838e-05, 7.94328234724282e-05, 1e-05,
                0.000199526231496888, 1e-05, 1e-05, 1e-05],
    },
}  # fmt: skip

# By hand: max/min, largest gaps, FDR = 1 - (A + B)/2, IR = sqrt(ratio_FMR * ratio_FNMR)
HAND = {
    "cyberextruder-002": {
        "fmr_ratio": 0.000398107170553497 / 1e-05,  # 39.81
        "fnmr_ratio": 0.0909 / 0.048,  # 1.894
        "fdr": 1 - 0.5 * (0.000398107170553497 - 1e-05) - 0.5 * (0.0909 - 0.048),
    },
    "didiglobalface-001": {
        "fmr_ratio": 0.000501187233627273 / 1e-05,  # 50.12
        "fnmr_ratio": 0.0052 / 0.0011,  # 4.727
        "fdr": 1 - 0.5 * (0.000501187233627273 - 1e-05) - 0.5 * (0.0052 - 0.0011),
    },
}


def gini_by_loops(x):
    n = len(x)
    total = 0.0
    for a in x:
        for b in x:
            total += abs(a - b)
    return n / (n - 1) * total / (2 * n * n * (sum(x) / n))


def test_gini_small_cases_by_hand():
    assert fairness.gini([1, 3]) == pytest.approx(0.5)  # 2/1 · 4 / (2·4·2)
    assert fairness.gini([1, 1, 1, 1]) == 0.0
    assert fairness.gini([0, 0, 1]) == pytest.approx(1.0)  # one group takes everything
    assert fairness.gini([0, 0, 0]) == 0.0
    assert fairness.gini([0.2]) is None


@pytest.mark.parametrize("name", list(NIST_ROWS))
def test_nist_annex15_rows(name):
    row, hand = NIST_ROWS[name], HAND[name]
    fmr = dict(zip(GROUPS, row["FMR"], strict=True))
    fnmr = dict(zip(GROUPS, row["FNMR"], strict=True))
    s = fairness.summarise(fmr, fnmr)
    assert s["fmr_max_min_ratio"] == pytest.approx(hand["fmr_ratio"], rel=1e-12)
    assert s["fnmr_max_min_ratio"] == pytest.approx(hand["fnmr_ratio"], rel=1e-12)
    assert s["fdr"] == pytest.approx(hand["fdr"], rel=1e-12)
    assert s["ir"] == pytest.approx(math.sqrt(hand["fmr_ratio"] * hand["fnmr_ratio"]), rel=1e-12)
    g = 0.5 * gini_by_loops(row["FMR"]) + 0.5 * gini_by_loops(row["FNMR"])
    assert s["garbe"] == pytest.approx(g, rel=1e-12)
    assert s["fmr_max_group"] == "F.AmIndian"


def test_cyberextruder_values_in_digits():
    s = fairness.summarise(
        dict(zip(GROUPS, NIST_ROWS["cyberextruder-002"]["FMR"], strict=True)),
        dict(zip(GROUPS, NIST_ROWS["cyberextruder-002"]["FNMR"], strict=True)),
    )
    assert round(s["fmr_max_min_ratio"], 2) == 39.81
    assert s["fnmr_max_min_ratio"] == pytest.approx(1.89375)
    assert round(s["fdr"], 6) == 0.978356
    assert round(s["ir"], 3) == 8.683


def test_alpha_weights():
    fmr, fnmr = {"a": 0.001, "b": 0.002}, {"a": 0.01, "b": 0.04}
    assert fairness.fdr(fmr.values(), fnmr.values(), alpha=1.0) == pytest.approx(1 - 0.001)
    assert fairness.fdr(fmr.values(), fnmr.values(), alpha=0.0) == pytest.approx(1 - 0.03)
    assert fairness.inequity_rate(fmr.values(), fnmr.values(), alpha=1.0) == pytest.approx(2.0)
    assert fairness.max_min_ratio([0.0, 0.1]) is None  # undefined, not infinite


def test_clopper_pearson():
    lo, hi, method = clopper_pearson(5, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0164, 0.1128)  # textbook exact interval for 5/100
    lo, hi, method = clopper_pearson(0, 300)
    assert lo == 0.0 and method == CP_ZERO_METHOD
    assert hi == pytest.approx(3 / 300, rel=0.01)  # the rule of three
    lo, hi, _ = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))
    assert all(math.isnan(v) for v in clopper_pearson(0, 0)[:2])


def test_not_measurable_instead_of_zero():
    hist = np.zeros(10, int)
    hist[2] = 1000  # 1000 non-mated comparisons, none at or above bin 5
    r = fmr_rate(hist, 5, target_fmr=1e-3)  # needs 3000 to show 1e-3 with zero errors
    assert r.value is None and "not measurable" in r.note
    assert r.ci_high == pytest.approx(3 / 1000, rel=0.01)
    assert fmr_rate(hist, 5, target_fmr=1e-2).value == 0.0  # 1000 >= 300: a measured zero
    assert fnmr_rate(np.array([], int), 5).value is None


def test_threshold_index_and_eer():
    hist = np.array([0, 5, 3, 1, 1])  # 10 non-mated comparisons
    assert threshold_index(hist, 0.2) == 3  # FMR(3) = 2/10
    assert threshold_index(hist, 0.1) == 4
    assert threshold_index(hist, 0.0) == 5  # above every score
    assert threshold_index(np.zeros(5, int), 0.1) is None
    mated = np.array([4, 4, 3, 2])
    e, k = eer(hist, mated, 5)
    assert k == 3 and e == pytest.approx((0.2 + 0.25) / 2)


def test_histogram_stats():
    centres = np.array([0.0, 1.0, 2.0])
    s = histogram_stats(np.array([1, 2, 1]), centres)
    assert s["mean"] == 1.0 and s["q0.5"] == 1.0 and s["n"] == 4


def test_fairness_cli_json(tmp_path):
    from conftest import run_cli

    header = ["Algorithm"] + [f"{k}.{g}" for g in GROUPS for k in ("FNMR", "FMR")]
    lines = [",".join(header)]
    for name, row in NIST_ROWS.items():
        cells = [name] + [str(row[k][i]) for i in range(8) for k in ("FNMR", "FMR")]
        lines.append(",".join(cells))
    csv = tmp_path / "rates.csv"
    csv.write_text("\n".join(lines) + "\n")
    p = run_cli("fairness", str(csv), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["name"] for r in out] == list(NIST_ROWS)
    for r in out:
        assert r["fdr"] == pytest.approx(HAND[r["name"]]["fdr"], rel=1e-12)
        assert r["fmr_max_min_ratio"] == pytest.approx(HAND[r["name"]]["fmr_ratio"], rel=1e-12)
    p = run_cli("fairness", str(csv))
    assert p.returncode == 0 and "cyberextruder-002" in p.stdout and "39.81" in p.stdout


def test_fairness_cli_bad_cell(tmp_path):
    from conftest import run_cli

    csv = tmp_path / "rates.csv"
    csv.write_text("Algorithm,FMR.a,FMR.b\nx,0.1,0.2\ny,0.1,oops\n")
    p = run_cli("fairness", str(csv))
    assert p.returncode == 3 and "line 3" in p.stderr and "'FMR.b'" in p.stderr
