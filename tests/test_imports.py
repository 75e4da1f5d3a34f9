"""The package's modules import each other without cycles.

Every module under ``src/posediffusion`` is parsed with ``ast`` (nothing is imported). Its imports of
``posediffusion.*`` modules are collected wherever they are, function-level imports included, except under
``if TYPE_CHECKING:`` (never executed). ``from posediffusion.x import y`` is an edge to the module
``posediffusion.x.y`` when that is a module, else to ``posediffusion.x``; relative imports are resolved
against the importing module's package. An edge goes to the named module only, not to the packages above
it. Any strongly connected component of more than one module is a cycle and fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "posediffusion"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def imported_modules(path: Path, modules: set[str], source: str | None = None) -> dict[str, int]:
    """posediffusion module -> line of its first import in ``path`` (only modules in ``modules``).

    ``source`` replaces the file's text (the tests probe the parser with it).
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in modules and target != name:
            out.setdefault(target, line)

    source = path.read_text() if source is None else source
    for node in _import_nodes(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
            continue
        if node.level:
            base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            add(sub if sub in modules else base, node.lineno)
    return out


def import_graph() -> dict[str, dict[str, tuple[str, int]]]:
    """module -> {imported module: (file, line)} for the whole package."""
    paths = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    modules = set(paths)
    return {name: {target: (str(path.relative_to(PACKAGE.parents[1])), line)
                   for target, line in imported_modules(path, modules).items()}
            for name, path in paths.items()}


def strongly_connected_components(graph: dict[str, dict]) -> list[list[str]]:
    """Tarjan's algorithm (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_cycle(graph: dict[str, dict], component: list[str]) -> list[str]:
    """A shortest import cycle through the component's first module, e.g. ``[a, b, a]``."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if child in members and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return component


def describe_cycles(graph: dict[str, dict]) -> list[str]:
    lines = []
    for component in strongly_connected_components(graph):
        if len(component) < 2:
            continue
        cycle = shortest_cycle(graph, component)
        edges = ", ".join(f"{a} -> {b} ({graph[a][b][0]}:{graph[a][b][1]})"
                          for a, b in zip(cycle[:-1], cycle[1:], strict=True))
        lines.append(f"{len(component)} modules {component}; e.g. {edges}")
    return lines


def test_graph_finds_function_level_relative_and_submodule_imports():
    assert module_name(PACKAGE / "data" / "__init__.py") == "posediffusion.data"
    graph = import_graph()
    assert "posediffusion.skeleton" in graph["posediffusion.data.h36m"]  # a module-level import
    cycles = describe_cycles({"a": {"b": ("a.py", 1)}, "b": {"c": ("b.py", 2)}, "c": {"a": ("c.py", 3)},
                              "d": {"a": ("d.py", 4)}})
    assert cycles == ["3 modules ['a', 'b', 'c']; e.g. a -> b (a.py:1), b -> c (b.py:2), c -> a (c.py:3)"]
    source = ("from __future__ import annotations\n"
              "from typing import TYPE_CHECKING\n"
              "from .. import camera\n"
              "from posediffusion import skeleton\n"
              "from ..model.pose_diffusion import PoseDiffusion\n"
              "if TYPE_CHECKING:\n"
              "    from posediffusion.metrics import mpjpe\n"
              "def f():\n"
              "    import posediffusion.render\n"
              "    from ..posediffusion import nothing\n")
    probe = PACKAGE / "data" / "probe.py"  # never written: its source is given
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set(imported_modules(probe, modules, source))
    assert found == {"posediffusion.camera", "posediffusion.skeleton", "posediffusion.model.pose_diffusion",
                     "posediffusion.render"}



def test_no_import_cycles():
    cycles = describe_cycles(import_graph())
    assert not cycles, "import cycles in posediffusion:\n" + "\n".join(cycles)
