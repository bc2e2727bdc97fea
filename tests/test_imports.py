"""genlab's modules import one another without circles. The graph is read from the source
with `ast`, as pylint's cyclic-import builds it: every import statement counts, at module
level or inside a function (a lazy import still closes a circle once it runs); `from pkg
import name` is an edge to the submodule pkg.name where one exists, else to pkg. Imports
under `if TYPE_CHECKING:` never run and do not count (pylint skips them too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "genlab"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """genlab's module names -> their files (genlab/configs is data, not code)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if "configs" not in parts:
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(tree: ast.AST):
    """Every Import and ImportFrom node outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = node.orelse if isinstance(node, ast.If) and _type_checking(node) else ast.iter_child_nodes(node)
        stack.extend(children)


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {genlab module it imports: the line of the first such import}."""
    files = module_files(root)
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                if target in files and target != module:
                    graph[module].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """A circle as its modules and the imports between them (module:line -> module)."""
    members = set(component)
    edges = [f"  {a}:{line} -> {b}" for a in component for b, line in sorted(graph[a].items()) if b in members]
    return f"circle of {len(component)} modules: {', '.join(component)}\n" + "\n".join(edges)


def test_the_graph_sees_module_level_lazy_and_relative_imports_but_not_type_checking_ones(tmp_path):
    pkg = tmp_path / "genlab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def load():\n    from genlab.a import f\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nfrom genlab import sub\nif TYPE_CHECKING:\n    from genlab import b\n")
    (pkg / "b.py").write_text("import genlab.sub.c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import b\nfrom ..a import x\n")
    graph = import_graph(pkg)
    assert graph == {"genlab": {"genlab.a": 2}, "genlab.a": {"genlab.sub": 2}, "genlab.b": {"genlab.sub.c": 1}, "genlab.sub": {},
                     "genlab.sub.c": {"genlab.b": 1, "genlab.a": 2}}
    assert cycles(graph) == [["genlab.b", "genlab.sub.c"]]


def test_genlab_has_no_import_circle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "\n".join(describe(graph, c) for c in found)
