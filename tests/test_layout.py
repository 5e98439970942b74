"""The package's layout: every module imports, and imports point one way.

Stage modules (capture, train, evals, convert, index, interpret, steer, render, dashboard) import the
ground floor (files, errors, config, models, hookpoints, hooks, positions, bound, store, sae,
kernels, data, distributed, example, …), never each other — except that interpret, steer and
render may read an index (render also the explanations interpret stores in it, to gather page
views), the dashboard writes what render gathers, compare reads indexes and runs evals' core
evaluation under `eval --metrics`, and the top (cli, demo, web) may call any stage.
The ground floor never imports a stage. Checked on the syntax trees, so imports inside functions
count too.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import saescope

PACKAGE = Path(saescope.__file__).parent
GROUND_FLOOR = {
    "errors",
    "files",
    "config",
    "models",
    "hookpoints",
    "hooks",
    "positions",
    "bound",
    "store",
    "sae",
    "kernels",
    "data",
    "builtin_corpus",
    "distributed",
    "example",
    "fielddocs",
    "runs",
    "tokens",
    "readout",
    "stats",
}
STAGES = {
    "capture",
    "train",
    "evals",
    "convert",
    "index",
    "interpret",
    "steer",
    "render",
    "dashboard",
    "neuronpedia",
    "compare",
    "circuit",
}
TOP = {"cli", "demo", "demo_circuits", "web", "__init__", "__main__"}
MAY_READ = {
    "interpret": {"index"},
    "steer": {"index"},
    "render": {"index", "interpret", "circuit"},
    "dashboard": {"index", "render"},
    "neuronpedia": {"index", "interpret"},
    "compare": {"index", "evals"},
    "circuit": {"index"},
}


def modules() -> list[str]:
    # `python -m saescope` runs the command line when imported
    return sorted(
        m.name
        for m in pkgutil.walk_packages([str(PACKAGE)], prefix="saescope.")
        if m.name != "saescope.__main__"
    )


def top_part(module: str) -> str:
    """`saescope.store.reader` -> `store`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_parts(path: Path, module: str) -> set[str]:
    """The top-level saescope parts a source file imports (absolute or relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] + ([f"{target}.{a.name}" for a in node.names] if not node.module else [])
            elif node.module:
                names = [node.module]
        for name in names:
            if name.startswith("saescope.") or name == "saescope":
                found.add(top_part(name))
    return found - {"__init__"}


def source_of(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


@pytest.mark.parametrize("module", modules())
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_every_part_is_placed_on_a_floor() -> None:
    parts = {top_part(m) for m in modules()}
    unplaced = parts - GROUND_FLOOR - STAGES - TOP
    assert not unplaced, f"place these in GROUND_FLOOR, STAGES or TOP: {sorted(unplaced)}"


@pytest.mark.parametrize("module", modules())
def test_imports_point_one_way(module: str) -> None:
    part = top_part(module)
    if part in TOP:
        return
    imported = imported_parts(source_of(module), module) - {part}
    if part in GROUND_FLOOR:
        assert not imported & STAGES, f"{module} (ground floor) imports the stage(s) {imported & STAGES}"
    else:
        wrong = imported & STAGES - MAY_READ.get(part, set())
        assert not wrong, f"{module} (stage {part}) imports the stage(s) {wrong}"
    assert not imported & (TOP - {"__init__"}), f"{module} imports {imported & TOP}"


def test_the_public_api() -> None:
    import saescope as api

    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert api.bind_sae.__module__ == "saescope.bound"
    assert api.train_saes.__module__ == "saescope.train.trainer"
    assert isinstance(api.__version__, str) and api.__version__[0].isdigit()


def test_config_imports_neither_the_saes_nor_torch() -> None:
    """The settings are the bottom of the ground floor: `saescope.sae` reads `saescope.config` (the
    architectures' hyperparameters, the training record's corpus), never the other way round, and
    `--help` of every command (train included) must not import torch."""
    for module in (m for m in modules() if top_part(m) == "config"):
        path = source_of(module)
        assert "sae" not in imported_parts(path, module), f"{module} imports saescope.sae"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        absolute = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names] + [
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level and n.module
        ]
        assert not [name for name in absolute if name.split(".")[0] == "torch"], f"{module} imports torch"


def test_the_index_package_has_no_import_cycle() -> None:
    """Inside `saescope.index` imports form no cycle (those under TYPE_CHECKING count too): the
    queries take the storage (`index.storage`), and only the package and the query command import
    the `Index` facade (`index.reader`)."""
    package = "saescope.index"
    inside = sorted(m for m in modules() if m == package or m.startswith(package + "."))

    def targets(module: str) -> set[str]:
        path = source_of(module)
        base = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                parts = base.split(".")[: len(base.split(".")) - node.level + 1] if node.level else []
                root = ".".join(parts + ([node.module] if node.module else []))
                # `from . import x` imports the submodule x, not the package's own names
                names = ([root] if node.module else []) + [f"{root}.{a.name}" for a in node.names]
            found |= {n for n in names if n in inside and n != module}
        return found

    graph = {m: targets(m) for m in inside}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return [*path, module, other]
            if other not in state and (found := cycle_from(other, [*path, module])):
                return found
        state[module] = 2
        return None

    for module in inside:
        cycle = cycle_from(module, []) if module not in state else None
        assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    readers = {m for m, imported in graph.items() if f"{package}.reader" in imported}
    assert readers <= {package, f"{package}.query"}, f"{sorted(readers)} import the Index facade"
