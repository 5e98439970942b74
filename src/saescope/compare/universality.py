"""Universality across seeds: how many latents two SAEs trained alike (one seed apart) share.

Paulo & Belrose (2025, "Sparse autoencoders trained on the same data learn different features")
pair the latents of two SAEs one-to-one (Hungarian) and count a latent as shared when both its
encoder and its decoder directions have cosine above 0.7 with its partner's; at 131k latents on
Llama-3-8B only a minority were. Here the pairs are the decoder assignment of `matching`, and both
fractions are given: decoder cosine ≥ threshold, and decoder and encoder cosine ≥ threshold.
`same_settings` says whether the two SAEs' recorded training settings differ only in the training
seed (and output folder): only then is the fraction a statement about seeds.

This module knows nothing about files or indexes: it takes the assignment and the encoders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .matching import Assignment

THRESHOLD = 0.7
"""Paulo & Belrose's cosine threshold."""
IGNORED_SETTINGS = ("train_seed", "out", "resume", "log_every", "checkpoint_every", "wandb_project")
"""Training settings that may differ between the two SAEs of a seed comparison."""


class Universality(NamedTuple):
    """The fraction of latents two same-width SAEs share."""

    latents: int
    """Latents paired (every latent of either SAE)."""
    threshold: float
    """The cosine a pair needs."""
    decoder_fraction: float
    """Pairs whose decoder cosine is at least `threshold`."""
    both_fraction: float
    """Pairs whose decoder and encoder cosines are both at least `threshold` (Paulo & Belrose)."""
    seeds: tuple[Any, Any]
    """The two SAEs' recorded training seeds (None where not recorded)."""
    same_settings: bool
    """Whether their training settings differ only in the seed (see the module docstring)."""
    differing: tuple[str, ...]
    """The settings that differ besides the seed (empty when `same_settings`)."""


def encoder_cosines(w_enc_a: Tensor, w_enc_b: Tensor, latent_a: Tensor, latent_b: Tensor) -> Tensor:
    """[m] cosine of each pair's encoder columns (`W_enc [d_in, d_sae]`)."""
    ea = w_enc_a.detach().float()[:, latent_a].T
    eb = w_enc_b.detach().float()[:, latent_b].T
    return torch.nn.functional.cosine_similarity(ea, eb, dim=1)


def settings_difference(config_a: Mapping[str, Any], config_b: Mapping[str, Any]) -> tuple[str, ...]:
    """Training settings (`cfg.json`'s `training.config`) that differ, besides the ignored ones."""
    names = (set(config_a) | set(config_b)) - set(IGNORED_SETTINGS)
    return tuple(sorted(n for n in names if config_a.get(n) != config_b.get(n)))


def universality(
    assignment: Assignment,
    w_enc_a: Tensor,
    w_enc_b: Tensor,
    config_a: Mapping[str, Any],
    config_b: Mapping[str, Any],
    threshold: float = THRESHOLD,
) -> Universality:
    """The shared fractions of a same-width pair (see the module docstring)."""
    decoder_ok = assignment.cosine >= threshold
    encoder = encoder_cosines(w_enc_a, w_enc_b, assignment.latent_a, assignment.latent_b)
    both = decoder_ok & (encoder >= threshold)
    n = len(assignment.cosine)
    differing = settings_difference(config_a, config_b)
    seeds = (config_a.get("train_seed"), config_b.get("train_seed"))
    return Universality(
        n,
        threshold,
        float(decoder_ok.sum()) / n,
        float(both.sum()) / n,
        seeds,
        not differing and bool(config_a) and bool(config_b),
        differing,
    )


__all__ = ["THRESHOLD", "Universality", "encoder_cosines", "settings_difference", "universality"]
