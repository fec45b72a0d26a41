"""The package's imports point down its layers, and no module imports itself through others.

The layers, bottom to top (docs/extending.md draws them): a module may import modules of its own layer or of a
lower one, never of a higher one. Every import counts, also one inside a function: a deferred import is still an
arrow. A module that fits no layer fails the test, so a new folder is placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "amodal_lightning"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# Bottom to top. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("errors", "batch", "masks", "orientations", "run", "task_config", "whole_appearance")),
    ("metrics", ("metrics",)),
    ("data", ("data",)),
    ("network and diffusion", ("diffusion", "models.unet", "models.guidance", "models.lr_schedule",
                               "models.self_conditioning", "models.sampling", "models")),
    ("module", ("models.module",)),
    ("inference", ("inference",)),
    ("tasks", ("tasks",)),
    ("callbacks, commands and tools", ("callbacks", "demo", "compat", "train", "predict", "evaluate", "score",
                                       "convert_sas")),
]  # fmt: skip


def module_name(path: Path) -> str:
    """``amodal_lightning/data/record.py`` -> ``data.record``; a package's ``__init__`` is the package."""
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """Index of the layer a module (``data.record``) belongs to, by its longest matching prefix; the package's
    own ``__init__`` (``""``) is at the base."""
    if module == "":
        return 0
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def package_imports(path: Path, module: str) -> set[str]:
    """The package modules ``path`` imports, anywhere in the file (relative imports resolved)."""
    imported = set()
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                prefix = ".".join([PACKAGE, *base])
                names = [f"{prefix}.{node.module}" if node.module else prefix]
            else:
                names = [node.module] if node.module else []
            # `from amodal_lightning.data import record` imports the submodule when there is one.
            names += [f"{names[0]}.{alias.name}" for alias in node.names if names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                imported.add(name[len(PACKAGE) + 1 :])
    return imported


def import_graph() -> dict[str, set[str]]:
    """Every package module and the package modules it imports (names that are not modules are dropped)."""
    paths = {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        graph[module] = {name for name in package_imports(path, module) if name in paths and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_module_has_a_layer():
    unplaced = sorted(module for module in import_graph() if layer_of(module) is None)
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"


def test_imports_point_down_the_layers():
    upward = []
    for module, imported in sorted(import_graph().items()):
        for name in sorted(imported):
            if layer_of(name) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) -> {name} ({LAYERS[layer_of(name)][0]})")
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_layer_test_sees_an_upward_import(tmp_path):
    """The walk finds a deferred upward import and resolves relative imports (the test can fail)."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from amodal_lightning.tasks import layers\n\nfrom ..inference import render\n")
    found = package_imports(source, "data.probe")
    assert {"tasks", "tasks.layers", "inference", "inference.render"} <= found
    assert layer_of("tasks.layers") > layer_of("data.probe")
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
