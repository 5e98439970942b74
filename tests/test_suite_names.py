"""The test tree never shadows an installed package.

pytest puts the folder above a test's topmost package on `sys.path` (its default "prepend" import
mode). A test folder without `__init__.py` would make its own name importable there, ahead of
site-packages: `tests/kernels/` once hid Hugging Face's `kernels` package, which transformers
imports at start-up, and the whole suite failed to import. So every test folder is a package
under `tests`, the only name the suite adds, and no installed distribution provides that name.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def exposed_names() -> set[str]:
    """The top-level module names pytest's prepend mode makes importable for the suite's files."""
    names = set()
    for path in TESTS.rglob("*.py"):
        if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(TESTS).parts):
            continue
        top = path.parent
        while (top / "__init__.py").is_file() and (top.parent / "__init__.py").is_file():
            top = top.parent
        names.add(top.name if (top / "__init__.py").is_file() else path.stem)
    return names


def test_every_test_folder_is_a_package_under_tests() -> None:
    folders = {p.parent for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(TESTS.parent)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"add an __init__.py to {missing} (else its modules become top-level names)"
    assert exposed_names() == {"tests"}


def test_no_installed_distribution_provides_a_name_the_suite_adds() -> None:
    provided = importlib.metadata.packages_distributions()
    clashes = {name: provided[name] for name in exposed_names() if name in provided}
    assert not clashes, f"test names shadow installed packages: {clashes}"
    assert not exposed_names() & set(sys.stdlib_module_names)


def test_installed_packages_import_from_site_packages() -> None:
    """Every top-level name an installed distribution provides resolves outside the test tree."""
    import importlib.util

    for name in importlib.metadata.packages_distributions():
        if not name.isidentifier():
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        origin = spec.origin if spec is not None else None
        if origin and origin != "namespace":
            assert not Path(origin).resolve().is_relative_to(TESTS), f"{name} resolves to {origin}"
