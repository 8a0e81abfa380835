"""The package's shape: three layers with every import pointing down, no import cycles among ssimlib's modules,
no long module without a stated reason."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssimlib"

# The layers, bottom up: the library (ssimlib's top-level modules), the experiments, the applications.
# A module imports only from its own layer and the layers below it.
LAYERS = ["", "experiments", "apps"]


def module_names():
    """Every module of the package, named relative to it: ``ssim``, ``experiments.mvtec``, ``apps.cli``."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] not in ("__init__", "__main__"):
            names.append(".".join(parts))
    return sorted(names)


def module_path(name):
    return PACKAGE.joinpath(*name.split(".")).with_suffix(".py")


def imported_modules(name, modules):
    """The ssimlib modules that module ``name`` imports, at its top or inside functions."""
    tree = ast.parse(module_path(name).read_text(), filename=f"{name}.py")
    package = name.split(".")[:-1]  # the subpackage that holds the module, [] at the top
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ssimlib" and len(parts) > 1:
                    found.add(".".join(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: ``from . import x``, ``from .x import y``, ``from .. import x``
                up = node.level - 1  # packages above the module's own
                if up > len(package):
                    continue
                base = package[:len(package) - up] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "ssimlib":
                base = node.module.split(".")[1:]
            else:
                continue
            found.add(".".join(base))  # ``from ssimlib.x import y``: module x
            # ``from ssimlib import a, b`` or ``from ssimlib.experiments import a``: the names are modules
            found.update(".".join(base + [alias.name]) for alias in node.names)
    return (found & set(modules)) - {name}


def import_graph():
    modules = module_names()
    return {name: imported_modules(name, modules) for name in modules}


def layer(name):
    """The index in LAYERS of module ``name``'s layer: 0 library, 1 experiments, 2 apps."""
    return LAYERS.index(name.rpartition(".")[0])


def upward_imports(graph):
    """Every import from a module into a higher layer, as sorted (importer, imported) pairs."""
    return sorted((name, other) for name, imported in graph.items() for other in imported
                  if layer(other) > layer(name))


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


def test_the_layer_check_finds_an_upward_import():
    graph = {"ssim": set(), "train": {"ssim"},
             "experiments.a": {"train", "experiments.b"}, "experiments.b": {"apps.x"},
             "apps.x": {"experiments.a", "ssim"}, "apps.y": {"apps.x"}}
    assert upward_imports(graph) == [("experiments.b", "apps.x")]
    graph["ssim"] = {"experiments.a", "apps.y"}
    assert upward_imports(graph) == [("experiments.b", "apps.x"), ("ssim", "apps.y"), ("ssim", "experiments.a")]


def test_the_graph_sees_every_layer_and_imports_inside_functions():
    graph = import_graph()
    assert {"ssim", "experiments.mvtec", "apps.cli"} <= set(graph)
    assert "store_training" in graph["experiments.studies"] and "artifacts" in graph["store_training"]
    assert "apps.own_images" in graph["apps.cli"]  # cli imports it inside a function
    assert "experiments.checkerboard" in graph["experiments.studies"]  # from ssimlib.experiments import ..., inside
    assert "experiments.mvtec_runs" in graph["apps.batch"]  # from ssimlib.experiments.mvtec_runs import ...


def test_every_module_is_in_a_layer_and_imports_only_downward():
    graph = import_graph()
    unplaced = [name for name in graph if name.rpartition(".")[0] not in LAYERS]
    assert not unplaced, f"modules outside the layers {LAYERS}: {unplaced}"
    upward = upward_imports(graph)
    assert not upward, "imports into a higher layer: " + ", ".join(f"{a} -> {b}" for a, b in upward)


def test_no_import_cycle_among_ssimlib_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


MAX_LINES = 500
# A module over MAX_LINES lines must say in its docstring why it is one unit, with this phrase.
LONG_MODULE_REASON = "one unit"


def test_no_module_over_500_lines_unless_its_docstring_says_why():
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and LONG_MODULE_REASON not in docstring.lower():
            long[path.relative_to(PACKAGE).as_posix()] = lines
    assert not long, (f"modules over {MAX_LINES} lines whose docstring does not say why they are "
                      f"{LONG_MODULE_REASON!r}: {long}")
