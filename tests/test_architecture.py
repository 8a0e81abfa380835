"""The package's shape: no import cycles among ssimlib's modules, no long module without a stated reason."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssimlib"


def module_names():
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def imported_modules(name, modules):
    """The ssimlib modules that module ``name`` imports, at its top or inside functions."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(), filename=f"{name}.py")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ssimlib" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: ``from . import x`` or ``from .x import y``
                target = node.module.split(".")[0] if node.module else None
            elif node.module and node.module.split(".")[0] == "ssimlib":
                parts = node.module.split(".")
                target = parts[1] if len(parts) > 1 else None
            else:
                continue
            if target is not None:
                found.add(target)
            else:  # ``from ssimlib import a, b``: the names are modules
                found.update(alias.name for alias in node.names)
    return (found & set(modules)) - {name, "__init__", "__main__"}


def import_graph():
    modules = [m for m in module_names() if m not in ("__init__", "__main__")]
    return {name: imported_modules(name, modules) for name in modules}


def find_cycle(graph):
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state = {}  # module -> "open" while on the path, "done" after

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "store_training" in graph["studies"] and "artifacts" in graph["store_training"]
    assert "own_images" in graph["cli"]  # cli imports it inside a function


def test_no_import_cycle_among_ssimlib_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


MAX_LINES = 500
# A module over MAX_LINES lines must say in its docstring why it is one unit, with this phrase.
LONG_MODULE_REASON = "one unit"


def test_no_module_over_500_lines_unless_its_docstring_says_why():
    long = {}
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        lines = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and LONG_MODULE_REASON not in docstring.lower():
            long[path.name] = lines
    assert not long, (f"modules over {MAX_LINES} lines whose docstring does not say why they are "
                      f"{LONG_MODULE_REASON!r}: {long}")
