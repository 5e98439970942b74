"""`saescope steer` end to end on the tiny Llama: a latent whose decoder direction is a token's
unembedding beats both controls on that token; results keep prompt order; controls are drawn as
documented; the command line prints one JSON document, and bad input is one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from saescope import cli
from saescope.bound import BoundSAE
from saescope.steer.controls import NEIGHBOURS, control_interventions, control_latent
from saescope.steer.experiment import SteerOptions, run_steering
from saescope.steer.frequencies import FiringStats
from saescope.steer.generate import Sampling
from saescope.steer.interventions import Intervention

from .builders import bind, topk_sae

PROMPTS = ["The cat is on", "Paris", "It is the mat and the"]


def uniform_stats(d_sae: int) -> FiringStats:
    freq = torch.linspace(0.001, 0.2, d_sae, dtype=torch.float64)
    return FiringStats(freq, torch.ones(d_sae, dtype=torch.float64), "made up for the test")


@pytest.fixture(scope="module")
def token_bound(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BoundSAE, int]:
    """An SAE whose latent 0 writes the unembedding row of one token (the truth is known). The
    random model's logits are tiny (a token's log-prob cannot move by more than ~0.6), so this
    fixture's own copy of the model gets an unembedding 30× larger."""
    bound = bind(topk_sae(tiny_model_dir, seed=4), tmp_path_factory.mktemp("token") / "sae")
    token = 101
    unembed = bound.loaded_model.model.lm_head.weight
    with torch.no_grad():
        unembed.mul_(30.0)
        bound.sae.W_dec[0] = unembed[token] / unembed[token].norm()
    return bound, token


def test_a_token_latent_beats_both_controls_on_its_token(token_bound: tuple[BoundSAE, int]) -> None:
    bound, token = token_bound
    options = SteerOptions(sampling=Sampling(max_new_tokens=8), target_ids=(token,))
    result = run_steering(bound, PROMPTS, [Intervention(0, "add", 1.0)], options, uniform_stats(64))
    steered = result.effect(result.steered)
    controls = [result.effect(v) for v in result.controls]
    assert [v.name for v in result.controls] == ["random latent", "random direction"]
    assert steered is not None and all(c is not None for c in controls)
    assert steered > 5.0 and all(steered > c + 5.0 for c in controls), (steered, controls)  # type: ignore[operator]
    assert sum(c.token_ids.count(token) for c in result.steered.completions) > 12
    control_latents = result.controls[0].interventions
    assert control_latents and not control_latents[0].startswith("0:")
    assert "random direction" in result.controls[1].interventions[0]


def test_json_keeps_prompt_order_and_names_every_part(bound: BoundSAE) -> None:
    options = SteerOptions(sampling=Sampling(max_new_tokens=5))
    items = [Intervention(3, "add", 0.2)]
    forward = run_steering(bound, PROMPTS, items, options, uniform_stats(64)).to_json()
    backward = run_steering(bound, PROMPTS[::-1], items, options, uniform_stats(64)).to_json()
    assert forward["prompts"] == PROMPTS
    for key in ("unsteered", "steered"):
        assert len(forward[key]) == len(PROMPTS)
        assert forward[key] == backward[key][::-1]
    assert set(forward["controls"]) == {"random_latent", "random_direction"}
    for control in forward["controls"].values():
        assert len(control["completions"]) == len(PROMPTS) and isinstance(control["effect"], float)
    assert forward["effect"]["targets"] and isinstance(forward["effect"]["steered_effect"], float)
    assert forward["interventions"] == ["3:add:0.2"]
    json.dumps(forward)


def test_the_steered_completion_streams_as_it_is_generated(bound: BoundSAE) -> None:
    out = io.StringIO()
    options = SteerOptions(sampling=Sampling(max_new_tokens=6), controls=False)
    result = run_steering(bound, PROMPTS[:1], [Intervention(3, "add", 0.2)], options, stream=out)
    assert out.getvalue() == f"steered: {result.steered.completions[0].text}\n"
    assert result.controls == [] and result.stats_source is None  # no statistics were needed


def test_control_latents_have_similar_frequency_and_are_reproducible() -> None:
    freq = torch.logspace(-6, -1, 200, dtype=torch.float64)
    chosen = {control_latent(100, freq, [101], torch.Generator().manual_seed(s)) for s in range(40)}
    assert 100 not in chosen and 101 not in chosen
    assert all(abs(c - 100) <= NEIGHBOURS // 2 + 1 for c in chosen) and len(chosen) > 3
    items = [Intervention(100, "clamp", 10.0, relative=True), Intervention(5, "add", 2.0)]
    maximum = torch.ones(200, dtype=torch.float64)
    maximum[90:110] = 0  # never fired: a relative clamp cannot use them
    first = control_interventions(items, freq, seed=1, maximum=maximum)
    assert first == control_interventions(items, freq, seed=1, maximum=maximum)
    assert not 90 <= first[0].latent < 110 and first[0].relative and first[0].value == 10.0
    assert first[1].latent not in (5, 100) and first[1].value == 2.0


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_command_prints_one_json_document(bound: BoundSAE, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["steer", str(bound.path), "--steer", "3:add:0.2,7:clamp:2x", "--prompt", "The cat"]
    status, out, _ = run_cli([*argv, "--max-new-tokens", "4", "--stats-tokens", "200", "--json"], capsys)
    assert status == 0
    doc = json.loads(out)
    assert len(doc["unsteered"]) == len(doc["steered"]) == 1
    assert doc["stats_source"].startswith("measured on") and len(doc["interventions"]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steer", "64:add:1"], "latent 64 is out of range"),
        (["--steer", "3:boost:1"], "unknown mode 'boost'"),
        (["--steer", "3:add:1", "--prompt", " "], "--prompt must not be empty"),
        (["--steer", "3:add:1", "--max-new-tokens", "600"], "exceeds the model's context of 512 tokens"),
        (["--steer", "3:add:1", "--positions", "40"], "position 40 is beyond prompt 0"),
        (["--steer", "3:add:1", "--substring", "dog"], "substring 'dog' does not occur in prompt 0"),
    ],
)
def test_bad_input_is_one_line(
    bound: BoundSAE, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["steer", str(bound.path), "--prompt", "The cat", "--no-controls", *extra]
    status, out, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.startswith("saescope steer")]
    assert status == 2 and out == "" and "Traceback" not in err
    assert len(lines) == 1 and message in lines[0], err
