"""Generation: the KV-cached loop against the uncached one and against `model.generate`, steered
and not, over many left-padded prompts; every generated token really edited; EOS, sampling and
streaming; and no hook left on the model, however a generation ends."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from saescope.bound import BoundSAE
from saescope.errors import SaescopeError
from saescope.hooks import collect_activations, patch_activations
from saescope.steer.generate import Patch, Sampling, TextStream, generate, generate_steps, next_tokens
from saescope.steer.interventions import Intervention
from saescope.steer.steering import generate_steered, make_steering, patch_for, prompt_batch, stream_steered

PROMPTS = [
    "The cat",
    "Paris is on the mat and the cat is",
    "a",
    "It is the cat on the mat",
    "Is it?",
    "the the the the",
    "Paris",
    "On a mat, a cat sat; on the cat, a hat.",
    "er",
    "1 2 3 4 5 6 7 8",
    "The Paris cat is on",
    "hat",
]


def tokens(generation) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return [c.token_ids for c in generation.completions]


def no_hooks(model: torch.nn.Module) -> bool:
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def clean_logits(bound: BoundSAE) -> Tensor:
    ids = torch.tensor([[1, 60, 70, 80, 90]])
    with torch.no_grad():
        return bound.loaded_model.model(input_ids=ids).logits


def a_firing_latent(bound: BoundSAE) -> int:
    """The latent firing most often on the first prompts."""
    batch = prompt_batch(bound, PROMPTS[:4])
    with torch.no_grad(), collect_activations(bound.loaded_model.model, [bound.hookpoint]) as collector:
        act = collector.run(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[
            bound.hookpoint.name
        ]
        dense = bound.sae.encode_dense(act[batch.attention_mask.bool()])
    return int((dense > 0).float().mean(0).argmax())


STEERINGS = {
    "add everywhere": lambda latent: [Intervention(latent, "add", 0.15), Intervention(latent + 1, "ablate")],
    "clamp prompt": lambda latent: [Intervention(latent, "clamp", 1.5, where="prompt")],
    "scale generated": lambda latent: [Intervention(latent, "scale", 4.0, where="generated")],
    "positions, conditional": lambda latent: [
        Intervention(latent, "add", 1.0, where="positions", positions=(0, -1), conditional=True)
    ],
    "spliced": lambda latent: [Intervention(latent, "ablate", where="prompt")],
}


@pytest.mark.parametrize("name", ["unsteered", *STEERINGS])
def test_cached_and_uncached_greedy_tokens_are_identical(bound: BoundSAE, name: str) -> None:
    latent = a_firing_latent(bound)
    items = STEERINGS[name](latent) if name in STEERINGS else []
    sampling = Sampling(max_new_tokens=10)
    splice = name == "spliced"
    cached = generate_steered(bound, PROMPTS, items, sampling, splice=splice)
    uncached = generate_steered(bound, PROMPTS, items, sampling, splice=splice, use_cache=False)
    assert tokens(cached) == tokens(uncached)
    assert len({t for row in tokens(cached) for t in row}) > 5  # not one degenerate token
    if items:
        plain = generate_steered(bound, PROMPTS, [], sampling)
        assert tokens(plain) != tokens(cached), "the steering changed nothing: the test proves nothing"


@pytest.mark.parametrize("model", ["bound", "gpt2_bound"])
def test_unsteered_batch_equals_transformers_generate(request: pytest.FixtureRequest, model: str) -> None:
    bound: BoundSAE = request.getfixturevalue(model)
    batch = prompt_batch(bound, PROMPTS)
    ours = generate(bound.loaded_model, batch, Sampling(max_new_tokens=8))
    with torch.no_grad():
        theirs = bound.loaded_model.model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=8,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=bound.loaded_model.tokenizer.pad_token_id,
        )
    assert tokens(ours) == theirs[:, batch.input_ids.shape[1] :].tolist()


@pytest.mark.parametrize("model", ["bound", "gpt2_bound"])
def test_a_padded_batch_generates_what_each_prompt_generates_alone(
    request: pytest.FixtureRequest, model: str
) -> None:
    bound: BoundSAE = request.getfixturevalue(model)
    items = [Intervention(a_firing_latent(bound), "clamp", 1.0, where="positions", positions=(-1,))]
    sampling = Sampling(max_new_tokens=6)
    together = tokens(generate_steered(bound, PROMPTS[:6], items, sampling))
    alone = [tokens(generate_steered(bound, [p], items, sampling))[0] for p in PROMPTS[:6]]
    assert together == alone


@pytest.mark.parametrize("where", ["all", "generated"])
def test_every_generated_token_is_edited_through_the_cache(bound: BoundSAE, where: str) -> None:
    """The next layer sees x + value·d at exactly the covered columns of every cached pass."""
    model, value, latent = bound.loaded_model.model, 0.7, 5
    steering = make_steering(bound, [Intervention(latent, "add", value, where=where)])  # type: ignore[arg-type]
    batch = prompt_batch(bound, PROMPTS[:3])
    seen: list[Tensor] = []
    with patch_activations(model, "model.layers.2:input", lambda a: seen.append(a.clone()) or a):
        run = generate(
            bound.loaded_model, batch, Sampling(max_new_tokens=5), patch_for(bound, steering, batch)
        )
    steered = torch.cat(seen, dim=1)  # [B, P + 4]: the prompt pass, then one column per new token
    ids = torch.cat([batch.input_ids, torch.tensor(tokens(run))[:, :-1]], dim=1)
    mask = torch.cat([batch.attention_mask, torch.ones(3, 4, dtype=torch.long)], dim=1)
    seen.clear()
    with torch.no_grad(), patch_activations(model, "model.layers.2:input", lambda a: seen.append(a) or a):
        model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0))
    change = steered - seen[0]
    prompt_width = batch.input_ids.shape[1]
    covered = mask.bool().clone()
    if where == "generated":
        covered[:, :prompt_width] = False
    expected = covered[..., None] * value * bound.sae.W_dec[latent]
    torch.testing.assert_close(change[mask.bool()], expected[mask.bool()], rtol=0, atol=2e-5)


def test_eos_ends_a_row_and_finished_rows_get_padding(bound: BoundSAE) -> None:
    batch = prompt_batch(bound, PROMPTS[:3])
    free = tokens(generate(bound.loaded_model, batch, Sampling(max_new_tokens=6)))
    stop = free[1][2]  # what row 1 generates third becomes EOS
    config = bound.loaded_model.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = stop
    try:
        run = generate(bound.loaded_model, batch, Sampling(max_new_tokens=6))
    finally:
        config.eos_token_id = saved
    row = run.completions[1]
    assert row.token_ids == free[1][:3] and row.stopped == "eos"
    for r in (0, 2):
        assert run.completions[r].token_ids == free[r][: len(run.completions[r].token_ids)]
        assert run.completions[r].stopped == ("eos" if stop in free[r] else "length")


def test_sampling_is_seeded_and_top_p_keeps_the_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).repeat(2000, 1)

    def draw(top_p: float, seed: int) -> Tensor:
        sampling = Sampling(temperature=1.0, top_p=top_p, seed=seed)
        return next_tokens(logits, sampling, torch.Generator().manual_seed(seed))

    assert set(draw(0.5, 0).tolist()) == {0}
    kept = draw(0.85, 0)
    assert set(kept.tolist()) == {0, 1} and abs(float((kept == 0).float().mean()) - 2 / 3) < 0.05
    assert set(draw(1.0, 0).tolist()) == {0, 1, 2}
    assert torch.equal(draw(1.0, 7), draw(1.0, 7))


def test_sampled_generation_repeats_with_its_seed(bound: BoundSAE) -> None:
    sampling = Sampling(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    first = tokens(generate_steered(bound, PROMPTS[:4], [Intervention(2, "add", 0.5)], sampling))
    again = tokens(generate_steered(bound, PROMPTS[:4], [Intervention(2, "add", 0.5)], sampling))
    other = tokens(
        generate_steered(bound, PROMPTS[:4], [Intervention(2, "add", 0.5)], sampling._replace(seed=4))
    )
    assert first == again and first != other


def test_no_hook_is_left_however_a_generation_ends(bound: BoundSAE) -> None:
    model = bound.loaded_model.model
    before = clean_logits(bound)
    items = [Intervention(3, "add", 2.0)]
    generate_steered(bound, PROMPTS[:2], items, Sampling(max_new_tokens=3))
    assert no_hooks(model)
    steps = stream_steered(bound, PROMPTS[:2], items, Sampling(max_new_tokens=20))
    first = next(steps)
    assert first.number == 0 and len(first.token_ids) == 2
    assert no_hooks(model)  # suspended between steps: no hook
    steps.close()
    abandoned = stream_steered(bound, PROMPTS[:2], items)
    next(abandoned)
    del abandoned

    def broken(read: Tensor, act: Tensor, start: int) -> Tensor:
        raise RuntimeError("boom")

    batch = prompt_batch(bound, PROMPTS[:2])
    with pytest.raises(RuntimeError, match="boom"):
        generate(
            bound.loaded_model,
            batch,
            Sampling(max_new_tokens=2),
            Patch(bound.hookpoint, bound.writes, broken),
        )
    assert no_hooks(model)
    assert torch.equal(clean_logits(bound), before)


def test_context_overflow_is_refused_before_anything_runs(bound: BoundSAE) -> None:
    batch = prompt_batch(bound, PROMPTS[:2])
    with pytest.raises(SaescopeError, match="exceeds the model's context of 512 tokens"):
        generate_steps(bound.loaded_model, batch, Sampling(max_new_tokens=510))


def test_text_stream_holds_back_half_characters(tiny_tok) -> None:  # type: ignore[no-untyped-def]
    ids = tiny_tok("né!", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4  # n, two bytes of é, !
    stream = TextStream(tiny_tok)
    assert [stream.push(t) for t in ids] == ["n", "", "é", "!"]


def test_streamed_pieces_add_up_to_each_completion(bound: BoundSAE) -> None:
    items = [Intervention(3, "add", 0.3)]
    sampling = Sampling(max_new_tokens=9)
    pieces = [""] * len(PROMPTS)
    for step in stream_steered(bound, PROMPTS, items, sampling):
        pieces = [p + t for p, t in zip(pieces, step.texts)]
    assert pieces == [c.text for c in generate_steered(bound, PROMPTS, items, sampling).completions]
