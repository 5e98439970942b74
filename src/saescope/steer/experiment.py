"""`saescope steer`: a steered generation beside the unsteered one and two controls, with an effect
measure, so a user sees whether the effect is the latent's.

Four variants run on the same prompts with the same sampling seed: unsteered, steered, a random
latent of similar frequency at the same strength, and a random direction of the same norm
(`saescope.steer.controls`). Each completion is scored by the mean log-probability of the target
tokens along it (`--target`, else the steered latents' top-logit tokens, `saescope.steer.targets`);
a variant's effect is its score minus the unsteered score, averaged over prompts.

This module knows nothing about hooks or the arithmetic of an edit.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from ..bound import BoundSAE, bind_sae
from ..config import ModelSettings
from ..config.steer import SteerConfig
from ..errors import SaescopeError
from .controls import control_interventions, random_direction
from .edit import Steering
from .frequencies import FiringStats, firing_stats
from .generate import Completion, Generation, Sampling, Step, check_length, generate
from .interventions import Intervention, check_interventions, needs_maximum, parse_interventions
from .places import places_for
from .steering import make_steering, patch_for, prompt_batch
from .targets import target_tokens
from .texts import read_lines

log = logging.getLogger(__name__)


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
    target: str | None = None
    """Text whose first token scores the completions (default: the latents' top-logit tokens)."""
    target_ids: tuple[int, ...] = ()
    """Token ids that score the completions, when known as ids (overrides `target`)."""
    use_cache: bool = True
    """Generate through the KV cache."""
    batch_size: int = 8
    """Prompts per batch."""


class Variant(NamedTuple):
    """One way of running the prompts."""

    name: str
    """`unsteered`, `steered`, `random latent` or `random direction`."""
    interventions: list[str]
    """What was done, as `12:add:8` (absolute values)."""
    completions: list[Completion]
    """One per prompt, in prompt order."""
    score: float | None
    """Mean over prompts of each completion's mean log P(target tokens)."""
    tokens_per_second: float
    """Generation speed of this variant."""


class SteerResult(NamedTuple):
    """What `saescope steer` found."""

    prompts: list[str]
    """The prompts, in order."""
    unsteered: Variant
    """The model as it is."""
    steered: Variant
    """With the interventions."""
    controls: list[Variant]
    """Random latent and random direction (empty without controls)."""
    targets: list[str]
    """The tokens whose log-probability scores the completions."""
    stats_source: str | None
    """Where latent maxima and frequencies came from (None when none were needed)."""

    def effect(self, variant: Variant) -> float | None:
        """Score of `variant` minus the unsteered score."""
        if variant.score is None or self.unsteered.score is None:
            return None
        return variant.score - self.unsteered.score

    def to_json(self) -> dict[str, Any]:
        def texts(v: Variant) -> list[str]:
            return [c.text for c in v.completions]

        return {
            "prompts": self.prompts,
            "unsteered": texts(self.unsteered),
            "steered": texts(self.steered),
            "interventions": self.steered.interventions,
            "controls": {
                v.name.replace(" ", "_"): {
                    "interventions": v.interventions,
                    "completions": texts(v),
                    "score": v.score,
                    "effect": self.effect(v),
                }
                for v in self.controls
            },
            "effect": {
                "measure": "mean log-probability of the target tokens along each completion, "
                "averaged over prompts; effect = variant − unsteered",
                "targets": self.targets,
                "unsteered": self.unsteered.score,
                "steered": self.steered.score,
                "steered_effect": self.effect(self.steered),
            },
            "stats_source": self.stats_source,
            "tokens_per_second": {v.name: v.tokens_per_second for v in self.variants()},
        }

    def variants(self) -> list[Variant]:
        """Unsteered, steered, then the controls."""
        return [self.unsteered, self.steered, *self.controls]

    def render(self) -> str:
        lines = []
        for p, prompt in enumerate(self.prompts):
            lines.append(f"prompt {p}: {prompt!r}")
            for v in self.variants():
                lines.append(f"  {v.name:>16}: {v.completions[p].text!r}")
        lines.append("")
        lines.append(f"effect: mean log P({', '.join(repr(t) for t in self.targets)}) along the completions")
        for v in self.variants():
            score = "n/a" if v.score is None else f"{v.score:8.3f}"
            effect = self.effect(v)
            shift = "" if effect is None or v is self.unsteered else f"  ({effect:+.3f} vs unsteered)"
            lines.append(f"  {v.name:>16}: {score}{shift}   [{'; '.join(v.interventions) or 'none'}]")
        if self.stats_source:
            lines.append(f"latent statistics: {self.stats_source}")
        return "\n".join(lines)


class TerminalStream:
    """Writes the first row's new text of every step to a terminal stream (streaming output)."""

    def __init__(self, out: TextIO, label: str) -> None:
        self.out = out
        self.label = label
        self.started = False

    def __call__(self, step: Step) -> None:
        if not self.started:
            self.out.write(f"{self.label}: ")
            self.started = True
        self.out.write(step.texts[0])
        self.out.flush()

    def finish(self) -> None:
        if self.started:
            self.out.write("\n")
            self.out.flush()


def _run_variant(
    bound: BoundSAE,
    name: str,
    prompts: Sequence[str],
    steering: Steering | None,
    options: SteerOptions,
    targets: Sequence[int],
    on_step: Callable[[Step], None] | None = None,
) -> Variant:
    """Generate every prompt (in batches) under one steering (None: unsteered)."""
    completions: list[Completion] = []
    tokens, seconds = 0, 0.0
    size = options.batch_size
    for first in range(0, len(prompts), size):
        batch = prompt_batch(bound, prompts[first : first + size], options.chat, options.prepend_bos)
        patch = patch_for(bound, steering, batch, first)
        run: Generation = generate(
            bound.loaded_model, batch, options.sampling, patch, options.use_cache, targets, on_step
        )
        completions += run.completions
        tokens += run.tokens
        seconds += run.seconds
    scores = [c.target_logprob for c in completions if c.target_logprob is not None]
    described = [i.describe() for i in steering.interventions] if steering is not None else []
    if steering is not None and steering.direction is not None:
        described = [f"random direction, the norm of ({'; '.join(described)})"]
    score = sum(scores) / len(scores) if scores else None
    return Variant(name, described, completions, score, tokens / seconds if seconds > 0 else 0.0)


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


def run_steering(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    options: SteerOptions | None = None,
    stats: FiringStats | None = None,
    stream: TextIO | None = None,
) -> SteerResult:
    """Unsteered, steered and control generations of `prompts` (see the module docstring).

    `stats` are computed when needed and not given; `stream` receives the steered completion of
    a single prompt token by token."""
    options = options or SteerOptions()
    check_prompts(bound, prompts, interventions, options)
    need_maximum = needs_maximum(interventions)
    if (options.controls or need_maximum) and (stats is None or (need_maximum and stats.maximum is None)):
        stats = firing_stats(bound, need_maximum=need_maximum)
    steering = make_steering(bound, interventions, options.splice, stats)
    latents = [i.latent for i in interventions]
    targets = list(options.target_ids) or target_tokens(
        bound.loaded_model, bound.sae, latents, options.target
    )
    printer = TerminalStream(stream, "steered") if stream is not None and len(prompts) == 1 else None
    unsteered = _run_variant(bound, "unsteered", prompts, None, options, targets)
    steered = _run_variant(bound, "steered", prompts, steering, options, targets, printer)
    if printer is not None:
        printer.finish()
    controls = []
    if options.controls:
        assert stats is not None
        seed = options.sampling.seed
        others = control_interventions(interventions, stats.frequency, seed, stats.maximum)
        control = make_steering(bound, others, options.splice, stats)
        controls.append(_run_variant(bound, "random latent", prompts, control, options, targets))
        direction = random_direction(bound.sae.d_in, seed)
        aimless = make_steering(bound, interventions, options.splice, stats, direction)
        controls.append(_run_variant(bound, "random direction", prompts, aimless, options, targets))
    names = [str(bound.loaded_model.tokenizer.decode([t])) for t in targets]
    source = stats.source if stats is not None else None
    return SteerResult(list(prompts), unsteered, steered, controls, names, source)


def prompts_of(cfg: SteerConfig) -> list[str]:
    """The prompts of a `steer` config: --prompt, or the lines of --prompts."""
    if cfg.prompt is not None:
        return [cfg.prompt]
    assert cfg.prompts is not None
    prompts = read_lines(Path(cfg.prompts))
    if not prompts:
        raise SaescopeError(f"{cfg.prompts} holds no prompts")
    return prompts


def options_of(cfg: SteerConfig) -> SteerOptions:
    """The generation options of a `steer` config."""
    return SteerOptions(
        sampling=Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed),
        chat=cfg.chat,
        prepend_bos=cfg.prepend_bos,
        splice=cfg.splice,
        controls=cfg.controls,
        target=cfg.target,
        use_cache=cfg.use_cache,
        batch_size=cfg.batch_size,
    )


def model_settings(cfg: ModelSettings) -> ModelSettings:
    """Device, dtype and revision of a stage config (the model itself comes from the SAE)."""
    return ModelSettings(
        revision=cfg.revision, model_dtype=cfg.model_dtype, device=cfg.device, device_map=cfg.device_map
    )


def steer(cfg: SteerConfig) -> SteerResult:
    """`saescope steer` (see the module docstring)."""
    prompts = prompts_of(cfg)
    bound = bind_sae(cfg.sae, cfg.model or None, force=cfg.force, settings=model_settings(cfg))
    interventions = parse_interventions(cfg.steer, cfg.scope, cfg.positions, cfg.substring, cfg.conditional)
    options = options_of(cfg)
    check_prompts(bound, prompts, interventions, options)
    stats = None
    if cfg.controls or needs_maximum(interventions):
        stats = firing_stats(bound, cfg.index, cfg.stats_tokens, need_maximum=needs_maximum(interventions))
    stream = sys.stderr if cfg.stream else None
    return run_steering(bound, prompts, interventions, options, stats, stream)


__all__ = ["SteerOptions", "SteerResult", "Variant", "options_of", "prompts_of", "run_steering", "steer"]
