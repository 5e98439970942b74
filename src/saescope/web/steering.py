"""The steering playground's generations: unsteered and steered (and the controls) side by side,
streamed token by token as events, then the same effects `saescope steer` reports.

The variants are decided, run and measured by `saescope.steer.variants` — the code the command
line runs: unsteered, steered, and with `controls` a random latent that fires where the edit
applies at a similar frequency and a random direction of the same norm. Each variant generates the
prompts as one batch with the same sampling seed through its own `VariantRun`; the variants
advance one token each in turn, every step a separate call on the model worker, so the page shows
them growing together and other requests slip in between. When all are done, the effects are
measured (one more call), then each strength of a sweep (one call each). Closing a session closes
every generator (their caches are freed; no hook is ever left on the model).

An event is a dict: `{"event": "token", "variant", "row", "step", "text"}` per new text of a
prompt, `{"event": "sweep", "multiple"}` as each strength of a sweep starts, then
`{"event": "done", "variants": [...], "targets", "measures", "effects", "sweep"}` — `targets`,
`measures` and `effects` exactly as `saescope steer --json` gives them.

This module knows nothing about HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..bound import BoundSAE
from ..steer import FiringStats, Intervention, Sampling
from ..steer.experiment import effects_json
from ..steer.interventions import needs_maximum
from ..steer.measures import ForcedReference
from ..steer.sweep import SweepPoint, summarize, sweep_point, sweep_reference
from ..steer.variants import (
    STEERED,
    UNSTEERED,
    Generated,
    SteeringPlan,
    SteerOptions,
    VariantRun,
    check_not_empty,
    generated,
    measure_variants,
    plan_variants,
    references,
    start_run,
)
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
    targets: tuple[str, ...] = ()
    """Words (one token each) that measure the effects (default: the latents' whole-word tokens)."""
    sweep: tuple[float, ...] = ()
    """Multiples of the edit's values to sweep after the variants (none: no sweep)."""


@dataclass
class SteerSession:
    """One request's variants in progress, and what their measurement needs."""

    plan: SteeringPlan
    """The variants decided (`saescope.steer.variants.plan_variants`)."""
    runs: list[VariantRun]
    """The variants that run, in the plan's order."""
    sweep: tuple[float, ...] = ()
    """Multiples to sweep once the variants are done."""
    generated: dict[str, Generated] = field(default_factory=dict)
    """Each variant's completions, once done."""
    references: list[ForcedReference] = field(default_factory=list)
    """The unsteered teacher-forced passes (measured once, shared by the sweep)."""


def summary(run: VariantRun) -> dict[str, Any]:
    """What the `done` event reports of a variant that ran."""
    return {
        "variant": run.name,
        "interventions": run.spec.described,
        "completions": run.texts,
        "tokens": run.tokens,
        "tokens_per_second": run.tokens / run.seconds if run.seconds > 0 else 0.0,
        "not_run": None,
    }


def options_of(plan: SteerPlan) -> SteerOptions:
    """The steering options of a request (all prompts in one batch)."""
    return SteerOptions(
        sampling=plan.sampling,
        chat=plan.chat,
        controls=plan.controls,
        target=plan.targets,
        batch_size=max(len(plan.prompts), 1),
    )


def start_variants(bound: BoundSAE, plan: SteerPlan, stats: FiringStats | None) -> SteerSession:
    """Every variant's generator, nothing generated yet (runs on the model worker). Errors (a
    latent out of range, a prompt past the model's context, an absurd value) are raised here,
    before any token is streamed. `stats` (frequencies, maxima) are needed for the controls and
    for values relative to a latent's maximum."""
    decided = plan_variants(bound, plan.prompts, plan.interventions, options_of(plan), stats)
    runs = [
        start_run(bound, decided, spec, decided.prompts) for spec in decided.variants if spec.not_run is None
    ]
    return SteerSession(decided, runs, plan.sweep)


def needs_stats(plan: SteerPlan) -> bool:
    """Whether a plan needs latent statistics (controls, or a value relative to a maximum)."""
    return plan.controls or needs_maximum(plan.interventions)


def advance(bound: BoundSAE, run: VariantRun) -> Any:
    """One step of one variant (runs on the model worker); None when it has finished."""
    return run.advance()


def measure(bound: BoundSAE, session: SteerSession) -> dict[str, Any]:
    """The finished variants' effects, as `saescope steer --json` gives them (on the model worker)."""
    plan = session.plan
    by_name = {run.name: run for run in session.runs}
    session.generated = {
        spec.name: generated(bound, spec, [by_name[spec.name]])
        if spec.name in by_name
        else Generated(spec, [], 0, 0.0)
        for spec in plan.variants
    }
    check_not_empty(session.generated[UNSTEERED], session.generated[STEERED])
    session.references = references(bound, plan, session.generated[UNSTEERED])
    effects = measure_variants(bound, plan, session.references, session.generated)
    return effects_json(plan.targets, {s.name: (effects[s.name], s.not_run) for s in plan.variants[1:]})


def sweep_step(bound: BoundSAE, session: SteerSession, multiple: float) -> SweepPoint:
    """One strength of the session's sweep (on the model worker)."""
    return sweep_point(bound, session.plan, session.references, session.generated[UNSTEERED], multiple)


def sweep_summary(bound: BoundSAE, session: SteerSession, points: Sequence[SweepPoint]) -> dict[str, Any]:
    """The finished sweep as `saescope steer --json` gives it (on the model worker)."""
    reference = sweep_reference(bound, session.plan, session.generated[UNSTEERED])
    return summarize(points, reference).to_json()


def close_variants(bound: BoundSAE, session: SteerSession) -> None:
    """Close every generator (runs on the model worker, after any step in flight)."""
    for run in session.runs:
        run.close()


async def stream_events(worker: ModelWorker, session: SteerSession) -> AsyncIterator[dict[str, Any]]:
    """The events of a session (see the module docstring), variants advancing in turn. The
    caller closes the variants when the stream ends or is abandoned (`close_variants`)."""
    runs = session.runs
    while not all(run.done for run in runs):
        for run in runs:
            if run.done:
                continue
            step = await worker.call(advance, run)
            if step is None:
                continue
            for row, text in enumerate(step.texts):
                if text:
                    yield {
                        "event": "token",
                        "variant": run.name,
                        "row": row,
                        "step": step.number,
                        "text": text,
                    }
    found = await worker.call(measure, session)
    swept = None
    if session.sweep:
        points = []
        for multiple in sorted(set(session.sweep)):
            yield {"event": "sweep", "multiple": multiple}
            points.append(await worker.call(sweep_step, session, multiple))
        swept = await worker.call(sweep_summary, session, points)
    by_name = {run.name: run for run in runs}
    variants = [
        summary(by_name[spec.name])
        if spec.name in by_name
        else {"variant": spec.name, "interventions": [], "completions": [], "not_run": spec.not_run}
        for spec in session.plan.variants
    ]
    yield {"event": "done", "variants": variants, **found, "sweep": swept}


__all__ = [
    "SteerPlan",
    "SteerSession",
    "advance",
    "close_variants",
    "measure",
    "needs_stats",
    "start_variants",
    "stream_events",
    "summary",
    "sweep_step",
    "sweep_summary",
]
