"""The variants of a steering request — unsteered, steered and the two controls — decided, run and
measured one way for `saescope steer` and for the server's playground.

`plan_variants` decides everything before a token is generated:

1. the prompts run once to the SAE's hookpoint (`Region`): which latents fire on the tokens each
   edit covers (the whole prompt for an edit of generated tokens only; BOS never), each edited
   latent's largest activation there, and the median norm of the activation the edits change
   (where the decoder writes: the residual stream for a residual SAE, `mlp_out:L` for a transcoder);
2. an edit whose size overflows the model's precision, or exceeds `edit.ABSURD` × that norm (the
   model's own signal would be a thousandth of the stream), is refused, and so is an ablation,
   scaling or conditional edit of a latent active on none of the prompt tokens it covers when it
   covers no generated token either (`SteeringError`: nothing would change, and every number
   would be a meaningless 0);
3. the controls (`saescope.steer.controls`): a random latent among those firing in the same region
   at a similar frequency, same mode, value and place; a random direction with the edit's norm.
   A control that cannot be drawn stays in the plan with `not_run` saying why.

`VariantRun` generates one variant over one batch of prompts, a step at a time (the server
interleaves the variants' steps; the command line runs each to its end), keeping the tokens and
the target's log-probability at every step. `measure_variants` then gives each variant's
`VariantEffects` (`saescope.steer.measures`). This module knows nothing about HTTP or terminals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..bound import BoundSAE
from ..errors import SaescopeError
from ..hooks import collect_activations
from .controls import NoControl, control_interventions, random_direction
from .edit import ABSURD, Steering
from .frequencies import FiringStats
from .generate import Completion, Sampling, Step, check_length, generate_steps
from .interventions import Intervention, SteeringError, check_interventions
from .measures import (
    ForcedReference,
    Measured,
    PositionSums,
    VariantEffects,
    check_finite,
    completion_change,
    forced_reference,
    from_sums,
    next_token_sums,
)
from .places import places_for
from .steering import make_steering, patch_for, prompt_batch
from .targets import Targets, choose_targets

UNSTEERED, STEERED, RANDOM_LATENT, RANDOM_DIRECTION = (
    "unsteered",
    "steered",
    "random latent",
    "random direction",
)
ACTS_ON_ACTIVATION = ("scale", "ablate")
"""Modes that change a latent only where it is active."""


class SteerOptions(NamedTuple):
    """How a steering run generates and what it compares."""

    sampling: Sampling = Sampling()
    """Token choice (greedy by default) and length."""
    chat: bool = False
    """Wrap prompts in the chat template."""
    prepend_bos: bool = True
    """Start plain prompts with BOS."""
    splice: bool = False
    """Drop the SAE's error (splice the edited reconstruction)."""
    controls: bool = True
    """Also run the random-latent and random-direction controls."""
    target: tuple[str, ...] = ()
    """Words (one token each) whose log-probability measures the effect (default: the latents'
    whole-word top logit-effect tokens)."""
    target_ids: tuple[int, ...] = ()
    """Token ids that measure the effect, when known as ids (overrides `target`)."""
    use_cache: bool = True
    """Generate through the KV cache."""
    batch_size: int = 8
    """Prompts per batch."""


class VariantSpec(NamedTuple):
    """One way of running the prompts."""

    name: str
    """`unsteered`, `steered`, `random latent` or `random direction`."""
    steering: Steering | None
    """The edit (None: unsteered)."""
    described: list[str]
    """What it does, as `12:add:8` (absolute values)."""
    not_run: str | None = None
    """Why this control could not be run (None when it runs)."""


class Region(NamedTuple):
    """What the SAE sees on the prompt tokens each of m interventions covers."""

    firing: Tensor
    """[m, d_sae] bool: latents active on at least one token intervention j covers."""
    largest: list[float]
    """Each edited latent's largest activation on those tokens."""
    tokens: list[int]
    """How many prompt tokens each region holds."""
    stream_norm: float
    """Median norm of the activation the edits change (where the decoder writes: the hookpoint, or
    a transcoder's output) over the prompts' tokens (BOS left out)."""


class SteeringPlan(NamedTuple):
    """A checked steering request, every variant decided."""

    prompts: list[str]
    """The prompts, in order."""
    options: SteerOptions
    """How to generate."""
    variants: list[VariantSpec]
    """Unsteered, steered, then the controls (those not run included)."""
    targets: Targets
    """The tokens the effects are measured on."""
    region: Region
    """The prompts as the SAE sees them where the edits apply."""
    stats_source: str | None
    """Where latent frequencies and maxima came from (None when none were needed)."""

    def spec(self, name: str) -> VariantSpec:
        """The variant called `name`."""
        return next(v for v in self.variants if v.name == name)

    def batches(self) -> list[tuple[int, list[str]]]:
        """(first prompt number, prompts) of each batch."""
        size = self.options.batch_size
        return [(first, self.prompts[first : first + size]) for first in range(0, len(self.prompts), size)]


# ----- planning -------------------------------------------------------------------------------
@torch.no_grad()
def region_of(
    bound: BoundSAE, prompts: Sequence[str], interventions: Sequence[Intervention], options: SteerOptions
) -> Region:
    """Run the prompts to the hookpoint and read the SAE there (see `Region`)."""
    sae, loaded = bound.sae, bound.loaded_model
    m = len(interventions)
    firing = torch.zeros((m, sae.d_sae), dtype=torch.bool)
    largest = torch.zeros(m, dtype=torch.float64)
    tokens = [0] * m
    norms: list[Tensor] = []
    latents = torch.tensor([i.latent for i in interventions])
    size = options.batch_size
    bos = loaded.tokenizer.bos_token_id
    for first in range(0, len(prompts), size):
        batch = prompt_batch(bound, prompts[first : first + size], options.chat, options.prepend_bos)
        places = places_for(interventions, batch, loaded.tokenizer, first)
        mask = batch.attention_mask
        with collect_activations(loaded.model, list({bound.hookpoint, bound.writes})) as collector:
            seen = collector.run(
                input_ids=batch.input_ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
            )
        acts = seen[bound.hookpoint.name].float()
        real = mask.bool() & (batch.input_ids != int(bos) if bos is not None else True)
        norms.append(seen[bound.writes.name][real].float().norm(dim=-1).cpu())
        values, idx, _ = sae.encode(acts[real])
        values, idx = values.cpu(), idx.cpu()
        edited = (values[:, :, None] * (idx[:, :, None] == latents).to(values.dtype)).sum(1)  # [n, m]
        covered = places.prompt.cpu()[:, real.cpu()]  # [m, n]
        for j in range(m):
            rows = covered[j] if bool(covered[j].any()) else torch.ones_like(covered[j])
            on = values[rows] > 0
            firing[j, idx[rows][on]] = True
            tokens[j] += int(rows.sum())
            if bool(rows.any()):
                largest[j] = max(float(largest[j]), float(edited[rows, j].max()))
    stream = torch.cat(norms) if norms else torch.zeros(1)
    median = float(stream.median()) if stream.numel() else 0.0
    return Region(firing, largest.tolist(), tokens, median)


def edit_size(item: Intervention, largest: float, norm: float) -> float:
    """An upper bound of the norm of one intervention's change of the activation, given the latent's
    largest activation where it applies and its decoder norm."""
    if item.mode == "add":
        coefficient = abs(item.value)
    elif item.mode == "clamp":
        coefficient = max(abs(item.value), abs(item.value - largest))
    elif item.mode == "scale":
        coefficient = abs(item.value - 1.0) * largest
    else:
        coefficient = largest
    return coefficient * norm


def check_size(bound: BoundSAE, steering: Steering, region: Region) -> None:
    """Refuse an edit that overflows or is absurdly large (see the module docstring)."""
    norms = bound.sae.W_dec.detach().float().norm(dim=-1)
    size = 0.0
    for j, item in enumerate(steering.interventions):
        size += edit_size(item, region.largest[j], float(norms[item.latent]))
    described = "; ".join(i.describe() for i in steering.interventions)
    largest = torch.finfo(bound.loaded_model.dtype).max
    if not math.isfinite(size) or size > largest:
        dtype = str(bound.loaded_model.dtype).removeprefix("torch.")
        raise SteeringError(
            f"{described}: the edit's norm ({size:.3g}) overflows the model's {dtype} (at most "
            f"{largest:.3g}); give a value of a sensible size (e.g. 2x-10x the latent's maximum)"
        )
    limit = ABSURD * region.stream_norm
    if region.stream_norm > 0 and size > limit:
        raise SteeringError(
            f"{described}: the edit's norm ({size:.3g}) is more than {ABSURD:g}x the norm at "
            f"{bound.writes.alias} ({region.stream_norm:.3g}, the median over the prompts' tokens): it "
            "would leave nothing of the model's own computation; give a value of a sensible size "
            "(e.g. 2x-10x the latent's maximum)"
        )


def check_active(steering: Steering, region: Region) -> None:
    """Refuse an edit that can only act where its latent is active when it is active nowhere it applies."""
    for j, item in enumerate(steering.interventions):
        acts_on_activation = item.mode in ACTS_ON_ACTIVATION or item.conditional
        covers_generated = item.where in ("all", "generated")
        if acts_on_activation and not covers_generated and region.largest[j] <= 0 and not steering.splice:
            raise SteeringError(
                f"{item.describe()}: latent {item.latent} is not active on any of the {region.tokens[j]} "
                "prompt tokens the edit covers, so it would change nothing; pick a latent that fires "
                "there (saescope query --text shows a text's latents)"
            )


def control_variants(
    bound: BoundSAE,
    steering: Steering,
    interventions: Sequence[Intervention],
    stats: FiringStats,
    region: Region,
    seed: int,
) -> list[VariantSpec]:
    """The random-latent and random-direction controls of `steering` (see the module docstring)."""
    splice = steering.splice
    try:
        others = control_interventions(interventions, stats.frequency, seed, stats.maximum, region.firing)
        control = make_steering(bound, others, splice, stats)
        # the control latents' largest activations on generic text bound their edit's size
        top = [float(stats.maximum[i.latent]) if stats.maximum is not None else 0.0 for i in others]
        check_size(bound, control, region._replace(largest=top))
        latent = VariantSpec(RANDOM_LATENT, control, [i.describe() for i in control.interventions])
    except (NoControl, SteeringError) as e:
        latent = VariantSpec(RANDOM_LATENT, None, [], str(e))
    direction = random_direction(bound.sae.d_out, seed)
    aimless = Steering(steering.sae, steering.interventions, splice, direction)
    what = f"random direction, the norm of ({'; '.join(i.describe() for i in steering.interventions)})"
    return [latent, VariantSpec(RANDOM_DIRECTION, aimless, [what])]


def check_prompts(
    bound: BoundSAE, prompts: Sequence[str], interventions: Sequence[Intervention], options: SteerOptions
) -> None:
    """Refuse bad input before anything costly runs: no prompt, an empty one, a latent out of
    range, a position beyond a prompt, a substring absent from one, a context overflow."""
    if not prompts:
        raise SaescopeError("give at least one prompt")
    check_interventions(interventions, bound.sae.d_sae)
    tokenizer = bound.loaded_model.tokenizer
    for first in range(0, len(prompts), options.batch_size):
        batch = prompt_batch(
            bound, prompts[first : first + options.batch_size], options.chat, options.prepend_bos
        )
        places_for(interventions, batch, tokenizer, first)
        check_length(bound.loaded_model.model, batch, options.sampling.max_new_tokens)


def plan_variants(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    options: SteerOptions,
    stats: FiringStats | None,
) -> SteeringPlan:
    """Check a request and decide its variants (see the module docstring). `stats` (frequencies,
    maxima) are needed for the controls and for values relative to a latent's maximum."""
    check_prompts(bound, prompts, interventions, options)
    steering = make_steering(bound, interventions, options.splice, stats)
    region = region_of(bound, prompts, steering.interventions, options)
    check_size(bound, steering, region)
    check_active(steering, region)
    loaded = bound.loaded_model
    latents = [i.latent for i in interventions]
    targets = choose_targets(
        loaded.model, loaded.tokenizer, bound.sae, latents, options.target, options.target_ids
    )
    variants = [
        VariantSpec(UNSTEERED, None, []),
        VariantSpec(STEERED, steering, [i.describe() for i in steering.interventions]),
    ]
    if options.controls:
        if stats is None:
            raise ValueError("the controls need latent statistics")
        variants += control_variants(bound, steering, interventions, stats, region, options.sampling.seed)
    source = stats.source if stats is not None else None
    return SteeringPlan(list(prompts), options, variants, targets, region, source)


# ----- running ----------------------------------------------------------------------------
@dataclass
class VariantRun:
    """One variant generating one batch of prompts, a step at a time."""

    spec: VariantSpec
    """What it runs."""
    steps: Generator[Step, None, None]
    """Its token-by-token generation."""
    targets: Tensor
    """The target token ids, on the model's device."""
    first_row: int
    """The prompt number of row 0."""
    rows: int
    """Prompts in the batch."""
    texts: list[str] = field(default_factory=list)
    """Each prompt's completion so far, as streamed."""
    token_ids: list[list[int]] = field(default_factory=list)
    """Each prompt's generated tokens so far."""
    scores: list[list[float]] = field(default_factory=list)
    """Each prompt's log p(targets) at every step so far."""
    finished: list[bool] = field(default_factory=list)
    """Rows that reached EOS."""
    tokens: int = 0
    """Real tokens generated so far."""
    seconds: float = 0.0
    """Time spent generating them."""
    done: bool = False
    """Whether every prompt has finished."""

    def __post_init__(self) -> None:
        self.texts = [""] * self.rows
        self.token_ids = [[] for _ in range(self.rows)]
        self.scores = [[] for _ in range(self.rows)]
        self.finished = [False] * self.rows

    @property
    def name(self) -> str:
        """The variant's name."""
        return self.spec.name

    def advance(self) -> Step | None:
        """One step of every prompt; None when the generation has finished."""
        started = time.perf_counter()
        step = next(self.steps, None)
        if step is not None:
            check_finite(step.logits, f"{self.name}, generated token {step.number}")
            scores = step.logits.log_softmax(-1)[:, self.targets].logsumexp(-1).tolist()
        self.seconds += time.perf_counter() - started
        if step is None:
            self.done = True
            return None
        for row in range(self.rows):
            if step.live[row]:
                self.token_ids[row].append(step.token_ids[row])
                self.scores[row].append(scores[row])
                self.texts[row] += step.texts[row]
        self.tokens += sum(step.live)
        self.finished = list(step.finished)
        if all(step.finished):
            self.done = True
        return step

    def run(self, on_step: Callable[[Step], None] | None = None) -> VariantRun:
        """Generate to the end (`on_step` sees every step)."""
        while not self.done:
            step = self.advance()
            if step is not None and on_step is not None:
                on_step(step)
        return self

    def close(self) -> None:
        """Stop the generation and free its cache."""
        self.steps.close()

    def completions(self, tokenizer: Any) -> list[Completion]:
        """What each prompt generated."""
        decode = tokenizer.decode
        return [
            Completion(
                text=str(decode(ids, skip_special_tokens=True)),
                token_ids=list(ids),
                stopped="eos" if done else "length",
                target_logprob=sum(scores) / len(scores) if scores else None,
            )
            for ids, scores, done in zip(self.token_ids, self.scores, self.finished)
        ]


def start_run(
    bound: BoundSAE, plan: SteeringPlan, spec: VariantSpec, prompts: Sequence[str], first_row: int = 0
) -> VariantRun:
    """One variant's generation of a batch of prompts, nothing generated yet."""
    options = plan.options
    batch = prompt_batch(bound, prompts, options.chat, options.prepend_bos)
    patch = patch_for(bound, spec.steering, batch, first_row)
    steps = generate_steps(bound.loaded_model, batch, options.sampling, patch, options.use_cache)
    targets = torch.tensor(plan.targets.ids, dtype=torch.long, device=batch.input_ids.device)
    return VariantRun(spec, steps, targets, first_row, len(prompts))


class Generated(NamedTuple):
    """One variant's completions of every prompt."""

    spec: VariantSpec
    """What it ran."""
    completions: list[Completion]
    """One per prompt, in prompt order (empty when the variant was not run)."""
    tokens: int
    """Real tokens generated."""
    seconds: float
    """Time spent generating them."""

    @property
    def tokens_per_second(self) -> float:
        """Generation speed (0 when nothing was generated)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def generated(bound: BoundSAE, spec: VariantSpec, runs: Sequence[VariantRun]) -> Generated:
    """The finished runs of one variant (its batches, in order) as one `Generated`."""
    tokenizer = bound.loaded_model.tokenizer
    completions = [c for run in runs for c in run.completions(tokenizer)]
    return Generated(spec, completions, sum(r.tokens for r in runs), sum(r.seconds for r in runs))


def generate_variant(
    bound: BoundSAE, plan: SteeringPlan, spec: VariantSpec, on_step: Callable[[Step], None] | None = None
) -> Generated:
    """Run one variant over every prompt, batch by batch (nothing when it is a control not run)."""
    if spec.not_run is not None:
        return Generated(spec, [], 0, 0.0)
    runs = [start_run(bound, plan, spec, prompts, first).run(on_step) for first, prompts in plan.batches()]
    return generated(bound, spec, runs)


def check_not_empty(unsteered: Generated, steered: Generated) -> None:
    """Refuse a steered completion that is empty where the unsteered one is not: the edit made the
    model stop at once, and nothing along it can be measured."""
    for number, (u, s) in enumerate(zip(unsteered.completions, steered.completions)):
        if not s.text.strip() and u.text.strip():
            raise SteeringError(
                f"prompt {number}: the steered completion is empty (the edit makes the model stop at "
                f"once: {'; '.join(steered.spec.described)}); lower the value"
            )


# ----- measuring --------------------------------------------------------------------------
def references(bound: BoundSAE, plan: SteeringPlan, unsteered: Generated) -> list[ForcedReference]:
    """Every batch of prompts with its unsteered completions, run once unedited (teacher-forced)."""
    options = plan.options
    out = []
    for first, prompts in plan.batches():
        completions = unsteered.completions[first : first + len(prompts)]
        out.append(forced_reference(bound, prompts, completions, options.chat, options.prepend_bos, first))
    return out


def next_token_effect(
    bound: BoundSAE, refs: Sequence[ForcedReference], steering: Steering, targets: Targets, name: str
) -> tuple[Measured, Measured]:
    """(next-token effect, KL) of one edit, teacher-forced over every batch."""
    ids = torch.tensor(targets.ids, dtype=torch.long)
    sums: list[PositionSums] = [next_token_sums(bound, ref, steering, ids, name) for ref in refs]
    covered = sum(s.covered for s in sums)
    if covered == 0:
        reason = "the edit covers no token of the prompts and their unsteered completions"
    else:
        latents = ", ".join(str(i.latent) for i in steering.interventions)
        reason = (
            f"the edit changes none of the {covered} tokens it covers (latent {latents} is not active there)"
        )
    return from_sums(sums, reason)


def measure_variants(
    bound: BoundSAE, plan: SteeringPlan, refs: Sequence[ForcedReference], runs: dict[str, Generated]
) -> dict[str, VariantEffects | None]:
    """Every variant's effects against the unsteered run (None for the unsteered run itself and for
    a control not run)."""
    unsteered = runs[UNSTEERED]
    out: dict[str, VariantEffects | None] = {}
    for spec in plan.variants:
        if spec.steering is None:
            out[spec.name] = None
            continue
        next_token, kl = next_token_effect(bound, refs, spec.steering, plan.targets, spec.name)
        along = completion_change(runs[spec.name].completions, unsteered.completions)
        if next_token.value is None:  # the edit changed nothing: its completions are the unsteered ones
            along = Measured(None, 0, "tokens", next_token.reason)
        out[spec.name] = VariantEffects(next_token, kl, along)
    return out


__all__ = [
    "RANDOM_DIRECTION",
    "RANDOM_LATENT",
    "STEERED",
    "UNSTEERED",
    "Generated",
    "Region",
    "SteerOptions",
    "SteeringPlan",
    "VariantRun",
    "VariantSpec",
    "check_not_empty",
    "check_prompts",
    "check_size",
    "generate_variant",
    "generated",
    "measure_variants",
    "next_token_effect",
    "plan_variants",
    "references",
    "region_of",
    "start_run",
]
