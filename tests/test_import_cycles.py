"""No import cycles among ecgcore modules.

The graph is built statically (``ast``) from the import statements that run when a module is imported: those at
module level, also inside module-level ``if`` / ``try`` / ``with`` blocks and class bodies, but not inside
functions (lazy by design) nor under ``if TYPE_CHECKING:``. ``from pkg import name`` is an edge to ``pkg.name``
when that is a module, else to ``pkg``. Importing a module runs its parent packages' ``__init__`` too; those
implicit edges are left out (every package would otherwise be "in a cycle" with its own submodules).
A cycle is a strongly connected component with more than one module.
"""
from __future__ import annotations

import ast
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import ecgcore

ROOT = Path(ecgcore.__file__).resolve().parent

# Cycles inside the model families, being removed by the restructuring of python/ecgcore/models/ (issue 19).
# Each entry is the full set of modules of one strongly connected component; remove it once the cycle is gone
# (the test also fails if an entry no longer matches a cycle, so the list cannot go stale).
KNOWN_MODEL_CYCLES: list[frozenset[str]] = [
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "__pycache__" not in p.parts}


def _compiled_modules() -> set[str]:
    """Extension modules (``ecgcore._core``), wherever the install put them (an editable install keeps them in
    site-packages): leaves of the graph."""
    out = set()
    for folder in map(Path, ecgcore.__path__):
        for suffix in EXTENSION_SUFFIXES:
            for p in folder.rglob("*" + suffix):
                rel = p.relative_to(folder).parts
                out.add(".".join(("ecgcore", *rel[:-1], p.name[:-len(suffix)])))
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _eager_imports(body):
    """Import statements executed at import time of a module whose top-level statements are ``body``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _eager_imports(node.body)
            yield from _eager_imports(node.orelse)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _eager_imports(block)
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.ClassDef, ast.For, ast.While)):
            yield from _eager_imports(node.body)


def import_graph() -> dict[str, set[str]]:
    """{module: the ecgcore modules it imports eagerly}."""
    sources = _modules()
    modules = set(sources) | _compiled_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in sources.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _eager_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
                if any(t != base for t in targets) and node.module:
                    targets.append(base)  # ``from .pkg.mod import sub``: pkg.mod itself runs as well
            for t in targets:
                while t and t not in modules:  # ``import ecgcore.x.name`` of a non-module: the nearest module
                    t = t.rpartition(".")[0]
                if t.split(".")[0] == "ecgcore" and t != mod:
                    graph[mod].add(t)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm; components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(comp: frozenset[str], graph) -> str:
    edges = sorted(f"{a} -> {b}" for a in comp for b in graph[a] if b in comp)
    return "{" + ", ".join(sorted(comp)) + "}\n      " + "\n      ".join(edges)


def test_graph_sees_relative_and_absolute_imports():
    g = import_graph()
    assert "ecgcore._fs" in g["ecgcore.pipelines.archive"]  # from .._fs import ...
    assert "ecgcore.metrics" in g["ecgcore.models.conformer.metrics"]  # from ... import metrics as M
    assert "ecgcore.datasets.mitdb" not in g["ecgcore.commands.peaks"]  # imported inside a function only
    assert g["ecgcore._native"] == {"ecgcore._core"}  # from . import _core: the compiled module, not the package
    assert strongly_connected({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [frozenset("ab")]


def test_no_import_cycles():
    graph = import_graph()
    cycles = strongly_connected(graph)
    new = [c for c in cycles if c not in KNOWN_MODEL_CYCLES]
    stale = [c for c in KNOWN_MODEL_CYCLES if c not in cycles]
    msg = []
    if new:
        msg.append("import cycles (break them: move the shared piece to a module both can import):\n  "
                   + "\n  ".join(_describe(c, graph) for c in new))
    if stale:
        msg.append("KNOWN_MODEL_CYCLES entries that are no longer cycles (remove them):\n  "
                   + "\n  ".join("{" + ", ".join(sorted(c)) + "}" for c in stale))
    assert not msg, "\n".join(msg)
