"""Every `--config` file under examples/ is one the command line accepts (its options exist, its
values have the right types and pass the stage's own checks)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from saescope import cli

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*/*.toml"))


def positional_placeholders(cls: type) -> dict[str, Any]:
    """A value for each positional field (the SAE or index folder a command is run on)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("positional"):
            out[f.name] = (Path("runs/x/sae"),) if f.type.startswith("tuple") else Path("runs/x/sae")
    return out


def test_there_are_examples() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {"llama-3.2-3b-sentences", "llama-3-8b-fineweb"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_config_parses(path: Path) -> None:
    command = cli.COMMANDS[path.stem]  # the file is named after its command
    values = cli.config_file_values(command.config, path)
    defaults = {**positional_placeholders(command.config), **values}
    cfg = cli.build_config(command.config, argparse.Namespace(), defaults)  # runs the config's own checks
    for key, value in values.items():
        if hasattr(cfg, key):
            assert getattr(cfg, key) == value, key
