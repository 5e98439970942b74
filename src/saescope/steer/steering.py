"""Generation with interventions on an SAE's latents: the Python API a notebook or a server uses.

    bound = bind_sae("runs/demo/sae")
    edits = [Intervention(1234, "add", 8.0)]
    result = generate_steered(bound, ["The weather today"], edits, Sampling(max_new_tokens=30))
    result.completions[0].text

    for step in stream_steered(bound, ["The weather today"], edits):    # token by token
        send(step.texts[0])                                              # close() it to stop early

`make_steering` checks the interventions against the SAE and turns relative values (10× max)
into absolute ones; `steering_patch` is the hook function a generation runs where the SAE's
decoder writes (`BoundSAE.writes`: its hookpoint, or a transcoder's output, edited from what it
read in the same pass), applying each intervention at the columns `places.Places` gives it. An
empty list of interventions generates unsteered.

This module knows nothing about controls, effect measures or the command line.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

from torch import Tensor

from ..bound import BoundSAE
from ..models import pad_token_id
from .edit import Steering
from .frequencies import FiringStats, firing_stats
from .generate import Generation, Patch, Sampling, Step, generate, generate_steps
from .interventions import Intervention, check_interventions, needs_maximum, resolve_values
from .places import Places, PromptBatch, left_pad, places_for
from .texts import encode_all


def make_steering(
    bound: BoundSAE,
    interventions: Sequence[Intervention],
    splice: bool = False,
    stats: FiringStats | None = None,
    direction: Tensor | None = None,
) -> Steering:
    """A `Steering` of the bound SAE: ids checked, relative values resolved (statistics measured
    when `stats` is None and some value needs a maximum)."""
    check_interventions(interventions, bound.sae.d_sae)
    if needs_maximum(interventions):
        if stats is None or stats.maximum is None:
            stats = firing_stats(bound, need_maximum=True)
        assert stats.maximum is not None
        interventions = resolve_values(interventions, stats.maximum.tolist())
    return Steering(bound.sae, tuple(interventions), splice, direction)


def steering_patch(steering: Steering, places: Places, bound: BoundSAE) -> Patch:
    """The patch that applies `steering` where `places` says, in every forward pass, where
    `bound`'s decoder writes."""

    def fn(read: Tensor, act: Tensor, start: int) -> Tensor:
        return steering.apply(act, places.window(start, act.shape[1]).to(act.device), read)

    return Patch(bound.hookpoint, bound.writes, fn)


def prompt_batch(
    bound: BoundSAE, prompts: Sequence[str], chat: bool = False, prepend_bos: bool = True
) -> PromptBatch:
    """Prompts tokenized (chat template or BOS) and left-padded on the model's device."""
    loaded = bound.loaded_model
    ids = encode_all(loaded.tokenizer, list(prompts), chat, prepend_bos)
    return left_pad(ids, pad_token_id(loaded.tokenizer), loaded.device)


def patch_for(
    bound: BoundSAE, steering: Steering | None, batch: PromptBatch, first_row: int = 0
) -> Patch | None:
    """The patch of `steering` over `batch` (None when unsteered)."""
    if steering is None:
        return None
    places = places_for(steering.interventions, batch, bound.loaded_model.tokenizer, first_row)
    return steering_patch(steering, places, bound)


def prepared(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    chat: bool,
    prepend_bos: bool,
    splice: bool,
) -> tuple[PromptBatch, Patch | None]:
    """The prompts as one batch, and the patch applying `interventions` to it (None: unsteered)."""
    batch = prompt_batch(bound, prompts, chat, prepend_bos)
    steering = make_steering(bound, interventions, splice) if interventions else None
    return batch, patch_for(bound, steering, batch)


def stream_steered(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    sampling: Sampling | None = None,
    chat: bool = False,
    prepend_bos: bool = True,
    splice: bool = False,
    use_cache: bool = True,
) -> Generator[Step, None, None]:
    """One `Step` per generated token of every prompt (all prompts in one batch); closing the
    generator stops the generation and frees its cache."""
    batch, patch = prepared(bound, prompts, interventions, chat, prepend_bos, splice)
    return generate_steps(bound.loaded_model, batch, sampling, patch, use_cache)


def generate_steered(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    sampling: Sampling | None = None,
    chat: bool = False,
    prepend_bos: bool = True,
    splice: bool = False,
    use_cache: bool = True,
    targets: Sequence[int] = (),
) -> Generation:
    """`stream_steered` run to the end (with `targets`, completions are scored by them)."""
    batch, patch = prepared(bound, prompts, interventions, chat, prepend_bos, splice)
    return generate(bound.loaded_model, batch, sampling, patch, use_cache, targets)


__all__ = [
    "generate_steered",
    "make_steering",
    "patch_for",
    "prompt_batch",
    "steering_patch",
    "stream_steered",
]
