"""The steering playground's generations: unsteered and steered (and the controls) side by side,
streamed token by token as events.

Every variant generates the same prompts with the same sampling seed through its own
`generate_steps` generator (`saescope.steer`): unsteered, steered, and with `controls` a random
latent of similar frequency and a random direction of the same norm (`saescope.steer.controls`).
The variants advance one token each in turn, every step a separate call on the model worker, so
the page shows them growing together and other requests slip in between. Closing a session
closes every generator (their caches are freed; no hook is ever left on the model).

An event is a dict: `{"event": "token", "variant", "row", "step", "text"}` per new text of a
prompt, then `{"event": "done", "variants": [...]}` with each variant's full completions.

This module knows nothing about HTTP.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..bound import BoundSAE
from ..steer import FiringStats, Intervention, Sampling, Step, make_steering
from ..steer.controls import control_interventions, random_direction
from ..steer.generate import check_length, generate_steps
from ..steer.interventions import check_interventions, needs_maximum
from ..steer.steering import patch_for, prompt_batch
from .worker import ModelWorker


class SteerPlan(NamedTuple):
    """One steering request, checked against the server's limits."""

    prompts: tuple[str, ...]
    """The prompts, generated as one batch."""
    interventions: tuple[Intervention, ...]
    """The edits of the steered variant."""
    sampling: Sampling
    """Length, temperature, top-p, seed."""
    controls: bool
    """Also run the random-latent and random-direction controls."""
    chat: bool
    """Wrap each prompt in the model's chat template."""


@dataclass
class RunningVariant:
    """One variant's generation in progress."""

    name: str
    """`unsteered`, `steered`, `random latent` or `random direction`."""
    interventions: list[str]
    """What it edits, as `12:add:8`."""
    steps: Generator[Step, None, None]
    """Its token-by-token generation."""
    rows: int
    """Prompts."""
    texts: list[str] = field(default_factory=list)
    """Each prompt's completion so far."""
    tokens: int = 0
    """Real tokens generated so far."""
    seconds: float = 0.0
    """Time spent generating them."""
    done: bool = False
    """Whether every prompt has finished."""

    def summary(self) -> dict[str, Any]:
        """What the `done` event reports of this variant."""
        return {
            "variant": self.name,
            "interventions": self.interventions,
            "completions": self.texts,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens / self.seconds if self.seconds > 0 else 0.0,
        }


def described(interventions: Sequence[Intervention]) -> list[str]:
    """Interventions as `12:add:8` texts."""
    return [i.describe() for i in interventions]


def start_variants(bound: BoundSAE, plan: SteerPlan, stats: FiringStats | None) -> list[RunningVariant]:
    """Every variant's generator, nothing generated yet (runs on the model worker). Errors
    (a latent out of range, a prompt past the model's context) are raised here, before any
    token is streamed. `stats` (frequencies, maxima) are needed for the controls and for values
    relative to a latent's maximum."""
    check_interventions(plan.interventions, bound.sae.d_sae)
    batch = prompt_batch(bound, plan.prompts, plan.chat)
    check_length(bound.loaded_model.model, batch, plan.sampling.max_new_tokens)
    loaded, rows = bound.loaded_model, len(plan.prompts)
    steering = make_steering(bound, plan.interventions, stats=stats)

    def variant(name: str, steer: Any, what: list[str]) -> RunningVariant:
        patch = patch_for(bound, steer, batch)
        steps = generate_steps(loaded, batch, plan.sampling, patch)
        return RunningVariant(name, what, steps, rows, [""] * rows)

    out = [
        variant("unsteered", None, []),
        variant("steered", steering, described(steering.interventions)),
    ]
    if plan.controls:
        assert stats is not None
        seed = plan.sampling.seed
        others = control_interventions(plan.interventions, stats.frequency, seed, stats.maximum)
        control = make_steering(bound, others, stats=stats)
        out.append(variant("random latent", control, described(control.interventions)))
        aimless = make_steering(
            bound, plan.interventions, stats=stats, direction=random_direction(bound.sae.d_in, seed)
        )
        out.append(variant("random direction", aimless, ["random direction, the norm of the steered edit"]))
    return out


def needs_stats(plan: SteerPlan) -> bool:
    """Whether a plan needs latent statistics (controls, or a value relative to a maximum)."""
    return plan.controls or needs_maximum(plan.interventions)


def advance(bound: BoundSAE, variant: RunningVariant) -> Step | None:
    """One step of one variant (runs on the model worker); None when it has finished."""
    started = time.perf_counter()
    step = next(variant.steps, None)
    variant.seconds += time.perf_counter() - started
    if step is None:
        variant.done = True
        return None
    variant.tokens += sum(step.live)
    for row, text in enumerate(step.texts):
        variant.texts[row] += text
    if all(step.finished):
        variant.done = True
    return step


def close_variants(bound: BoundSAE, variants: Sequence[RunningVariant]) -> None:
    """Close every generator (runs on the model worker, after any step in flight)."""
    for variant in variants:
        variant.steps.close()


async def stream_events(worker: ModelWorker, variants: list[RunningVariant]) -> AsyncIterator[dict[str, Any]]:
    """The events of a session (see the module docstring), variants advancing in turn. The
    caller closes the variants when the stream ends or is abandoned (`close_variants`)."""
    while not all(v.done for v in variants):
        for variant in variants:
            if variant.done:
                continue
            step = await worker.call(advance, variant)
            if step is None:
                continue
            for row, text in enumerate(step.texts):
                if text:
                    yield {
                        "event": "token",
                        "variant": variant.name,
                        "row": row,
                        "step": step.number,
                        "text": text,
                    }
    yield {"event": "done", "variants": [v.summary() for v in variants]}


__all__ = [
    "RunningVariant",
    "SteerPlan",
    "advance",
    "close_variants",
    "described",
    "needs_stats",
    "start_variants",
    "stream_events",
]
