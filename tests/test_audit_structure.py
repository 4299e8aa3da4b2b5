"""The audit package's shape: the `faceaudit.audit` name, the typed results, the block comparator, no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import faceaudit
from faceaudit.audit.analysis import analyse
from faceaudit.audit.comparator import compare_templates
from faceaudit.audit.disaggregated import GroupRates, TargetResult
from faceaudit.audit.scores import (
    BlockCounts,
    ScoreGrid,
    compare_block,
    fold_blocks,
    sort_templates,
)
from faceaudit.pipeline.batch import EmbedResult

SRC = Path(faceaudit.__file__).resolve().parent


def _npz_and_manifest(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    n = 30
    paths = [f"img{i}.jpg" for i in range(n)]
    nan = np.full(n, np.nan, np.float32)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    EmbedResult(paths, x, ["ok"] * n, np.ones(n, np.int32), nan, nan, nan, nan, "m", "central").save(
        tmp_path / "t.npz"
    )
    subj = [f"s{i // 3}" for i in range(n)]
    sex = ["female" if i % 2 else "male" for i in range(n // 3) for _ in range(3)]
    pd.DataFrame({"path": paths, "subject_id": subj, "sex": sex}).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv", tmp_path / "t.npz"


@pytest.mark.parametrize(
    "first",
    [
        "import faceaudit",
        "import faceaudit.audit",
        "import faceaudit.audit.report",
        "from faceaudit.audit.metrics import NOT_MEASURABLE",
        "from faceaudit.audit import audit_scores",
    ],
)
def test_faceaudit_audit_is_the_function_whatever_was_imported_first(tmp_path, first):
    """`faceaudit.run_audit(...)` works after any import of the subpackage, and the subpackage's modules import."""
    manifest, npz = _npz_and_manifest(tmp_path)
    code = (
        f"{first}\n"
        "import types, faceaudit\n"
        "from faceaudit.audit.metrics import NOT_MEASURABLE\n"
        "from faceaudit.audit import metrics, AuditResult\n"
        "assert isinstance(faceaudit.run_audit, types.FunctionType), faceaudit.run_audit\n"
        "assert isinstance(faceaudit.audit, types.ModuleType), faceaudit.audit\n"
        f"r = faceaudit.run_audit({str(manifest)!r}, group_by='sex', templates={str(npz)!r}, target_fmr=0.1)\n"
        "assert isinstance(r, AuditResult) and r.groups == ['female', 'male'], r\n"
        "assert metrics.NOT_MEASURABLE == NOT_MEASURABLE\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_no_callable_module():
    module = sys.modules["faceaudit.audit"]
    assert type(module).__name__ == "module" and not callable(module)
    assert (SRC / "audit" / "__init__.py").read_text().count("\n") < 60


def _imports(path: Path, package: str) -> set[str]:
    """Every faceaudit module that ``path`` imports, at any depth in the file (TYPE_CHECKING included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("faceaudit"):
            out.add(node.module)
            for a in node.names:
                out.add(f"{node.module}.{a.name}")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("faceaudit"))
    return {m for m in out if m.startswith(package)}


def test_the_audit_modules_import_one_another_without_a_cycle():
    mods = {f"faceaudit.audit.{p.stem}": p for p in (SRC / "audit").glob("*.py") if p.stem != "__init__"}
    graph = {m: {d for d in _imports(p, "faceaudit.audit.") if d in mods and d != m} for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*trail, m, d])}"
            if d not in state:
                visit(d, [*trail, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert "faceaudit.audit.result" not in graph["faceaudit.audit.report"]
    assert "faceaudit.audit.headline" not in graph["faceaudit.audit.analysis"]
    for p in (SRC / "audit").glob("*.py"):
        assert p.read_text().count("\n") <= 450, p


def _data(seed: int, n: int):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 2, (n, 16)) * 2 - 1).astype(np.float32) / 4.0  # scores on bin edges, many ties
    gi = rng.integers(-1, 3, n)
    subj = rng.integers(0, n // 3, n)
    return x, gi, subj, ["a", "b", "c"]


def test_blocks_folded_anywhere_equal_the_in_process_comparator():
    """compare_block over every tile, folded in any order, gives compare_templates' counts exactly."""
    x, gi, subj, groups = _data(0, 157)
    ref = compare_templates(x, gi, subj, groups, block=16, threads=2)
    st = sort_templates(x, gi, subj, groups)
    blocks = [compare_block(st, rows, cols) for rows, cols in st.tiles(16)]
    got = fold_blocks(st, blocks[::-1])
    np.testing.assert_array_equal(got.non_mated, ref.non_mated)
    np.testing.assert_array_equal(got.non_mated_unlabelled, ref.non_mated_unlabelled)
    assert sorted(got.mated_scores.tolist()) == sorted(ref.mated_scores.tolist())
    assert sorted(zip(got.mated_bins, got.mated_subject, strict=True)) == sorted(
        zip(ref.mated_bins, ref.mated_subject, strict=True)
    )
    n = len(x)
    assert int(got.non_mated_total().sum()) + len(got.mated_bins) == n * (n - 1) // 2
    assert isinstance(BlockCounts().add(blocks[0]), BlockCounts)


def test_each_target_has_typed_rates_that_the_table_shows():
    x, gi, subj, groups = _data(1, 120)
    counts = compare_templates(x, gi, subj, groups, grid=ScoreGrid.cosine())
    r = analyse(counts, targets=(0.2, 1e-9))
    assert [type(t) for t in r.targets] == [TargetResult, TargetResult]
    t = r.targets[0]
    assert t.key == "0.2" and t.measured and set(t.rates) == set(groups)
    for g, rates in t.rates.items():
        assert isinstance(rates, GroupRates) and rates.group == g
        row = r.by_group.loc[(0.2, g)]
        assert row["fmr_errors"] == rates.fmr.errors and row["n_mated"] == rates.n_mated
        assert row["threshold"] == t.threshold.threshold
    assert r.summary["0.2"] is t.differentials and r.thresholds["0.2"]["bin_index"] == t.threshold.bin_index
    assert r.headline == ""  # presentation is written elsewhere (faceaudit.audit.headline)
    np.testing.assert_array_equal(r.cross_fmr["0.2"].to_numpy(), t.cross_fmr)
