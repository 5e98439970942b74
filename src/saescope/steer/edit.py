"""The arithmetic of steering: how interventions on latents change an activation.

With f the latents of x and f' the edited latents, the new activation is

    x' = x + decode(f') − decode(f)          (default: the SAE's error x − decode(f) is kept)
    x' = decode(f')                          (`splice=True`: llama3_interpretability_sae's way;
                                              the error is lost)

and since decode is linear in the latents, x + decode(f') − decode(f) = x + Σ_i (f'_i − f_i)·d_i
over the edited latents i (b_dec cancels). So an `add` needs no encoding at all, and an ablation
changes x by exactly −f_i·d_i — the check Towards Monosemanticity's ablations rely on. The
mistake users of other tools report most — an edit that vanishes or swamps everything because
the reconstruction replaced the activation — cannot happen unless asked for.

A transcoder reads one activation (`mlp_in:L`) and its decoder writes another (`mlp_out:L`): f
are the latents of what it reads, x is the activation where it writes (`BoundSAE.writes`), and the
splice is its whole reconstruction decode(f') + W_skip·read. For an SAE the two are one activation.

Controls (`saescope.steer.controls`) reuse the same arithmetic: a random latent is just another
intervention, and a random direction replaces the edit Σ_i (f'_i − f_i)·d_i at each position by a
fixed unit vector times that edit's norm.

An edit that is not finite, or whose norm at some position exceeds `ABSURD` × the norm of the
activation it changes (nothing of the model's own signal would be left), raises `SteeringError`
in whichever forward pass meets it — the values checked before generating
(`saescope.steer.variants`) cannot foresee a latent that only fires on generated tokens.

This module knows nothing about models, hooks, prompts or generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..sae.base import SparseAutoencoder
from .interventions import Intervention, SteeringError

ABSURD = 1000.0
"""An edit whose norm exceeds this many times the norm of what it edits is refused."""


def current_values(
    sae: SparseAutoencoder, x: Tensor, latents: Sequence[int]
) -> tuple[Tensor, Tensor, Tensor]:
    """(values [n, m] of `latents` at each row of x [n, d_in], latent_acts, latent_indices)."""
    acts, idx, _ = sae.encode(x)
    wanted = torch.as_tensor(list(latents), device=idx.device)
    values = (acts[:, :, None] * (idx[:, :, None] == wanted).to(acts.dtype)).sum(1)
    return values, acts, idx


def reconstruction(sae: SparseAutoencoder, read: Tensor, acts: Tensor, idx: Tensor) -> Tensor:
    """The dictionary's whole output from latents (acts, idx) of `read`: decode, plus a
    transcoder's skip path from `read`."""
    decoded = sae.decode(acts, idx)
    direct = sae.direct_path(read)
    return decoded if direct is None else decoded + direct


def coefficient(item: Intervention, current: Tensor) -> Tensor:
    """f'_i − f_i at each row for one intervention (`current` is f_i, [n]). A value beyond the
    dtype's range becomes ±inf here (and is refused by `Steering.check`), never an error."""
    value = torch.tensor(item.value, dtype=torch.float64).to(current.dtype).to(current.device)
    if item.mode == "add":
        change = torch.zeros_like(current) + value
    elif item.mode == "clamp":
        change = value - current
    elif item.mode == "scale":
        change = (value - 1.0) * current
    else:  # ablate
        change = -current
    return change * (current > 0) if item.conditional else change


@dataclass(frozen=True, eq=False)
class Steering:
    """Interventions on one SAE's latents, ready to apply to activations (see the module docstring)."""

    sae: SparseAutoencoder
    """The SAE whose latents are edited."""
    interventions: tuple[Intervention, ...]
    """The edits, with absolute values (`interventions.resolve_values` done)."""
    splice: bool = False
    """Replace the activation by the edited reconstruction (dropping the SAE's error)."""
    direction: Tensor | None = None
    """Control only: a unit vector [d_out] (where the decoder writes) that replaces the direction of
    the edit at each position (its norm is kept)."""

    @property
    def needs_codes(self) -> bool:
        """Whether the SAE must encode the activation (everything but unconditional `add`s)."""
        return self.splice or any(i.mode != "add" or i.conditional for i in self.interventions)

    def edit(self, x: Tensor, masks: Tensor, read: Tensor | None = None) -> Tensor:
        """The new rows of the activation where the decoder writes: x [n, d_out] (float32), masks
        [n, m] (which of the m interventions apply at each row); `read` [n, d_in] is what the
        dictionary read at those rows (None: x itself, as for an SAE)."""
        latents = [i.latent for i in self.interventions]
        read = x if read is None else read
        if self.needs_codes:
            current, acts, idx = current_values(self.sae, read, latents)
        else:
            current = x.new_zeros(x.shape[0], len(latents))
        coef = torch.stack([coefficient(item, current[:, j]) for j, item in enumerate(self.interventions)], 1)
        coef = coef * masks.to(coef.dtype)
        delta = coef @ self.sae.W_dec[latents].to(x.dtype)
        if self.direction is not None:
            delta = delta.norm(dim=-1, keepdim=True) * self.direction.to(x.device, x.dtype)
        base = reconstruction(self.sae, read, acts, idx) if self.splice else x
        new = base + delta
        self.check(x, new)
        return new

    def check(self, x: Tensor, new: Tensor) -> None:
        """Refuse a new activation that is not finite or moved absurdly far from `x` (see the
        module docstring)."""
        described = "; ".join(i.describe() for i in self.interventions)
        if not bool(torch.isfinite(new).all()):
            raise SteeringError(f"{described}: the edited activation is not finite; lower the value")
        moved, size = (new - x).detach().double().norm(dim=-1), x.detach().double().norm(dim=-1)
        worst = int((moved - ABSURD * size).argmax())
        if float(moved[worst]) > ABSURD * float(size[worst]):
            raise SteeringError(
                f"{described}: the edit's norm ({float(moved[worst]):.3g}) is more than {ABSURD:g}x the "
                f"norm of the activation it changes ({float(size[worst]):.3g}); give a value of a sensible "
                "size (e.g. 2x-10x the latent's maximum)"
            )

    def apply(self, act: Tensor, masks: Tensor, read: Tensor | None = None) -> Tensor:
        """The activation `act` [B, T, d_out] where the decoder writes, with the edits applied where
        `masks` [m, B, T] says; `read` [B, T, d_in] is what the dictionary read (None: `act`). Rows
        no intervention covers are returned untouched (bit for bit)."""
        rows = masks.any(0)
        if not bool(rows.any()):
            return act
        seen = None if read is None or read is act else read[rows].float()
        new = self.edit(act[rows].float(), masks[:, rows].T, seen)
        out = act.clone()
        out[rows] = new.to(act.dtype)
        return out


__all__ = ["ABSURD", "Steering", "coefficient", "current_values", "reconstruction"]
