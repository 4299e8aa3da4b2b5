"""The package's shape, as docs/architecture.md draws it: layers, no cycles, small modules, a light ledger.

Every module under src/faceaudit is parsed (not imported) and every ``import`` in it is read, including those
inside functions, since a function-level import is still a dependency of that module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "faceaudit"
MAX_LINES = 450

LAYERS: dict[str, int] = {
    "errors": 0,
    "types": 0,
    "imaging": 0,
    "csvfile": 0,
    "accountable": 0,
    "sqldialect": 0,
    "pgsql": 0,
    "dask_cluster": 0,
    "face": 1,
    "models": 2,
    "pipeline": 3,
    "gallery": 4,
    "audit": 4,
    "ledger": 4,
    "operations": 5,
    "service": 6,
    "cli": 7,
    "__main__": 8,
    "": 8,  # faceaudit/__init__.py: the facade of plain functions, above everything it re-exports
}
"""Top-level part of ``faceaudit.<part>`` → rank. A module imports only modules of its own rank or lower."""

LEDGER_MAY_IMPORT = {"ledger", "errors", "types", "csvfile", "sqldialect"}
"""The ledger is read by key-less auditors: nothing of images, models, pipelines or galleries."""

VERSION_ONLY = {"__version__"}
"""``from faceaudit import __version__`` is allowed everywhere: it reads a constant and loads nothing."""

OVERSIZE_ELSEWHERE: dict[str, str] = {}
"""Modules over the limit in areas being reworked on other branches; the size test xfails while any remains."""

CYCLES_ELSEWHERE: dict[tuple[str, str], str] = {}
"""Import cycles being broken on other branches; the cycle test xfails while any remains."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    names: tuple[str, ...]

    def where(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The faceaudit module that ``name`` (a module or an attribute of one) lives in; None outside faceaudit."""
    if name != "faceaudit" and not name.startswith("faceaudit."):
        return None
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def _edges(module: str) -> list[Edge]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    out.append(Edge(module, target, node.lineno, ()))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = tuple(a.name for a in node.names)
            for name in names:  # each imported name may be a submodule of its own
                target = _resolve(f"{origin}.{name}") if f"{origin}.{name}" in MODULES else _resolve(origin)
                if target:
                    out.append(Edge(module, target, node.lineno, (name,)))
    return out


EDGES = [e for m in MODULES for e in _edges(m) if e.target != e.source]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_version_read(edge: Edge) -> bool:
    return edge.target == "faceaudit" and set(edge.names) <= VERSION_ONLY and bool(edge.names)


def test_every_module_has_a_layer():
    unplaced = sorted({m for m in MODULES if _part(m) not in LAYERS})
    assert not unplaced, f"place these in LAYERS here and in docs/architecture.md: {unplaced}"


def test_no_import_runs_from_an_inner_layer_to_an_outer_one():
    upward = [
        f"{e.where()} (rank {LAYERS[_part(e.source)]} → {LAYERS[_part(e.target)]})"
        for e in EDGES
        if not _is_version_read(e)
        and _part(e.source) in LAYERS
        and _part(e.target) in LAYERS
        and LAYERS[_part(e.target)] > LAYERS[_part(e.source)]
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_ledger_imports_nothing_of_images_models_pipelines_or_galleries():
    bad = [
        e.where()
        for e in EDGES
        if _part(e.source) == "ledger"
        and not _is_version_read(e)
        and _part(e.target) not in LEDGER_MAY_IMPORT
    ]
    assert not bad, "\n".join(bad)


def test_the_face_layer_knows_only_the_bottom_layer():
    bad = [e.where() for e in EDGES if _part(e.source) == "face" and LAYERS[_part(e.target)] > 1]
    assert not bad, "\n".join(bad)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in EDGES:
        if not _is_version_read(e):
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    cycles = [tuple(c) for c in _cycles()]
    unexpected = [c for c in cycles if c not in CYCLES_ELSEWHERE]
    assert not unexpected, "import cycles (function-level imports count):\n" + "\n".join(map(str, unexpected))
    if cycles:
        pytest.xfail(
            "cycles being broken elsewhere: " + "; ".join(f"{c} ({CYCLES_ELSEWHERE[c]})" for c in cycles)
        )


def test_the_walker_sees_function_level_and_relative_imports():
    # the walker itself must be able to fail: these edges are known to exist
    known = {(e.source, e.target) for e in EDGES}
    assert ("faceaudit.models.registry", "faceaudit.models.dlib_backend") in known  # inside a factory
    assert ("faceaudit.models.onnx_embedder", "faceaudit.face.align") in known
    assert ("faceaudit.cli.options", "faceaudit.pipeline.engine") in known  # inside a function


def test_no_module_is_over_the_line_limit():
    sizes = {str(p.relative_to(SRC)): sum(1 for _ in p.open(encoding="utf-8")) for p in PACKAGE.rglob("*.py")}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    unexpected = {name: n for name, n in over.items() if name not in OVERSIZE_ELSEWHERE}
    assert not unexpected, f"modules over {MAX_LINES} lines: {unexpected}"
    if over:
        pytest.xfail(
            "still over the limit, being split on other branches: "
            + "; ".join(f"{name} {n} lines ({OVERSIZE_ELSEWHERE[name]})" for name, n in sorted(over.items()))
        )


HEAVY = ("cv2", "faiss", "onnxruntime", "openvino", "PIL", "dlib")


def _loaded_after(statement: str) -> dict:
    code = (
        f"import sys, json\n{statement}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | "
        "{m for m in sys.modules if m.startswith('faceaudit')})))"
    )
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return set(json.loads(res.stdout.splitlines()[-1]))


def test_the_ledger_loads_without_image_or_model_libraries():
    loaded = _loaded_after("import faceaudit.ledger, faceaudit.ledger.sqlite_store")
    assert "faceaudit.ledger" in loaded  # the probe really imported it
    assert not loaded & set(HEAVY), f"faceaudit.ledger pulled in {sorted(loaded & set(HEAVY))}"
    assert not {
        m for m in loaded if m.startswith(("faceaudit.gallery", "faceaudit.pipeline", "faceaudit.models"))
    }


def test_import_faceaudit_is_light_and_the_face_layer_needs_no_runtime():
    loaded = _loaded_after("import faceaudit")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    loaded = _loaded_after("import faceaudit.face")
    assert "cv2" in loaded  # the probe really imported it
    assert not loaded & {"onnxruntime", "openvino", "faiss", "dlib"}


def test_a_keyless_ledger_verify_through_the_cli_loads_no_image_or_model_library(tmp_path):
    # A key-less auditor runs `faceaudit ledger verify`: the CLI builds every sub-command's parser, and none of
    # them may pull in image decoders, model runtimes or FAISS just to verify a hash chain.
    db = tmp_path / "g.db"
    init = subprocess.run(
        [sys.executable, "-m", "faceaudit", "gallery", "init", "--db", str(db), "--operator", "auditor"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    loaded = _loaded_after(
        "from faceaudit.cli import main\n"
        f"rc = main(['ledger', 'verify', '--db', {str(db)!r}])\n"
        "assert rc == 0, rc"
    )
    assert "faceaudit.cli.ledger_cmds" in loaded  # the probe really ran the command
    assert not loaded & set(HEAVY), f"ledger verify pulled in {sorted(loaded & set(HEAVY))}"
