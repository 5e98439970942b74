"""Controls for a steering run: is the effect the latent's, or would any edit of that size do it?

Users of steering tools report having no way to tell a real effect from noise. Every steering
result therefore comes with two controls, run on the same prompts with the same sampling seed:

- a random latent: each steered latent is replaced by a latent that fires in the same region —
  on the tokens the edit covers (`firing`, from `saescope.steer.variants`) — with a similar firing
  frequency on generic text (drawn among the `NEIGHBOURS` such latents closest in log-frequency,
  never a steered one), with the same mode, value and place — a relative value (10× max) uses the
  control latent's own maximum. A control latent that does not fire where the edit applies would
  leave an ablation or a scaling nothing to change and report an effect of exactly 0; when no
  latent qualifies, `NoControl` says so;
- a random direction: the edit Σ_i (f'_i − f_i)·d_i at each position is replaced by a fixed random
  unit vector times that edit's norm (`edit.Steering.direction`).

Both are drawn from `seed`, so a run is reproducible. This module knows nothing about models or
generation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import SaescopeError
from .interventions import Intervention

NEIGHBOURS = 16
"""Candidates (closest in log-frequency) a control latent is drawn from."""
FLOOR = 1e-7
"""Frequencies are compared as log10(max(f, FLOOR)), so never-seen latents are all alike."""


class NoControl(SaescopeError):
    """No latent can serve as the random-latent control (none fires where the edit applies)."""


def control_latent(
    latent: int,
    frequency: Tensor,
    exclude: Sequence[int],
    generator: torch.Generator,
    eligible: Tensor | None = None,
) -> int:
    """A random latent whose firing frequency is close to `latent`'s, not in `exclude`, and among
    `eligible` ([d_sae] bool) when given."""
    logf = frequency.double().clamp_min(FLOOR).log10()
    distance = (logf - logf[latent]).abs()
    distance[list({latent, *exclude})] = float("inf")
    if eligible is not None:
        distance[~eligible] = float("inf")
    finite = int(torch.isfinite(distance).sum())
    if finite == 0:
        raise NoControl(f"no other latent than {latent} fires where the edit applies")
    nearest = distance.topk(min(NEIGHBOURS, finite), largest=False).indices
    pick = int(torch.randint(len(nearest), (1,), generator=generator))
    return int(nearest[pick])


def control_interventions(
    interventions: Sequence[Intervention],
    frequency: Tensor,
    seed: int,
    maximum: Tensor | None = None,
    firing: Tensor | None = None,
) -> list[Intervention]:
    """The interventions with every latent replaced by a random one of similar frequency, among the
    latents `firing[j]` ([m, d_sae] bool: those that fire where intervention j applies) when given.
    Values stay relative where they were (resolve them against the control latents' maxima); a
    relative one only draws latents that have fired (`maximum` > 0), so that its value is not 0."""
    generator = torch.Generator().manual_seed(seed)
    steered = [i.latent for i in interventions]
    chosen: list[int] = []
    for j, item in enumerate(interventions):
        eligible = firing[j].cpu().clone() if firing is not None else None
        if item.relative and maximum is not None:
            eligible = (maximum > 0) if eligible is None else eligible & (maximum > 0)
        latent = control_latent(item.latent, frequency, steered + chosen, generator, eligible)
        chosen.append(latent)
    return [dataclasses.replace(item, latent=latent) for item, latent in zip(interventions, chosen)]


def random_direction(d_in: int, seed: int) -> Tensor:
    """A random unit vector [d_in] (float32), drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(d_in, generator=generator, dtype=torch.float64)
    return (v / v.norm()).float()


__all__ = ["FLOOR", "NEIGHBOURS", "NoControl", "control_interventions", "control_latent", "random_direction"]
