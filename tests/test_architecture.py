"""The package's shape, checked on its source: layers, no import cycles, no borrowed private names.

Every import in ``clm/`` counts, including those inside functions. The layers, bottom to top::

    0  errors, paths, io, data         files, hashes, paths; no model code
    1  core                            weights, LoRA math, endpoints, models, engine, merge, plan
    2  train, eval                     training; encoders, scorers, perplexity
    3  experiments                     designs, sweeps, tables, analysis, claims, control
    4  plots
    5  book, bench                     chapter parameters, pipeline; benchmarks
    6  cli                             ``python -m clm <command>``

A module may import from its own layer or below, never above, and never in a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "clm"
LAYERS = {
    "clm.errors": 0, "clm.version": 0, "clm.stats": 0, "clm.paths": 0, "clm.io": 0, "clm.data": 0, "clm.presets": 0,
    "clm.core": 1, "clm.train": 2, "clm.eval": 2, "clm.methods": 2, "clm.experiments": 3, "clm.plots": 4,
    "clm.widgets": 4, "clm.book": 5, "clm.bench": 5, "clm.cli": 6, "clm.__main__": 6,
}  # fmt: skip
MAX_LINES = 450


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The clm module an imported name refers to (a submodule, else the module holding it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str) -> list[tuple[str, str, int]]:
    """(target module, imported name or '', line) for every clm import in ``mod``."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "clm":
                    out.append((_resolve(a.name), "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if src.split(".")[0] != "clm":
                continue
            for a in node.names:
                sub = f"{src}.{a.name}"
                if sub in MODULES:
                    out.append((sub, "", node.lineno))
                else:
                    out.append((_resolve(src), a.name, node.lineno))
    return [(t, n, line) for t, n, line in out if t]


def layer(mod: str) -> int | None:
    for prefix, rank in sorted(LAYERS.items(), key=lambda kv: -len(kv[0])):
        if mod == prefix or mod.startswith(prefix + "."):
            return rank
    return None


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "clm" and layer(m) is None] == []


def test_no_private_name_imported_from_another_module():
    bad = [
        f"{m}:{line} imports {n} from {t}"
        for m, edges in GRAPH.items()
        for t, n, line in edges
        if n.startswith("_") and t != m and n != "__version__"
    ]
    assert bad == []


def test_imports_go_down_the_layers():
    bad = [
        f"{m} (layer {layer(m)}):{line} imports {t} (layer {layer(t)})"
        for m, edges in GRAPH.items()
        if m != "clm"
        for t, _, line in edges
        if t != "clm" and layer(t) is not None and layer(m) is not None and layer(t) > layer(m)
    ]
    assert bad == []


def test_no_module_imports_the_package_facade():
    """``clm/__init__`` re-exports the public API lazily; modules import from where things live."""
    bad = [f"{m}:{line} imports clm.{n}" for m, edges in GRAPH.items() if m != "clm" for t, n, line in edges if t == "clm"]
    assert bad == []


def test_no_import_cycle():
    edges = {m: sorted({t for t, _, _ in e if t != m and t != "clm"}) for m, e in GRAPH.items() if m != "clm"}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges.get(m, []):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m)
    assert cycles == []


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_module_size(mod):
    n = len(MODULES[mod].read_text().splitlines())
    assert n <= MAX_LINES, f"{mod} has {n} lines (at most {MAX_LINES}): split it by responsibility"


def test_functions_are_short_or_say_why():
    """No function over ~60 lines unless its docstring says why (the words 'long because')."""
    bad = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if n > 60 and "long because" not in doc.lower():
                    bad.append(f"{mod}.{node.name}: {n} lines")
    assert bad == []
