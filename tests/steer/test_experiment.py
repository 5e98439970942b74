"""`saescope steer` end to end on the tiny Llama: a latent whose decoder direction is a token's
unembedding moves that token at the positions it edits and its random-latent control does not;
effects say what they cover and are never a made-up 0; default targets are whole words; results
keep prompt order; controls are drawn where the edit applies; the command line prints one JSON
document, and bad input is one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from saescope import cli
from saescope.bound import BoundSAE
from saescope.steer.controls import NEIGHBOURS, control_interventions, control_latent
from saescope.steer.experiment import run_steering
from saescope.steer.frequencies import FiringStats
from saescope.steer.generate import Sampling
from saescope.steer.interventions import Intervention, SteeringError
from saescope.steer.variants import RANDOM_LATENT, SteerOptions, control_variants, plan_variants
from saescope.tokens import is_whole_word, single_token

from .builders import bind, topk_sae

PROMPTS = ["The cat is on", "Paris", "It is the mat and the"]


def uniform_stats(d_sae: int) -> FiringStats:
    freq = torch.linspace(0.001, 0.2, d_sae, dtype=torch.float64)
    return FiringStats(freq, torch.ones(d_sae, dtype=torch.float64), "made up for the test")


@pytest.fixture(scope="module")
def token_bound(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BoundSAE, int]:
    """An SAE whose latent 0 writes the unembedding row of the whole word ' cat' (the truth is
    known). The random model's logits are tiny (a token's log-prob cannot move by more than ~0.6),
    so this fixture's own copy of the model gets an unembedding 30× larger."""
    bound = bind(topk_sae(tiny_model_dir, seed=4), tmp_path_factory.mktemp("token") / "sae")
    token = single_token(bound.loaded_model.tokenizer, " cat")
    unembed = bound.loaded_model.model.lm_head.weight
    with torch.no_grad():
        unembed.mul_(30.0)
        bound.sae.W_dec[0] = unembed[token] / unembed[token].norm()
    return bound, token


def test_a_token_latent_moves_its_token_and_its_random_latent_control_does_not(
    token_bound: tuple[BoundSAE, int],
) -> None:
    bound, token = token_bound
    options = SteerOptions(sampling=Sampling(max_new_tokens=8), target_ids=(token,))
    result = run_steering(bound, PROMPTS, [Intervention(0, "add", 1.0)], options, uniform_stats(64))
    steered = result.steered.effects
    latent, direction = (v.effects for v in result.controls)
    assert [v.name for v in result.controls] == ["random latent", "random direction"]
    assert steered is not None and latent is not None and direction is not None
    assert steered.next_token.value is not None and steered.next_token.value > 5.0, result.render()
    assert latent.next_token.value is not None and latent.next_token.value < 2.0, result.render()
    assert steered.next_token.value > latent.next_token.value + 5
    assert (
        direction.next_token.value is not None and steered.next_token.value > direction.next_token.value + 4
    )
    # every number says what it covers: an add at every position covers every token of the prompts
    # and of their unsteered completions (BOS and a final EOS left out)
    tokenizer = bound.loaded_model.tokenizer
    prompt_tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS)
    completion_tokens = sum(len(c.token_ids) - (c.stopped == "eos") for c in result.unsteered.completions)
    assert steered.next_token.covers == steered.kl.covers == prompt_tokens + completion_tokens
    assert latent.next_token.covers > 0 and steered.kl.value is not None and steered.kl.value > 0
    assert steered.completion.value is not None and steered.completion.value > 5.0
    assert steered.completion.covers == sum(len(c.token_ids) for c in result.steered.completions)
    assert sum(c.token_ids.count(token) for c in result.steered.completions) > 12
    assert not result.controls[0].interventions[0].startswith("0:")
    assert "random direction" in result.controls[1].interventions[0]


def test_a_zero_edit_has_zero_kl_over_the_positions_it_covers(bound: BoundSAE) -> None:
    options = SteerOptions(sampling=Sampling(max_new_tokens=4), controls=False, target=(" cat",))
    result = run_steering(bound, PROMPTS[:2], [Intervention(3, "add", 0.0)], options)
    effects = result.steered.effects
    assert effects is not None
    assert effects.kl.value == 0.0 and effects.next_token.value == 0.0 and effects.kl.covers > 0


def active_and_inactive(bound: BoundSAE, prompt: str) -> tuple[int, int]:
    """A latent active on some non-BOS token of `prompt`, and one active on none."""
    from saescope.bound import encode_text

    codes = encode_text(bound, prompt)
    seen = {
        int(i)
        for p in codes.text_positions
        for i, a in zip(codes.latent_indices[p], codes.latent_acts[p])
        if a > 0
    }
    inactive = next(i for i in range(bound.sae.d_sae) if i not in seen)
    return min(seen), inactive


def test_an_ablation_of_an_inactive_latent_is_refused_not_reported_as_zero(bound: BoundSAE) -> None:
    _, inactive = active_and_inactive(bound, "The cat is on")
    options = SteerOptions(sampling=Sampling(max_new_tokens=4), controls=False, target=(" cat",))
    on_prompt = [Intervention(inactive, "ablate", where="prompt")]
    with pytest.raises(SteeringError, match=f"latent {inactive} is not active on any of the 5 prompt tokens"):
        run_steering(bound, ["The cat is on"], on_prompt, options)


def test_an_edit_that_changes_nothing_says_not_measured(bound: BoundSAE) -> None:
    """An ablation over the prompt and the completion of a latent active nowhere there: no number."""
    _, dead = active_and_inactive(bound, "The cat is on")
    options = SteerOptions(sampling=Sampling(max_new_tokens=3), controls=False, target=(" cat",))
    with torch.no_grad():
        saved = bound.sae.b_enc[dead].item()
        bound.sae.b_enc[dead] = -1e6  # never fires anywhere
    try:
        result = run_steering(bound, ["The cat is on"], [Intervention(dead, "ablate")], options)
    finally:
        with torch.no_grad():
            bound.sae.b_enc[dead] = saved
    effects = result.steered.effects
    assert effects is not None and effects.next_token.value is None and effects.kl.value is None
    assert effects.completion.value is None  # the completions are the unsteered ones: nothing to compare
    assert "changes none of the" in str(effects.next_token.reason) and "0.000" not in result.render()
    assert "not measured: the edit changes none of the" in result.render()


def test_an_ablation_control_is_drawn_among_latents_active_where_the_edit_applies(bound: BoundSAE) -> None:
    active, _ = active_and_inactive(bound, "The cat is on")
    options = SteerOptions(sampling=Sampling(max_new_tokens=3), target=(" cat",))
    plan = plan_variants(
        bound, ["The cat is on"], [Intervention(active, "ablate")], options, uniform_stats(64)
    )
    control = plan.spec(RANDOM_LATENT)
    assert control.steering is not None and control.not_run is None
    drawn = control.steering.interventions[0].latent
    assert drawn != active and bool(plan.region.firing[0, drawn])


def test_no_control_latent_is_said_not_run(bound: BoundSAE) -> None:
    active, _ = active_and_inactive(bound, "The cat is on")
    options = SteerOptions(sampling=Sampling(max_new_tokens=3), target=(" cat",))
    stats = uniform_stats(64)
    plan = plan_variants(bound, ["The cat is on"], [Intervention(active, "ablate")], options, stats)
    empty = plan.region._replace(firing=torch.zeros_like(plan.region.firing))  # nothing else fires there
    steering = plan.spec("steered").steering
    assert steering is not None
    latent, direction = control_variants(bound, steering, [Intervention(active, "ablate")], stats, empty, 0)
    assert latent.steering is None and "fires where the edit applies" in str(latent.not_run)
    assert direction.steering is not None


def test_default_targets_are_whole_words_never_fragments(token_bound: tuple[BoundSAE, int]) -> None:
    bound, cat = token_bound
    tokenizer = bound.loaded_model.tokenizer
    fragment = single_token(tokenizer, "P")
    unembed = bound.loaded_model.model.lm_head.weight
    with torch.no_grad():
        saved = bound.sae.W_dec[1].clone()
        mix = 2 * unembed[fragment] / unembed[fragment].norm() + unembed[cat] / unembed[cat].norm()
        bound.sae.W_dec[1] = mix / mix.norm()  # the fragment 'P' is its top logit token
    try:
        options = SteerOptions(sampling=Sampling(max_new_tokens=3), controls=False)
        result = run_steering(bound, PROMPTS[:1], [Intervention(1, "add", 1.0)], options)
    finally:
        with torch.no_grad():
            bound.sae.W_dec[1] = saved
    assert fragment not in result.targets.ids and result.targets.ids[0] == cat
    assert all(is_whole_word(tokenizer, t) for t in result.targets.ids)
    assert "whole words" in result.targets.source and "' cat'" in result.render()


def test_json_keeps_prompt_order_and_names_every_part(bound: BoundSAE) -> None:
    options = SteerOptions(sampling=Sampling(max_new_tokens=5), target=(" cat", " the"))
    items = [Intervention(3, "add", 0.2)]
    forward = run_steering(bound, PROMPTS, items, options, uniform_stats(64)).to_json()
    backward = run_steering(bound, PROMPTS[::-1], items, options, uniform_stats(64)).to_json()
    assert forward["prompts"] == PROMPTS
    for key in ("unsteered", "steered"):
        assert len(forward[key]) == len(PROMPTS)
        assert forward[key] == backward[key][::-1]
    assert set(forward["controls"]) == {"random_latent", "random_direction"}
    assert set(forward["effects"]) == {"steered", "random_latent", "random_direction"}
    for effects in forward["effects"].values():
        for name in ("next_token", "kl", "completion"):
            assert isinstance(effects[name]["value"], float) and effects[name]["covers"] > 0
    assert (
        forward["targets"]["tokens"] == [" cat", " the"]
        and forward["targets"]["source"] == "named with --target"
    )
    assert set(forward["measures"]) == {"next_token", "kl", "completion"}
    assert forward["interventions"] == ["3:add:0.2"] and forward["sweep"] is None
    json.dumps(forward)


def test_the_steered_completion_streams_as_it_is_generated(bound: BoundSAE) -> None:
    out = io.StringIO()
    options = SteerOptions(sampling=Sampling(max_new_tokens=6), controls=False, target=(" cat",))
    result = run_steering(bound, PROMPTS[:1], [Intervention(3, "add", 0.2)], options, stream=out)
    assert out.getvalue() == f"steered: {result.steered.completions[0].text}\n"
    assert result.controls == [] and result.stats_source is None  # no statistics were needed


def test_a_sweep_reports_effect_and_fluency_per_strength(
    token_bound: tuple[BoundSAE, int], tmp_path: Path
) -> None:
    bound, token = token_bound
    options = SteerOptions(sampling=Sampling(max_new_tokens=6), target_ids=(token,))
    plot = tmp_path / "sweep.png"
    result = run_steering(
        bound,
        PROMPTS[:2],
        [Intervention(0, "add", 0.5)],
        options,
        uniform_stats(64),
        sweep=(4, 0.5, 1),
        plot=plot,
    )
    sweep = result.sweep
    assert sweep is not None and [p.multiple for p in sweep.points] == [0.5, 1, 4]
    assert [p.interventions for p in sweep.points] == [["0:add:0.25"], ["0:add:0.5"], ["0:add:2"]]
    effects = [p.effects.next_token.value for p in sweep.points]
    assert None not in effects and effects == sorted(effects)  # type: ignore[type-var]
    assert sweep.unsteered.perplexity.value is not None and sweep.ngram == 3
    for p in sweep.points:
        assert p.perplexity.value is not None and p.perplexity.covers > 0 and p.perplexity.unit == "tokens"
        assert p.random_latent.value is not None and p.random_direction.value is not None
    limit = 2 * sweep.unsteered.perplexity.value
    readable = [
        p.multiple for p in sweep.points if p.perplexity.value is not None and p.perplexity.value <= limit
    ]
    assert sweep.readable == (max(readable) if readable else None)
    assert plot.read_bytes()[:4] == b"\x89PNG" and sweep.plot == plot
    doc = result.to_json()["sweep"]
    assert len(doc["points"]) == 3 and doc["perplexity_limit"] == 2.0 and "perplexity" in doc["points"][0]
    assert "strength" in result.render() and "repeated 3-grams" in result.render()


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
    firing = torch.zeros(2, 200, dtype=torch.bool)
    firing[:, 150:160] = True  # only these fire where the edits apply
    region = control_interventions(items, freq, seed=1, maximum=maximum, firing=firing)
    assert all(150 <= i.latent < 160 for i in region)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_command_prints_one_json_document(bound: BoundSAE, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "steer",
        str(bound.path),
        "--steer",
        "3:add:0.2,7:clamp:2x",
        "--prompt",
        "The cat",
        "--target",
        " cat",
    ]
    status, out, _ = run_cli([*argv, "--max-new-tokens", "4", "--stats-tokens", "200", "--json"], capsys)
    assert status == 0
    doc = json.loads(out)
    assert len(doc["unsteered"]) == len(doc["steered"]) == 1
    assert doc["stats_source"].startswith("measured on") and len(doc["interventions"]) == 2
    assert doc["effects"]["steered"]["next_token"]["unit"] == "positions"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steer", "64:add:1"], "latent 64 is out of range"),
        (["--steer", "3:boost:1"], "unknown mode 'boost'"),
        (["--steer", "3:add:1", "--prompt", " "], "--prompt must not be empty"),
        (["--steer", "3:add:1", "--max-new-tokens", "600"], "exceeds the model's context of 512 tokens"),
        (["--steer", "3:add:1", "--positions", "40"], "position 40 is beyond prompt 0"),
        (["--steer", "3:add:1", "--substring", "dog"], "substring 'dog' does not occur in prompt 0"),
        (["--steer", "3:add:1", "--target", "cats"], "--target 'cats' is 3 tokens"),
        (["--steer", "3:add:1e308"], "overflows"),
        (["--steer", "3:add:1e30"], "more than 1000x the norm at resid_post:1"),
        (["--steer", "3:clamp:1e30"], "more than 1000x the norm at resid_post:1"),
        (["--steer", "3:add:1", "--sweep", "0x"], "--sweep '0x': a multiple must be positive"),
        (["--steer", "3:ablate", "--sweep", "2x"], "an ablation has none"),
    ],
)
def test_bad_input_is_one_line(
    bound: BoundSAE, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["steer", str(bound.path), "--prompt", "The cat", "--no-controls", "--target", " cat", *extra]
    status, out, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.startswith("saescope steer")]
    assert status == 2 and out == "" and "Traceback" not in err
    assert len(lines) == 1 and message in lines[0], err


def test_an_edit_that_empties_the_steered_completion_is_refused(token_bound: tuple[BoundSAE, int]) -> None:
    """A latent that writes EOS's unembedding, pushed hard, makes the model stop at once: one clear
    error, not an empty completion scored as if it were text."""
    bound, _ = token_bound
    eos = bound.loaded_model.tokenizer.eos_token_id
    unembed = bound.loaded_model.model.lm_head.weight
    with torch.no_grad():
        saved = bound.sae.W_dec[2].clone()
        bound.sae.W_dec[2] = unembed[eos] / unembed[eos].norm()
    try:
        options = SteerOptions(sampling=Sampling(max_new_tokens=4), controls=False, target=(" cat",))
        with pytest.raises(SteeringError, match="prompt 0: the steered completion is empty"):
            run_steering(bound, PROMPTS[:1], [Intervention(2, "add", 3.0)], options)
    finally:
        with torch.no_grad():
            bound.sae.W_dec[2] = saved
