"""steer, effects and contrast refuse what they can before the model loads: a wrong latent id
costs well under a second (no tokenizer either), a wrong position, substring, target or text
length costs a tokenizer load, never a model load."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from saescope import cli
from saescope.bound import BoundSAE


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("saescope.bound.load_model", refuse)


def one_error_line(status: int, err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"saescope {command}")]
    assert status == 2 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_a_latent_out_of_range_fails_at_once(
    bound: BoundSAE, no_model: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_tokenizer(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the tokenizer was loaded")

    monkeypatch.setattr("saescope.steer.preflight.load_tokenizer", no_tokenizer)
    argv = ["steer", str(bound.path), "--prompt", "The cat", "--steer", "999999:add:1"]
    started = time.perf_counter()
    status = cli.main(argv)
    seconds = time.perf_counter() - started
    line = one_error_line(status, capsys.readouterr().err, "steer")
    assert "latent 999999 is out of range: the SAE has 64 latents" in line
    assert seconds < 0.5, seconds


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--positions", "40"], "position 40 is beyond prompt 0"),
        (["--substring", "dog"], "substring 'dog' does not occur in prompt 0"),
        (["--target", "cats"], "--target 'cats' is 3 tokens"),
        (["--steer", "3:clamp:2"], "latent 3 is given twice"),
    ],
)
def test_bad_steering_input_fails_before_the_model_loads(
    bound: BoundSAE, no_model: None, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["steer", str(bound.path), "--prompt", "The cat", "--steer", "3:add:1", *extra]
    assert message in one_error_line(cli.main(argv), capsys.readouterr().err, "steer")


def test_effects_refuse_a_long_text_before_the_model_loads(
    bound: BoundSAE, no_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["effects", str(bound.path), "--text", "the cat " * 20, "--max-tokens", "10"]
    line = one_error_line(cli.main(argv), capsys.readouterr().err, "effects")
    assert "more than --max-tokens 10" in line


def test_contrast_refuses_an_absent_substring_before_the_model_loads(
    bound: BoundSAE, no_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pos.txt").write_text("The cat is on the mat\nParis is big\n", encoding="utf-8")
    (tmp_path / "neg.txt").write_text("A dog\n", encoding="utf-8")
    argv = ["contrast", str(bound.path), "--positive", str(tmp_path / "pos.txt"), "--negative"]
    argv += [str(tmp_path / "neg.txt"), "--positions", "substring", "--substring", "zebra"]
    line = one_error_line(cli.main(argv), capsys.readouterr().err, "contrast")
    assert "no positive text has a position to compare" in line
