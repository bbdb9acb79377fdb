"""The package's imports follow the pipeline: no circle, no step importing a later step,
the CLI, the notebook helpers or the workshop; and the install ships no workshop."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "analysis"

#: Top to bottom: a module may import modules of its own layer or below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("__main__", "cli"),
    ("notebook",),                                   # helpers the notebooks call
    ("replay",),                                     # as-of replays of the pipeline
    ("pipeline", "store"),                           # the steps in order; findings kept
    ("report", "case", "handoff"),                   # outputs
    ("charts", "pseudonym"),
    ("tracking",),                                   # ring keys, statuses, verdicts
    ("queries", "facts"),                            # questions asked of findings; the
                                                     # figures every output quotes
    ("rings",),
    ("signals",),
    ("communities",),
    ("graph",),
    ("engines",),                                    # the same plan on Spark
    ("aggregate",),
    ("load", "csvlines"),
    ("workspace",),
    ("findings", "params", "contract", "safe", "config", "outdir", "__init__"),
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Modules of ``analysis`` imported by ``path`` (run-time imports, lazy ones included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module(path).split(".")
    base = me if _is_package(path) else me[:-1]
    found: set[str] = set()

    def visit(node):
        if isinstance(node, ast.If) and _type_checking(node):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "analysis")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base[: len(base) - node.level + 1]
                mod = ".".join(pkg + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "analysis":
                found.add(mod)
                for a in node.names:   # `from . import charts` names a module
                    if (PKG.parent / (mod.replace(".", "/") + f"/{a.name}.py")).exists() or (
                            PKG.parent / (mod.replace(".", "/") + f"/{a.name}")).is_dir():
                        found.add(f"{mod}.{a.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(PKG.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _product(module: str) -> bool:
    return not module.startswith("analysis.workshop")


def test_every_product_module_has_a_layer():
    missing = {m for m in _graph() if _product(m) and _layer(m) not in RANK}
    assert not missing, f"add these modules to LAYERS: {sorted(missing)}"


def test_product_never_imports_the_workshop():
    bad = {(m, i) for m, deps in _graph().items() if _product(m)
           for i in deps if not _product(i)}
    assert not bad, bad


def test_no_step_imports_a_later_step():
    bad = []
    for m, deps in _graph().items():
        if not _product(m):
            continue
        for d in deps:
            if _product(d) and d != "analysis" and RANK[_layer(d)] < RANK[_layer(m)]:
                bad.append(f"{m} imports {d}")
    assert not bad, bad


def test_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def dfs(m):
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph or d == m:
                continue
            if state.get(d) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                dfs(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_the_walk_sees_imports():
    # The checks above are only worth something if the walk finds real edges.
    g = _graph()
    assert "analysis.rings" in g["analysis.pipeline"]
    assert "analysis.charts" in g["analysis.report"]          # `from . import charts`
    assert "analysis.rings" not in g["analysis.findings"]     # TYPE_CHECKING only


def test_the_install_ships_no_workshop():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]
    assert "analysis.workshop*" in find["exclude"]
