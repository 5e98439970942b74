"""The package's layout: every module imports, and imports point one way.

Stage modules (capture, train, evals, convert, index, interpret, steer, …) import the ground floor
(files, errors, config, models, hookpoints, hooks, positions, bound, store, sae, kernels, data,
distributed, render), never each other — except that interpret, steer and dashboard may read an
index (and dashboard the explanations interpret stores in it), and the top (cli, demo, web) may
call any stage. The ground floor never imports a stage. Checked on
the syntax trees, so imports inside functions count too.
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
    "render",
}
STAGES = {"capture", "train", "evals", "convert", "index", "interpret", "steer", "dashboard"}
TOP = {"cli", "demo", "web", "__init__", "__main__"}
MAY_READ = {"interpret": {"index"}, "steer": {"index"}, "dashboard": {"index", "interpret"}}


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
