"""How strong to steer: the same edit at several multiples of its value, each with its effect on the
targets and what it costs the text.

For every multiple (`saescope steer --sweep 0.5x 1x 2x 4x 8x`), on the plan's prompts:

- the steered completion, generated with every value × the multiple;
- its effects (`saescope.steer.measures`): the next-token effect and KL at the positions the edit
  changes, teacher-forced on the unsteered completions, and the change along its own completion;
- the next-token effect of both controls at the same multiple (teacher-forced only: a control's
  next-token effect needs no generation);
- its fluency cost: the perplexity of the steered completion under the unsteered model, and the
  fraction of its token 3-grams that repeat an earlier one (`measures.NGRAM`).

The unsteered completion's own perplexity and repetition are the reference; the strongest
multiple whose perplexity stays within `PERPLEXITY_LIMIT` × the unsteered one's is named.
`plot_sweep` draws the table as a PNG (matplotlib). This module knows nothing about HTTP.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..bound import BoundSAE
from ..errors import SaescopeError
from .edit import Steering
from .measures import (
    NGRAM,
    ForcedReference,
    Measured,
    VariantEffects,
    completion_change,
    perplexity,
    repetition,
)
from .variants import (
    RANDOM_DIRECTION,
    RANDOM_LATENT,
    STEERED,
    Generated,
    SteeringPlan,
    VariantSpec,
    check_size,
    generate_variant,
    next_token_effect,
)

log = logging.getLogger(__name__)

PERPLEXITY_LIMIT = 2.0
"""A steered completion is called readable while its perplexity under the unsteered model stays
within this many times the unsteered completion's."""


def scaled(steering: Steering, multiple: float) -> Steering:
    """`steering` with every value multiplied by `multiple` (ablations have none to multiply)."""
    items = tuple(
        i if i.mode == "ablate" else dataclasses.replace(i, value=i.value * multiple)
        for i in steering.interventions
    )
    return dataclasses.replace(steering, interventions=items)


class SweepPoint(NamedTuple):
    """The edit at one multiple of its value."""

    multiple: float
    """The multiple of the given value."""
    interventions: list[str]
    """The edit at this multiple, as `12:add:8`."""
    completions: list[str]
    """The steered completion of each prompt."""
    effects: VariantEffects
    """Its effects on the targets."""
    random_latent: Measured
    """The random-latent control's next-token effect at the same multiple."""
    random_direction: Measured
    """The random-direction control's next-token effect at the same multiple."""
    perplexity: Measured
    """Perplexity of the steered completions under the unsteered model."""
    repeated: Measured
    """Fraction of the steered completions' token n-grams that repeat an earlier one."""

    def to_json(self) -> dict[str, Any]:
        out = self._asdict()
        for name in ("effects", "random_latent", "random_direction", "perplexity", "repeated"):
            out[name] = out[name].to_json()
        return out


class SweepReference(NamedTuple):
    """The unsteered completions' fluency, that of every multiple is compared with."""

    perplexity: Measured
    """Their perplexity under the unsteered model."""
    repeated: Measured
    """The fraction of their n-grams that repeat."""


class Sweep(NamedTuple):
    """An edit at several strengths."""

    points: list[SweepPoint]
    """One per multiple, in increasing order."""
    unsteered: SweepReference
    """The unsteered completions' perplexity and repetition."""
    ngram: int
    """The n of the repeated n-grams."""
    readable: float | None
    """The largest multiple whose perplexity stays within PERPLEXITY_LIMIT × the unsteered one's
    (None when none does, or it could not be measured)."""
    plot: Path | None
    """The PNG drawn of it (None when none was asked for)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "points": [p.to_json() for p in self.points],
            "unsteered": {k: v.to_json() for k, v in self.unsteered._asdict().items()},
            "ngram": self.ngram,
            "perplexity_limit": PERPLEXITY_LIMIT,
            "readable": self.readable,
            "plot": str(self.plot) if self.plot is not None else None,
        }

    def render(self) -> str:
        header = (
            f"{'strength':>8}  {'next token':>10} {'KL':>7} {'completion':>10}  {'rand.lat.':>9} "
            f"{'rand.dir.':>9}  {'perplexity':>10} {'repeated':>8}"
        )
        lines = [
            "sweep: effect on log p(targets) (nats) and fluency; next token over the positions the edit "
            f"changes, perplexity under the unsteered model, repeated {self.ngram}-grams",
            header,
            f"{'none':>8}  {'':>40}  {_cell(self.unsteered.perplexity, '.2f'):>10} "
            f"{_cell(self.unsteered.repeated, '.2f'):>8}",
        ]
        for p in self.points:
            lines.append(
                f"{p.multiple:>7g}x  {_cell(p.effects.next_token):>10} {_cell(p.effects.kl, '.3f'):>7} "
                f"{_cell(p.effects.completion):>10}  {_cell(p.random_latent):>9} "
                f"{_cell(p.random_direction):>9}  {_cell(p.perplexity, '.2f'):>10} "
                f"{_cell(p.repeated, '.2f'):>8}"
            )
        for p in self.points:
            reasons = [
                m.reason for m in (*p.effects, p.random_latent, p.random_direction) if m.reason is not None
            ]
            if reasons:
                lines.append(f"  {p.multiple:g}x not measured: {'; '.join(dict.fromkeys(reasons))}")
        if self.readable is not None:
            limit = f"perplexity within {PERPLEXITY_LIMIT:g}x the unsteered"
            lines.append(f"strongest readable: {self.readable:g}x ({limit})")
        else:
            lines.append(f"no strength keeps the perplexity within {PERPLEXITY_LIMIT:g}x the unsteered")
        if self.plot is not None:
            lines.append(f"plot: {self.plot}")
        return "\n".join(lines)


def _cell(m: Measured, spec: str = "+.3f") -> str:
    return "n/m" if m.value is None else format(m.value, spec)


def sweep_reference(bound: BoundSAE, plan: SteeringPlan, unsteered: Generated) -> SweepReference:
    """The unsteered completions' perplexity and repetition."""
    options = plan.options
    ppl = perplexity(bound, plan.prompts, unsteered.completions, options.chat, options.prepend_bos)
    return SweepReference(ppl, repetition(unsteered.completions))


def control_effect(
    bound: BoundSAE, plan: SteeringPlan, refs: Sequence[ForcedReference], name: str, multiple: float
) -> Measured:
    """A control's next-token effect at `multiple` × its value."""
    spec = next((v for v in plan.variants if v.name == name), None)
    if spec is None:
        return Measured(None, 0, "positions", "the controls were not asked for")
    if spec.steering is None:
        return Measured(None, 0, "positions", spec.not_run or "not run")
    change, _ = next_token_effect(bound, refs, scaled(spec.steering, multiple), plan.targets, name)
    return change


def sweep_point(
    bound: BoundSAE,
    plan: SteeringPlan,
    refs: Sequence[ForcedReference],
    unsteered: Generated,
    multiple: float,
) -> SweepPoint:
    """The steered edit at `multiple` × its values (see the module docstring)."""
    base = plan.spec(STEERED).steering
    assert base is not None
    steering = scaled(base, multiple)
    check_size(bound, steering, plan.region)
    described = [i.describe() for i in steering.interventions]
    run = generate_variant(bound, plan, VariantSpec(STEERED, steering, described))
    next_token, kl = next_token_effect(bound, refs, steering, plan.targets, f"steered at {multiple:g}x")
    along = completion_change(run.completions, unsteered.completions)
    if next_token.value is None:  # the edit changed nothing: its completions are the unsteered ones
        along = Measured(None, 0, "tokens", next_token.reason)
    options = plan.options
    return SweepPoint(
        multiple=multiple,
        interventions=described,
        completions=[c.text for c in run.completions],
        effects=VariantEffects(next_token, kl, along),
        random_latent=control_effect(bound, plan, refs, RANDOM_LATENT, multiple),
        random_direction=control_effect(bound, plan, refs, RANDOM_DIRECTION, multiple),
        perplexity=perplexity(bound, plan.prompts, run.completions, options.chat, options.prepend_bos),
        repeated=repetition(run.completions),
    )


def readable_multiple(points: Sequence[SweepPoint], reference: SweepReference) -> float | None:
    """The largest multiple whose perplexity stays within PERPLEXITY_LIMIT × the reference's."""
    if reference.perplexity.value is None:
        return None
    limit = PERPLEXITY_LIMIT * reference.perplexity.value
    fine = [p.multiple for p in points if p.perplexity.value is not None and p.perplexity.value <= limit]
    return max(fine) if fine else None


def summarize(points: Sequence[SweepPoint], reference: SweepReference, plot: Path | None = None) -> Sweep:
    """The sweep of finished points (sorted by multiple), drawn to `plot` when given."""
    ordered = sorted(points, key=lambda p: p.multiple)
    sweep = Sweep(ordered, reference, NGRAM, readable_multiple(ordered, reference), None)
    if plot is not None:
        sweep = sweep._replace(plot=plot_sweep(sweep, plot))
    return sweep


def run_sweep(
    bound: BoundSAE,
    plan: SteeringPlan,
    refs: Sequence[ForcedReference],
    unsteered: Generated,
    multiples: Sequence[float],
    plot: Path | None = None,
) -> Sweep:
    """The steered edit at every multiple (see the module docstring)."""
    steering = plan.spec(STEERED).steering
    if steering is not None and any(i.mode == "ablate" for i in steering.interventions):
        raise SaescopeError("--sweep multiplies the edit's values; an ablation has none")
    reference = sweep_reference(bound, plan, unsteered)
    points = []
    for multiple in sorted(set(multiples)):
        log.info("sweep: %gx", multiple)
        points.append(sweep_point(bound, plan, refs, unsteered, multiple))
    return summarize(points, reference, plot)


def plot_sweep(sweep: Sweep, path: Path) -> Path:
    """Draw the sweep (effects above, fluency below) as a PNG at `path`; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p.multiple for p in sweep.points]

    def series(values: list[Measured]) -> list[float]:
        return [float("nan") if m.value is None else m.value for m in values]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(xs, series([p.effects.next_token for p in sweep.points]), "o-", label="steered, next token")
    top.plot(
        xs, series([p.effects.completion for p in sweep.points]), "s--", label="steered, along completion"
    )
    top.plot(xs, series([p.random_latent for p in sweep.points]), "^:", label="random latent, next token")
    top.plot(
        xs, series([p.random_direction for p in sweep.points]), "v:", label="random direction, next token"
    )
    top.axhline(0, color="grey", linewidth=0.5)
    top.set_ylabel("Δ log p(targets) (nats)")
    top.legend(fontsize=8)
    reference = sweep.unsteered.perplexity.value
    ratio = [
        float("nan") if (m.value is None or not reference) else m.value / reference
        for m in (p.perplexity for p in sweep.points)
    ]
    bottom.plot(xs, ratio, "o-", label="perplexity / unsteered")
    bottom.axhline(
        PERPLEXITY_LIMIT, color="red", linewidth=0.8, linestyle="--", label=f"{PERPLEXITY_LIMIT:g}x limit"
    )
    twin = bottom.twinx()
    twin.plot(
        xs,
        series([p.repeated for p in sweep.points]),
        "s:",
        color="tab:green",
        label=f"repeated {sweep.ngram}-grams",
    )
    twin.set_ylabel(f"repeated {sweep.ngram}-grams")
    twin.set_ylim(0, 1)
    bottom.set_ylabel("perplexity / unsteered")
    bottom.set_xlabel("strength (multiple of the given value)")
    bottom.set_xscale("log", base=2)
    bottom.set_yscale("log")
    bottom.set_xticks(xs, [f"{x:g}x" for x in xs])
    if sweep.readable is not None:
        for axis in (top, bottom):
            axis.axvline(sweep.readable, color="grey", linestyle=":", linewidth=1)
    handles = bottom.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    bottom.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=100)
    except OSError as e:
        raise SaescopeError(f"cannot write the sweep's plot to {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return path


__all__ = [
    "PERPLEXITY_LIMIT",
    "Sweep",
    "SweepPoint",
    "SweepReference",
    "plot_sweep",
    "readable_multiple",
    "run_sweep",
    "scaled",
    "summarize",
    "sweep_point",
    "sweep_reference",
]
