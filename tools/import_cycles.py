"""Import cycles among probmix's modules, counting imports made inside functions.

Collects every ``import`` / ``from ... import`` of a probmix module anywhere in a file (module
level, inside functions and classes; not under ``if TYPE_CHECKING:``) with :mod:`ast`, builds
the module graph and reports its strongly connected components of more than one module (and
modules that import themselves). Importing ``probmix.a.b`` counts as an edge to ``probmix.a.b``
only, not to the packages above it: those run first, but only cycles among the modules named
in import statements are design faults.

Usage::

    python tools/import_cycles.py [ROOT]      # ROOT: the repository (default: this one)

Exit status 1 when there is a cycle; each is printed with the imports that close it.
"""

from __future__ import annotations

import ast
import pathlib
import sys

PACKAGE = "probmix"


def module_names(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Dotted name of every module of the package under ``root`` -> its file."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: pathlib.Path, modules: dict) -> dict[str, int]:
    """probmix modules that ``name`` imports -> the line of the first such import."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        while target and target not in modules:  # an attribute or a missing module: its parent
            target = target.rpartition(".")[0]
        if target:
            out[target] = min(line, out.get(target, line))

    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    add(alias.name, node.lineno)
            continue
        if node.level:  # relative: resolve against this module's package
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if source.split(".")[0] != PACKAGE:
            continue
        for alias in node.names:
            full = f"{source}.{alias.name}"
            add(full if full in modules else source, node.lineno)
    return out


def graph(root: pathlib.Path) -> dict[str, dict[str, int]]:
    modules = module_names(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def strongly_connected(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components in discovery order, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, {}))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                        if member == node:
                            break
                    out.append(sorted(comp))
    return out


def cycles(root: pathlib.Path) -> list[tuple[list[str], list[tuple[str, str, int]]]]:
    """Each cycle: its modules and the imports among them (importer, imported, line)."""
    edges = graph(root)
    found = []
    for comp in strongly_connected(edges):
        members = set(comp)
        inner = [(a, b, line) for a in comp for b, line in sorted(edges[a].items())
                 if b in members]
        if len(comp) > 1 or inner:
            found.append((comp, inner))
    return found


def main(argv: list[str]) -> int:
    root = pathlib.Path(argv[1] if len(argv) > 1 else pathlib.Path(__file__).parents[1])
    found = cycles(root.resolve())
    for comp, inner in found:
        print(f"cycle of {len(comp)} modules: {', '.join(comp)}")
        for a, b, line in inner:
            print(f"    {a}:{line} imports {b}")
    print(f"{len(found)} import cycle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
