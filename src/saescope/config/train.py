"""`saescope train` settings.

This module knows nothing about how training runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import require
from .base import CorpusSettings, ModelSettings


def _architectures() -> list[str]:
    from ..sae.registry import architecture_names

    return architecture_names()


@dataclass(frozen=True)
class TrainConfig(CorpusSettings, ModelSettings):
    """`saescope train`: train one or several SAEs from an activation store or on the fly."""

    acts: Path | None = None
    """Activation store to train from. Without it, activations are computed on the fly from
    --model/--dataset/--hookpoint (nothing is written to disk)."""

    hookpoint: str = "resid_post:15"
    """Hookpoint for on-the-fly training (a store records its own)."""

    out: Path = Path("runs/demo/sae")
    """Output folder for the SAE (several SAEs of a sweep go to sibling subfolders)."""

    architecture: str = field(
        default="topk", metadata={"flags": ("--arch", "--architecture"), "choices": _architectures}
    )
    """SAE architecture (the registry's names)."""

    latents: tuple[int, ...] = ()
    """Dictionary sizes; several values train several SAEs from one pass. Default: expansion
    factor × d_in."""

    expansion_factor: int = 8
    """Latents per input dimension when --latents is not given."""

    k: tuple[int, ...] = (32,)
    """Active latents per token for TopK/BatchTopK; several values train several SAEs at once."""

    l1_coefficient: float = 0.2
    """ReLU SAE: weight λ of the L1 penalty on activations × decoder-row norms. Inputs are scaled to
    E‖x‖² = 1 here, so Anthropic's λ = 5 (at E‖x‖² = d_in) corresponds to 5/√d_in."""

    l0_coefficient: float = 0.001
    """JumpReLU SAE: weight λ of the L0 penalty (Gemma Scope), in normalised units (E‖x‖² = 1)."""

    jumprelu_bandwidth: float = 0.001
    """JumpReLU SAE: width ε of the rectangle kernel of the straight-through estimator."""

    jumprelu_init_threshold: float = 0.001
    """JumpReLU SAE: initial threshold of every latent."""

    tokens: int | None = None
    """Token budget (rows seen). Default: one epoch of the store, or 1M tokens on the fly."""

    epochs: float | None = None
    """Passes over the store instead of --tokens."""

    batch_size: int = 4096
    """Rows per optimisation step (across all ranks)."""

    lr: float | None = None
    """Peak learning rate. Default 2e-4 / sqrt(latents / 2^14) (OpenAI's scaling law)."""

    optimizer: Literal["adam", "adamw"] = "adam"
    """Optimiser."""

    beta1: float = 0.9
    """Adam β1 (OpenAI 0.9; seed 001 used 0.85)."""

    beta2: float = 0.999
    """Adam β2 (OpenAI 0.999; seed 001 used 0.9999)."""

    adam_eps: float = 6.25e-10
    """Adam ε (OpenAI and seed 001)."""

    weight_decay: float = 0.0
    """AdamW weight decay."""

    warmup_steps: int = 100
    """Linear learning-rate warm-up."""

    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"
    """Decay after warm-up."""

    lr_min_ratio: float = 0.2
    """Final learning rate as a fraction of the peak (seed 001: 1/5)."""

    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""

    aux_k: int | None = None
    """Latents in the aux-k loss that revives dead latents (OpenAI used 512, seed 001 2048).
    Default d_in / 2; 0 disables."""

    aux_coefficient: float = 1 / 32
    """Weight of the aux-k loss (OpenAI and seed 001: 1/32)."""

    dead_tokens: int = 10_000_000
    """A latent is dead after this many tokens without firing (OpenAI: 10M)."""

    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    """Initial decoder bias (OpenAI: geometric median of a sample; seed 001: the mean)."""

    normalize: Literal["unit_mean_squared_norm", "none"] = "unit_mean_squared_norm"
    """Scale inputs by one constant so that E‖x‖² = 1 during training (Gemma Scope); folded into
    the weights on save, so a saved SAE takes raw activations."""

    autocast: Literal["auto", "bfloat16", "none"] = "auto"
    """Mixed precision: `auto` is bfloat16 on CUDA and none on CPU."""

    kernel: Literal["auto", "reference", "torch", "triton"] = "auto"
    """TopK training path: `reference` (dense, the oracle), `torch` (sparse, the CPU fast path),
    `triton` (fused GPU kernels); `auto` picks triton on CUDA and torch on CPU."""

    shuffle: Literal["auto", "random", "buffer"] = "auto"
    """Store reading: `random` (exact permutation, random access), `buffer` (shuffled streaming)."""

    checkpoint_every: int = 500
    """Save a checkpoint every N steps (0: only at the end)."""

    resume: bool = False
    """Continue from the last checkpoint in --out."""

    log_every: int = 10
    """Log metrics every N steps."""

    wandb_project: str | None = None
    """Also log to this Weights & Biases project (needs the `wandb` extra)."""

    train_seed: int = 0
    """Seed of initialisation and data order."""

    def __post_init__(self) -> None:
        CorpusSettings.__post_init__(self)
        names = _architectures()
        require(
            self.architecture in names,
            f"unknown architecture {self.architecture!r}; choose from {', '.join(names)}",
        )
        require(all(n > 0 for n in self.latents), "--latents must be positive")
        require(self.expansion_factor > 0, "--expansion-factor must be positive")
        require(len(self.k) > 0 and all(k > 0 for k in self.k), "--k must be positive")
        require(self.tokens is None or self.tokens > 0, "--tokens must be positive")
        require(self.epochs is None or self.epochs > 0, "--epochs must be positive")
        require(self.tokens is None or self.epochs is None, "give --tokens or --epochs, not both")
        require(self.batch_size > 0, "--batch-size must be positive")
        require(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), "--lr must be positive")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "Adam betas must be in [0, 1)")
        require(self.warmup_steps >= 0, "--warmup-steps must be >= 0")
        require(0 <= self.lr_min_ratio <= 1, "--lr-min-ratio must be in [0, 1]")
        require(self.grad_clip >= 0, "--grad-clip must be >= 0")
        require(self.aux_k is None or self.aux_k >= 0, "--aux-k must be >= 0")
        require(self.dead_tokens > 0, "--dead-tokens must be positive")
        require(self.checkpoint_every >= 0, "--checkpoint-every must be >= 0")
        require(self.log_every > 0, "--log-every must be positive")
        require(self.l1_coefficient >= 0 and self.l0_coefficient >= 0, "sparsity coefficients must be >= 0")
        require(self.jumprelu_bandwidth > 0, "--jumprelu-bandwidth must be positive")
