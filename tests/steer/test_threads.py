"""Every model command runs torch on `--threads` threads, set in one place (`models.load_model`):
by default one for the commands that generate or read one text at a time, torch's own (every
core) for the batched ones — fixed numbers, so that a run gives the same numbers every time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from saescope import cli, models
from saescope.config import ModelSettings
from saescope.config.serve import ServeConfig
from saescope.errors import ConfigError

BATCHED = ("capture", "train", "eval", "index")
ONE_AT_A_TIME = ("query", "steer", "effects", "contrast", "serve")


def test_every_model_command_has_the_option() -> None:
    for names, default in ((BATCHED, 0), (ONE_AT_A_TIME, 1)):
        for name in names:
            fields = {f.name: f for f in dataclasses.fields(cli.COMMANDS[name].config)}
            assert "threads" in fields and fields["threads"].default == default, name
    assert ServeConfig(run=Path("x")).threads == 1


def test_load_model_runs_torch_on_the_threads_asked_for(tiny_model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        models.load_model(ModelSettings(model=str(tiny_model_dir), device="cpu", threads=2))
        assert torch.get_num_threads() == 2
        models.load_model(ModelSettings(model=str(tiny_model_dir), device="cpu", threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_default_does_not_depend_on_the_machine_s_load(tiny_model_dir: Path) -> None:
    """0 leaves torch's setting alone: the same command gives the same numbers whatever else runs."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        models.load_model(ModelSettings(model=str(tiny_model_dir), device="cpu"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_negative_threads_are_refused() -> None:
    with pytest.raises(ConfigError, match="--threads must be 0"):
        models.use_threads(-1)
