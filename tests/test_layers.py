"""No import cycle between the packages of src/tidings (docs/architecture.md, "Layers").

Each top-level package or module under src/tidings is a node; an import of any kind from a
file of package A of a name in package B is an edge A -> B: at module level, inside a
function, under `if TYPE_CHECKING:`, absolute or relative. Moving an import into a function
hides a cycle from Python, not from this test. The source is parsed, never imported, so the
test needs no database."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "tidings"

# (importing package, imported package) -> the files of the first that import the second
Edges = dict[tuple[str, str], set[str]]


def _module_of(path: Path, root: Path) -> tuple[list[str], bool]:
    """The file's dotted module path (`tidings.event.service`) and whether it is a package's
    `__init__.py`."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        return parts[:-1], True
    return parts, False


def _imported(node: ast.AST, module: list[str], is_package: bool) -> Iterator[list[str]]:
    """The dotted names an import statement reads, relative ones resolved."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name.split(".")
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module if is_package else module[:-1]
            base = package[: len(package) - (node.level - 1)]
        else:
            base = []
        target = base + (node.module.split(".") if node.module else [])
        yield target
        for alias in node.names:
            yield [*target, alias.name]


def package_edges(root: Path) -> Edges:
    """Every edge between the top-level packages and modules under `root`."""
    nodes = {
        path.stem if path.is_file() else path.name
        for path in root.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.stem != "__init__")
    }
    edges: Edges = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_of(path, root)
        if len(module) < 2:
            continue  # the root's own __init__.py belongs to no package
        source = module[1]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for name in _imported(node, module, is_package):
                if len(name) < 2 or name[0] != root.name or name[1] not in nodes:
                    continue
                if name[1] != source:
                    edges[(source, name[1])].add(str(path.relative_to(root.parent)))
    return dict(edges)


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(component: list[str], edges: Edges) -> str:
    lines = [f"cycle between {', '.join(component)}:"]
    members = set(component)
    for (source, target), files in sorted(edges.items()):
        if source in members and target in members:
            lines.append(f"  {source} -> {target}: {', '.join(sorted(files))}")
    return "\n".join(lines)


def test_no_import_cycle_between_packages() -> None:
    edges = package_edges(ROOT)
    assert edges, "no imports found: is ROOT the package?"
    found = cycles(edges)
    assert not found, "\n".join(describe(component, edges) for component in found)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_hidden_and_relative_imports_is_found(tmp_path: Path) -> None:
    root = tmp_path / "tidings"
    _write(
        root,
        {
            "__init__.py": "",
            "runtime.py": "from tidings.low import thing\n",
            "low/__init__.py": "",
            "low/thing.py": "def f() -> None:\n    from tidings import high\n",
            "high/__init__.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..runtime import Runtime\n",
            "high/inner/__init__.py": "",
            "high/inner/deep.py": "from ...low.thing import f\n",
        },
    )
    edges = package_edges(root)
    assert edges == {
        ("runtime", "low"): {"tidings/runtime.py"},
        ("low", "high"): {"tidings/low/thing.py"},
        ("high", "runtime"): {"tidings/high/__init__.py"},
        ("high", "low"): {"tidings/high/inner/deep.py"},
    }
    (component,) = cycles(edges)
    assert component == ["high", "low", "runtime"]
    assert "  low -> high: tidings/low/thing.py" in describe(component, edges)


def test_imports_in_one_direction_are_no_cycle(tmp_path: Path) -> None:
    root = tmp_path / "tidings"
    _write(
        root,
        {
            "__init__.py": "",
            "low/__init__.py": "from . import rules\nfrom .rules import x\n",
            "low/rules.py": "x = 1\n",
            "high/__init__.py": "import tidings.low.rules\nfrom tidings.low import rules\n",
        },
    )
    edges = package_edges(root)
    assert edges == {("high", "low"): {"tidings/high/__init__.py"}}
    assert cycles(edges) == []
