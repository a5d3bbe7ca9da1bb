"""The package's import graph has no cycle, counting every kind of import.

import-linter (``pyproject.toml``) checks the layers and cycles between siblings; this
test reads the source itself, so that it also sees what a graph of module-level imports
misses: imports inside functions, under ``TYPE_CHECKING``, and ``importlib.import_module``
with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbdtui

PACKAGE = Path(nbdtui.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every nbdtui module that module ``name`` imports, wherever the statement stands."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports module pkg.sub; `from mod import name`, mod.
            # (That importing pkg.sub first runs pkg/__init__ is Python's doing, not an
            # import of the code: it is left out, or every package would be a cycle.)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            targets = [str(node.args[0].value)]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {
        name: imported(path.read_text(), name, path.name == "__init__.py", modules)
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_imports_inside_functions_and_by_importlib():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "def f():\n    from nbdtui.errors import NbdError\n"
        "if TYPE_CHECKING:\n    import nbdtui.uri\n"
        "from .transport import stream\n"
        "importlib.import_module('nbdtui.proto.constants')\n"
    )
    modules = {
        "nbdtui.errors",
        "nbdtui.uri",
        "nbdtui.proto.constants",
        "nbdtui.client.api",
        "nbdtui.client.transport.stream",
    }
    assert imported(source, "nbdtui.client.api", False, modules) == {
        "nbdtui.errors",
        "nbdtui.uri",
        "nbdtui.proto.constants",
        "nbdtui.client.transport.stream",
    }


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
