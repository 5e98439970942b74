"""What an intervention on one SAE latent is: which latent, what it does to it, and where.

Modes, for a latent i with activation f = f_i(x) and decoder direction d_i (`saescope.steer.edit`
turns them into a change of the activation):

- `add`:    f → f + value        ("add to a latent" of llama3_interpretability_sae:
                                   the activation moves by value·d_i;
                                   `relative=True` reads value as a multiple of the maximum)
- `clamp`:  f → value            (Scaling Monosemanticity's Golden Gate demo clamped to 10× the
                                   latent's maximum; `relative=True` reads value as that multiple)
- `scale`:  f → value · f
- `ablate`: f → 0                (Towards Monosemanticity: the activation becomes x − f·d_i)

Where: `all` positions, the `prompt` only, `generated` tokens only, explicit prompt `positions`,
or the tokens covering a `substring` of the prompt; `conditional` restricts any of them to the
positions where the latent already fires. `SteeringError` is a request that cannot be run
meaningfully (see `saescope.steer.variants`).

This module knows nothing about models, hooks or generation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..config.steer import MODES, Mode, Where, parse_intervention_spec
from ..errors import ConfigError, SaescopeError, require

WHERE = ("all", "prompt", "generated", "positions", "substring")


class SteeringError(SaescopeError):
    """A steering request that cannot give a meaningful result: a value that overflows or is
    absurd, an edit that makes the model's outputs infinite, an empty steered completion, an edit
    of a latent that is active nowhere it applies (the server answers HTTP 422)."""


@dataclass(frozen=True)
class Intervention:
    """An edit of one latent's activation at some positions."""

    latent: int
    """The latent id."""
    mode: Mode
    """`add`, `clamp`, `scale` or `ablate` (see the module docstring)."""
    value: float = 0.0
    """The amount added, the clamped value, or the factor (ignored by `ablate`)."""
    relative: bool = False
    """`add` and `clamp` only: `value` is a multiple of the latent's maximum activation (from the
    index or held-out text); `resolve_values` turns it into an absolute value."""
    where: Where = "all"
    """Which positions (see the module docstring)."""
    positions: tuple[int, ...] = ()
    """With `where="positions"`: prompt token indices (0 is the first token, BOS included;
    negative counts from the end of the prompt)."""
    substring: str | None = None
    """With `where="substring"`: the text whose tokens are edited, at every occurrence."""
    conditional: bool = False
    """Only where the latent already fires (f > 0)."""

    def __post_init__(self) -> None:
        require(self.mode in MODES, f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")
        require(self.where in WHERE, f"unknown place {self.where!r}; choose from {', '.join(WHERE)}")
        require(isinstance(self.latent, int) and self.latent >= 0, f"latent id {self.latent!r} is negative")
        require(math.isfinite(self.value), f"latent {self.latent}: the value must be finite")
        require(
            not self.relative or self.mode in ("add", "clamp"),
            "only add and clamp take a multiple of the maximum",
        )
        require(
            (self.where == "positions") == bool(self.positions),
            "explicit positions go with where='positions' (and it needs them)",
        )
        require(
            (self.where == "substring") == bool(self.substring),
            "a substring goes with where='substring' (and it needs one)",
        )

    def describe(self) -> str:
        """`12:add:8`-style text (the CLI's spelling) with the place when it is not `all`."""
        text = f"{self.latent}:{self.mode}"
        if self.mode != "ablate":
            text += f":{self.value:g}" + ("x" if self.relative else "")
        if self.where == "positions":
            text += f" at positions {','.join(map(str, self.positions))}"
        elif self.where == "substring":
            text += f" on {self.substring!r}"
        elif self.where != "all":
            text += f" on {self.where} tokens"
        return text + (" where it fires" if self.conditional else "")


def parse_interventions(
    specs: Sequence[str],
    where: Where = "all",
    positions: Sequence[int] = (),
    substring: str | None = None,
    conditional: bool = False,
) -> list[Intervention]:
    """Interventions from `LATENT:MODE[:VALUE]` specs, all at the same place."""
    out = []
    for spec in specs:
        parsed = parse_intervention_spec(spec)
        out.append(
            Intervention(
                latent=parsed.latent,
                mode=parsed.mode,  # type: ignore[arg-type]
                value=parsed.value,
                relative=parsed.relative,
                where=where,
                positions=tuple(positions),
                substring=substring,
                conditional=conditional,
            )
        )
    return out


def check_interventions(interventions: Sequence[Intervention], d_sae: int) -> None:
    """Latent ids lie in [0, d_sae) and no latent is edited twice (two edits of one latent would
    both start from its original activation, which is not what anyone means)."""
    if not interventions:
        raise ConfigError("give at least one intervention")
    seen: set[int] = set()
    for item in interventions:
        if item.latent >= d_sae:
            raise SaescopeError(
                f"latent {item.latent} is out of range: the SAE has {d_sae} latents (0-{d_sae - 1})"
            )
        if item.latent in seen:
            raise SaescopeError(f"latent {item.latent} is given twice; give one intervention per latent")
        seen.add(item.latent)


def resolve_values(
    interventions: Sequence[Intervention], max_activation: Sequence[float]
) -> list[Intervention]:
    """The interventions with every relative value (`10x`) turned into value × the latent's maximum."""
    out = []
    for item in interventions:
        if item.relative:
            top = float(max_activation[item.latent])
            if top <= 0:
                raise SaescopeError(
                    f"latent {item.latent} never fired in the statistics used, so {item.value:g}× its "
                    "maximum is 0; clamp to an absolute value instead"
                )
            item = replace(item, value=item.value * top, relative=False)
        out.append(item)
    return out


def needs_maximum(interventions: Sequence[Intervention]) -> bool:
    """Whether some value is a multiple of a latent's maximum activation."""
    return any(item.relative for item in interventions)


__all__ = [
    "WHERE",
    "Intervention",
    "SteeringError",
    "check_interventions",
    "needs_maximum",
    "parse_interventions",
    "resolve_values",
]
