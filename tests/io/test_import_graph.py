"""secact.io: imports between its modules run one way (no cycle, function-level imports included).

Run as a script to print the graph: ``python tests/io/test_import_graph.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

IO = Path(__file__).resolve().parents[2] / "src" / "secact" / "io"
PACKAGE = "secact.io"


def _module_name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def _absolute(module: str | None, level: int, here: str, is_package: bool) -> str:
    """The absolute name an ``import`` / ``from ... import`` in module ``here`` refers to."""
    if level == 0:
        return module or ""
    parts = here.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def import_edges(folder: Path = IO) -> set[tuple[str, str, int, str]]:
    """``(importer, imported, line, where)`` for every import of one ``secact.io`` module by
    another, anywhere in the file (module level, in functions, under ``TYPE_CHECKING``).

    ``where`` is ``"module"`` for a top-level statement, else ``"function"`` / ``"other"``.
    """
    modules = {_module_name(p): p for p in sorted(folder.glob("*.py"))}
    edges = set()
    for here, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top = set(map(id, tree.body))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        in_function = {id(m) for f in functions for m in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node.module, node.level, here, path.stem == "__init__")
                # `from . import _x` names a submodule; `from ._x import y` the module _x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            where = "module" if id(node) in top else "function" if id(node) in in_function else "other"
            for target in targets:
                if target not in modules:  # `import secact.io._x.y`: module _x; else not an io module
                    parent = target.rsplit(".", 1)[0]
                    target = parent if parent in modules and parent != PACKAGE else None
                if target is not None and target != here:
                    edges.add((here, target, node.lineno, where))
    return edges


def find_cycle(edges) -> list[str] | None:
    """A cycle in the graph of ``edges`` as ``[a, b, ..., a]``, or ``None``."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_io_imports_form_no_cycle():
    edges = import_edges()
    assert edges, "no imports between secact.io modules found: is the path right?"
    cycle = find_cycle(edges)
    assert cycle is None, (
        "secact.io modules import each other in a circle: "
        + " -> ".join(cycle)
        + ". Move what both need into a lower module (e.g. _blocks) so imports run one way."
    )


def test_the_cycle_check_sees_function_level_imports(tmp_path):
    """The check itself: a circle closed by an import inside a function is found."""
    (tmp_path / "__init__.py").write_text("from ._a import f\n")
    (tmp_path / "_a.py").write_text("from ._b import g\n\ndef f():\n    return g()\n")
    (tmp_path / "_b.py").write_text("def g():\n    from ._a import f\n    return f\n")
    edges = import_edges(tmp_path)
    assert ("secact.io._b", "secact.io._a", 2, "function") in edges
    assert find_cycle(edges) == ["secact.io._a", "secact.io._b", "secact.io._a"]
    (tmp_path / "_b.py").write_text("def g():\n    from ._c import h\n    return h\n")  # _c: not written yet
    assert find_cycle(import_edges(tmp_path)) is None


@pytest.mark.parametrize(
    ("module", "level", "expected"),
    [
        ("_a", 1, "secact.io._a"),
        (None, 1, "secact.io"),
        ("_results", 2, "secact._results"),
        ("x.y", 0, "x.y"),
    ],
)
def test_relative_imports_resolve(module, level, expected):
    assert _absolute(module, level, "secact.io._b", is_package=False) == expected


if __name__ == "__main__":
    for a, b, line, where in sorted(import_edges()):
        print(f"{a.removeprefix(PACKAGE + '.')} -> {b.removeprefix(PACKAGE + '.')}  (line {line}, {where})")
    print("cycle:", " -> ".join(find_cycle(import_edges()) or ["none"]))
