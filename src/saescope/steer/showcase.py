"""The demo's steering run: one latent with a clear token-level meaning, pushed hard, beside the
unsteered completion and both controls.

The latent is chosen without any index: among latents that fire on held-out text (but not on
most of it), the one whose decoder direction promotes a single token most distinctly — the
largest z-score of its top logit weight over the vocabulary (`targets.logit_weights`). Steering
adds `STRENGTH` × its maximum activation at every position, and its top token is the target of the
effect measure. Scaling Monosemanticity clamped the Golden Gate latent to 10× its maximum in a
far larger model; in SmolLM2-135M's residual stream at layer 15 (norm ≈ 170, a demo latent's
maximum ≈ 0.2 × a decoder norm of ≈ 200) 10× swamps everything and every variant, controls
included, degenerates into repetition, so the demo uses 3×: an edit about half the stream's norm.

This module knows nothing about the demo's other stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from ..bound import BoundSAE, bind_sae
from ..models import LoadedModel
from .experiment import SteerOptions, SteerResult, run_steering
from .frequencies import FiringStats, firing_stats
from .generate import Sampling
from .interventions import Intervention
from .targets import logit_weights

DEMO_PROMPT = "My favourite thing to do on a quiet weekend is"
STRENGTH = 3.0
"""The added value, in multiples of the latent's maximum activation (see the module docstring)."""
MIN_FREQUENCY = 1e-3
MAX_FREQUENCY = 0.05
CHUNK = 256
"""Latents whose logit weights are computed at once (each is vocabulary-sized)."""


class TokenLatent(NamedTuple):
    """A latent that stands for one token."""

    latent: int
    """The latent id."""
    token: int
    """The token its decoder direction promotes most."""
    zscore: float
    """How far that token's logit weight stands above the others (standard deviations)."""


@torch.no_grad()
def token_latents(bound: BoundSAE, stats: FiringStats, count: int = 1) -> list[TokenLatent]:
    """The `count` latents (firing between MIN_ and MAX_FREQUENCY) whose top logit weight has the
    largest z-score, best first."""
    freq = stats.frequency
    candidates = ((freq >= MIN_FREQUENCY) & (freq <= MAX_FREQUENCY)).nonzero()[:, 0]
    if len(candidates) == 0:
        candidates = (freq > 0).nonzero()[:, 0]
    best: list[tuple[float, int, int]] = []
    for start in range(0, len(candidates), CHUNK):
        ids = candidates[start : start + CHUNK]
        weights = logit_weights(bound.loaded_model.model, bound.sae.W_dec[ids].float())
        top, token = weights.max(-1)
        z = (top - weights.mean(-1)) / weights.std(-1).clamp_min(1e-12)
        best += list(zip(z.tolist(), ids.tolist(), token.tolist()))
    best.sort(reverse=True)
    return [TokenLatent(latent, token, z) for z, latent, token in best[:count]]


def demo_steering(
    sae_dir: Path,
    model: LoadedModel | None = None,
    prompt: str = DEMO_PROMPT,
    max_new_tokens: int = 24,
) -> SteerResult:
    """Steer the demo SAE's most token-like latent on `prompt`, with controls (for `make demo`)."""
    bound = bind_sae(sae_dir, model)
    stats = firing_stats(bound, need_maximum=True)
    assert stats.maximum is not None
    chosen = token_latents(bound, stats)[0]
    value = STRENGTH * float(stats.maximum[chosen.latent])
    options = SteerOptions(sampling=Sampling(max_new_tokens=max_new_tokens), target_ids=(chosen.token,))
    return run_steering(bound, [prompt], [Intervention(chosen.latent, "add", value)], options, stats)


__all__ = ["DEMO_PROMPT", "TokenLatent", "demo_steering", "token_latents"]
