"""`saescope steer`: a steered generation beside the unsteered one and two controls, with effects
that say what they cover, so a user sees whether the effect is the latent's.

Four variants run on the same prompts with the same sampling seed (`saescope.steer.variants`, the
same code the server's playground runs): unsteered, steered, a random latent that fires where the
edit applies at a similar frequency, and a random direction of the same norm. Each variant but the
unsteered one reports (`saescope.steer.measures`): its next-token effect on the targets and the KL
at the positions its edit changes (teacher-forced on the unsteered completions, so the contexts are
identical), and the change of the targets' log-probability along its own completion. The targets
are `--target` words (one token each), else the steered latents' top logit-effect tokens that are
whole words. With `--sweep`, the edit is also run at several multiples of its value
(`saescope.steer.sweep`), with its fluency cost.

Everything that can be refused without the model is refused before it loads
(`saescope.steer.preflight`). This module knows nothing about hooks or the arithmetic of an edit.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from ..bound import BoundSAE, bind_sae
from ..config import model_of
from ..config.steer import SteerConfig
from ..errors import SaescopeError
from .frequencies import FiringStats, firing_stats
from .generate import Completion, Sampling, Step
from .interventions import Intervention, needs_maximum, parse_interventions
from .measures import VariantEffects
from .preflight import checked_steer_request
from .sweep import Sweep, run_sweep
from .targets import Targets
from .texts import read_lines
from .variants import (
    STEERED,
    UNSTEERED,
    Generated,
    SteeringPlan,
    SteerOptions,
    check_not_empty,
    check_prompts,
    generate_variant,
    measure_variants,
    plan_variants,
    references,
)

log = logging.getLogger(__name__)

MEASURES = {
    "next_token": "change of log p(targets) at the positions the edit changes, teacher-forced on each "
    "prompt followed by its unsteered completion (variant − unsteered, mean over those positions)",
    "kl": "KL(unsteered ‖ variant) of the next-token distributions at the same positions (nats)",
    "completion": "mean log p(targets) along the variant's own completion minus along the unsteered "
    "completion (mean over prompts; counted over the variant's generated tokens)",
}
"""What each effect is (the JSON output carries these)."""


class Variant(NamedTuple):
    """One way of running the prompts, and what it did."""

    name: str
    """`unsteered`, `steered`, `random latent` or `random direction`."""
    interventions: list[str]
    """What was done, as `12:add:8` (absolute values)."""
    completions: list[Completion]
    """One per prompt, in prompt order (empty for a control that could not be run)."""
    effects: VariantEffects | None
    """Its effects on the targets (None for the unsteered run, the reference, and a control not run)."""
    not_run: str | None
    """Why this control could not be run (None when it ran)."""
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
    targets: Targets
    """The tokens whose log-probability measures the effects, and where they came from."""
    stats_source: str | None
    """Where latent maxima and frequencies came from (None when none were needed)."""
    sweep: Sweep | None
    """The edit at several strengths (None without --sweep)."""
    sae: str = ""
    """The SAE steered with, pinned (`BoundSAE.source`: a published SAE's name at its commit)."""

    def variants(self) -> list[Variant]:
        """Unsteered, steered, then the controls."""
        return [self.unsteered, self.steered, *self.controls]

    def effects_json(self) -> dict[str, Any]:
        """Every variant's effects, by JSON name (`steered`, `random_latent`, `random_direction`)."""
        return effects_json(self.targets, {v.name: (v.effects, v.not_run) for v in self.variants()[1:]})

    def to_json(self) -> dict[str, Any]:
        def texts(v: Variant) -> list[str]:
            return [c.text for c in v.completions]

        return {
            "prompts": self.prompts,
            "unsteered": texts(self.unsteered),
            "steered": texts(self.steered),
            "interventions": self.steered.interventions,
            "controls": {
                json_name(v.name): {
                    "interventions": v.interventions,
                    "completions": texts(v),
                    "not_run": v.not_run,
                }
                for v in self.controls
            },
            **self.effects_json(),
            "stats_source": self.stats_source,
            "tokens_per_second": {v.name: v.tokens_per_second for v in self.variants() if v.not_run is None},
            "sweep": self.sweep.to_json() if self.sweep is not None else None,
            "sae": self.sae,
        }

    def render(self) -> str:
        lines = []
        for p, prompt in enumerate(self.prompts):
            lines.append(f"prompt {p}: {prompt!r}")
            for v in self.variants():
                text = repr(v.completions[p].text) if v.not_run is None else f"(not run: {v.not_run})"
                lines.append(f"  {v.name:>16}: {text}")
        lines += ["", *render_effects(self.targets, self.variants())]
        if self.stats_source:
            lines.append(f"latent statistics: {self.stats_source}")
        if self.sweep is not None:
            lines += ["", self.sweep.render()]
        return "\n".join(lines)


def json_name(name: str) -> str:
    """A variant's name as a JSON key (`random latent` → `random_latent`)."""
    return name.replace(" ", "_")


def effects_json(
    targets: Targets, effects: dict[str, tuple[VariantEffects | None, str | None]]
) -> dict[str, Any]:
    """The targets, what each measure is, and each variant's effects (the command line's and the
    server's JSON share it)."""
    return {
        "targets": targets.to_json(),
        "measures": MEASURES,
        "effects": {
            json_name(name): (found.to_json() if found is not None else {"not_run": reason})
            for name, (found, reason) in effects.items()
        },
    }


def render_effects(targets: Targets, variants: Sequence[Variant]) -> list[str]:
    """The effects table of a run's variants."""
    names = ", ".join(repr(t) for t in targets.tokens)
    lines = [
        f"targets: {names} ({targets.source})",
        "effects on log p(targets), nats — next token: at the positions the edit changes, teacher-forced",
        "  on the unsteered completions; KL(unsteered ‖ variant) there; completion: along its own completion",
    ]
    for v in variants:
        if v.name == UNSTEERED:
            scored = [c.target_logprob for c in v.completions if c.target_logprob is not None]
            tokens = sum(len(c.token_ids) for c in v.completions)
            mean = f"{sum(scored) / len(scored):.3f}" if scored else "not measured"
            lines.append(f"  {v.name:>16}: reference (mean log p(targets) along it: {mean}, {tokens} tokens)")
        elif v.effects is None:
            lines.append(f"  {v.name:>16}: not run: {v.not_run}")
        else:
            e = v.effects
            lines.append(
                f"  {v.name:>16}: next token {e.next_token.show()}   KL {e.kl.show('.4f')}   "
                f"completion {e.completion.show()}   [{'; '.join(v.interventions)}]"
            )
    return lines


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


def run_variants(bound: BoundSAE, plan: SteeringPlan, stream: TextIO | None) -> dict[str, Generated]:
    """Generate every variant of `plan` (the steered one of a single prompt streamed to `stream`)."""
    runs: dict[str, Generated] = {}
    for spec in plan.variants:
        printer = None
        if spec.name == STEERED and stream is not None and len(plan.prompts) == 1:
            printer = TerminalStream(stream, "steered")
        try:
            runs[spec.name] = generate_variant(bound, plan, spec, printer)
        finally:
            if printer is not None:
                printer.finish()
    return runs


def run_steering(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    options: SteerOptions | None = None,
    stats: FiringStats | None = None,
    stream: TextIO | None = None,
    sweep: Sequence[float] = (),
    plot: Path | None = None,
) -> SteerResult:
    """Unsteered, steered and control generations of `prompts`, with their effects (see the module
    docstring); with `sweep`, the edit at those multiples of its values too (drawn to `plot`).

    `stats` are computed when needed and not given; `stream` receives the steered completion of
    a single prompt token by token."""
    options = options or SteerOptions()
    check_prompts(bound, prompts, interventions, options)
    need_maximum = needs_maximum(interventions)
    if (options.controls or need_maximum) and (stats is None or (need_maximum and stats.maximum is None)):
        stats = firing_stats(bound, need_maximum=need_maximum)
    plan = plan_variants(bound, prompts, interventions, options, stats)
    runs = run_variants(bound, plan, stream)
    check_not_empty(runs[UNSTEERED], runs[STEERED])
    refs = references(bound, plan, runs[UNSTEERED])
    effects = measure_variants(bound, plan, refs, runs)
    swept = run_sweep(bound, plan, refs, runs[UNSTEERED], sweep, plot) if sweep else None
    variants = [
        Variant(
            spec.name,
            spec.described,
            runs[spec.name].completions,
            effects[spec.name],
            spec.not_run,
            runs[spec.name].tokens_per_second,
        )
        for spec in plan.variants
    ]
    return SteerResult(
        list(prompts),
        variants[0],
        variants[1],
        variants[2:],
        plan.targets,
        plan.stats_source,
        swept,
        bound.source,
    )


def sweep_steering(
    bound: BoundSAE,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    options: SteerOptions,
    stats: FiringStats,
    multiples: Sequence[float],
    plot: Path | None = None,
) -> Sweep:
    """The sweep alone (`saescope.steer.sweep`): the unsteered and the steered completions at each
    multiple, the controls measured teacher-forced only (none of them generated)."""
    plan = plan_variants(bound, prompts, interventions, options, stats)
    unsteered = generate_variant(bound, plan, plan.spec(UNSTEERED))
    return run_sweep(bound, plan, references(bound, plan, unsteered), unsteered, multiples, plot)


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


def steer(cfg: SteerConfig) -> SteerResult:
    """`saescope steer` (see the module docstring)."""
    prompts = prompts_of(cfg)
    interventions = parse_interventions(cfg.steer, cfg.scope, cfg.positions, cfg.substring, cfg.conditional)
    checked_steer_request(
        cfg.sae, cfg, cfg.model, prompts, interventions, cfg.target, cfg.chat, cfg.prepend_bos
    )
    bound = bind_sae(cfg.sae, cfg.model or None, force=cfg.force, settings=model_of(cfg))
    options = options_of(cfg)
    check_prompts(bound, prompts, interventions, options)
    stats = None
    if cfg.controls or needs_maximum(interventions):
        stats = firing_stats(bound, cfg.index, cfg.stats_tokens, need_maximum=needs_maximum(interventions))
    stream = sys.stderr if cfg.stream else None
    return run_steering(bound, prompts, interventions, options, stats, stream, cfg.sweep_multiples, cfg.plot)


__all__ = [
    "MEASURES",
    "SteerOptions",
    "SteerResult",
    "Variant",
    "effects_json",
    "json_name",
    "options_of",
    "prompts_of",
    "render_effects",
    "run_steering",
    "steer",
    "sweep_steering",
]
