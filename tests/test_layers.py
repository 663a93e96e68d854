"""The package's layering: no import cycle, and nothing outside ``workbench/ui`` reaches the UI.

Read from the source with ``ast`` (nothing is imported), so a cycle that Python happens to
tolerate today, or a function-level ``import gradio`` in a logic module, still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The modules an import statement names, absolute (``from . import x`` gives the package's x)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    # `from pkg import name`: name may be a submodule
    return [target, *(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)]


def imports(module: str, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(resolve(module, node))
    return found


def internal(names: set[str]) -> set[str]:
    """The workbench modules among ``names`` (a name inside a module counts as that module)."""
    out = set()
    for n in names:
        while n and n not in MODULES:
            n = n.rpartition(".")[0]
        if n:
            out.add(n)
    return out


def test_modules_are_found():
    assert {"workbench.render", "workbench.ui.common", "workbench.abtest", "workbench.services"} <= set(MODULES)


def test_the_import_graph_has_no_cycle():
    """Module-level imports only: a function-level import runs after every module has loaded."""
    graph = {m: internal(imports(m, top_level_only=True)) - {m} for m in MODULES}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".") or MODULES[m].name != "__init__.py"}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = path[path.index(d) :] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("workbench.ui")))
def test_logic_never_imports_the_ui(module):
    """Anywhere in the file, functions included: logic runs without gradio (CLI, notebooks, Ray workers)."""
    names = imports(module, top_level_only=False)
    ui = sorted(n for n in names if n.split(".")[0] == "gradio" or n.startswith("workbench.ui"))
    assert not ui, f"{module} imports {', '.join(ui)}"
