"""The package's shape: no import circles, no upward imports, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "metapeft_optuna"
# Lower layers never import higher ones (a function-level import counts too).
LAYERS = (
    ("_blas", "errors", "atomic", "validation", "schema"),
    ("models",),
    ("peft",),
    ("tasks",),
    ("training",),
    ("meta",),
    ("samplers", "pruners"),
    ("research",),
    ("cli",),
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_LINES = 375  # "about 350"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Import nodes, leaving out ``if TYPE_CHECKING:`` blocks (never run)."""
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skipped
    ]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package[: len(package) - node.level + 1] if node.level else []
                name = ".".join(base + ([node.module] if node.module else []))
                targets = [
                    f"{name}.{a.name}" if f"{name}.{a.name}" in modules else name
                    for a in node.names
                ]
            edges[module] |= {t for t in targets if t in modules and t != module}
    return edges


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            here, there = module.split(".")[1:2], target.split(".")[1:2]
            if here and there and here != there and LAYER[there[0]] > LAYER[here[0]]:
                upward.append(f"{module} -> {target}")
    assert not upward


def test_no_import_circles():
    edges = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges[module]:
            if module.startswith(target + "."):  # a module and its own package's exports
                continue
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in edges:
        if module not in state:
            visit(module, [module])
    assert not circles


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
