"""`saescope train` settings.

This module knows nothing about how training runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ..errors import require
from ..runs import SAE, TRANSCODERS
from .architectures import architecture_names, architecture_params, architecture_settings
from .base import CorpusSettings, ModelSettings, option_flag

DEFAULT_K = 32
"""Active latents per token of TopK-style SAEs when --k is not given."""

DEFAULT_HOOKPOINT = "resid_post:15"
"""Where an SAE trained on the fly reads when --hookpoint is not given."""


@dataclass(frozen=True)
class TrainConfig(CorpusSettings, ModelSettings):
    """`saescope train`: train one or several SAEs from an activation store or on the fly."""

    acts: Path | None = None
    """Activation store to train from. Without it, activations are computed on the fly from
    --model/--dataset/--hookpoint (nothing is written to disk)."""

    hookpoint: str = ""
    """Hookpoint for on-the-fly training (a store records its own): one (`resid_post:15`) or every
    layer (`resid_post:*`, or a module-path glob), one SAE per hookpoint from the same forward passes.
    A transcoder reads a module's input and reconstructs its output: `mlp_in:L`, or `mlp_in:*` for
    every layer. Default: resid_post:15; mlp_in:* for --arch transcoder."""

    out: Path | None = None
    """Output folder for the SAE (several SAEs of a sweep, or of several hookpoints, go to subfolders
    of it; a transcoder set has one per layer). Default: `sae` (`transcoders`) next to the store
    (`runs/NAME/acts` → `runs/NAME/sae`); on the fly `runs/MODEL-HOOKPOINT/sae` (`.../transcoders`)."""

    architecture: str = field(
        default="topk", metadata={"flags": ("--arch", "--architecture"), "choices": architecture_names}
    )
    """SAE architecture (the registry's names)."""

    latents: tuple[int, ...] = ()
    """Dictionary sizes; several values train several SAEs from one pass. Default: expansion
    factor × d_in."""

    expansion_factor: int = 8
    """Latents per input dimension when --latents is not given."""

    k: tuple[int, ...] = ()
    """Active latents per token for TopK/BatchTopK (default 32); several values train several SAEs
    at once. Other architectures refuse it (their sparsity comes from their penalty)."""

    arch_params: Mapping[str, Any] = field(
        default_factory=dict, metadata={"options_from": architecture_params}
    )
    """The chosen architecture's own hyperparameters, by name (on the command line each is an option
    of its own, listed under its architecture; in a --config file they are given flat). Those not
    given keep the architecture's defaults; all are saved in the SAE's cfg.json."""

    tokens: int | None = None
    """Token budget (rows seen). Default: one epoch of the store, or 1M tokens on the fly."""

    epochs: float | None = None
    """Passes over the store instead of --tokens."""

    batch_size: int = 4096
    """Rows per optimisation step (across all ranks)."""

    lr: float | None = None
    """Peak learning rate. Default: derived from the run's steps S and width n, 1e-2 · S^(-1/5) ·
    min(1, √(18432/n)) — fitted on learning-rate sweeps of 73 to 732 steps (see
    saescope/train/schedule.py), where the best rate fell slowly with the steps and did not depend on
    the width up to 18,432 latents; wider SAEs follow Gao et al. 2024's 1/√n. Their fixed
    2e-4·√(2^14/n), made for runs of billions of tokens, is far too low for a short run."""

    optimizer: Literal["adam", "adamw"] = "adam"
    """Optimiser."""

    beta1: float = 0.9
    """Adam β1 (Gao et al. 2024: 0.9)."""

    beta2: float = 0.999
    """Adam β2 (Gao et al. 2024: 0.999)."""

    adam_eps: float = 6.25e-10
    """Adam ε (Gao et al. 2024: 6.25e-10)."""

    weight_decay: float = 0.0
    """AdamW weight decay."""

    warmup_steps: int | None = None
    """Steps of linear learning-rate warm-up. Default: 5 per cent of the run's steps (at least 1, at most
    1000) — a fixed count would be longer than a short run itself."""

    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"
    """Decay after warm-up."""

    lr_min_ratio: float = 0.2
    """Final learning rate as a fraction of the peak."""

    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""

    aux_k: int | None = None
    """Latents in the aux-k loss that revives dead latents (Gao et al. 2024 used 512).
    Default d_in / 2; 0 disables."""

    aux_coefficient: float = 1 / 32
    """Weight of the aux-k loss (Gao et al. 2024: 1/32)."""

    dead_tokens: int = 10_000_000
    """A latent is dead after this many tokens without firing (OpenAI: 10M)."""

    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    """Initial decoder bias (Gao et al. 2024: geometric median of a sample; Anthropic's Towards
    Monosemanticity: the mean)."""

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
        self._check_sparsity()
        self._check_hookpoint()
        require(all(n > 0 for n in self.latents), "--latents must be positive")
        require(self.expansion_factor > 0, "--expansion-factor must be positive")
        require(self.tokens is None or self.tokens > 0, "--tokens must be positive")
        require(self.epochs is None or self.epochs > 0, "--epochs must be positive")
        require(self.tokens is None or self.epochs is None, "give --tokens or --epochs, not both")
        require(
            self.epochs is None or self.acts is not None,
            "--epochs counts passes over a store (--acts); on the fly give --tokens",
        )
        require(self.batch_size > 0, "--batch-size must be positive")
        require(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), "--lr must be positive")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "Adam betas must be in [0, 1)")
        require(self.warmup_steps is None or self.warmup_steps >= 0, "--warmup-steps must be >= 0")
        require(0 <= self.lr_min_ratio <= 1, "--lr-min-ratio must be in [0, 1]")
        require(self.grad_clip >= 0, "--grad-clip must be >= 0")
        require(self.aux_k is None or self.aux_k >= 0, "--aux-k must be >= 0")
        require(self.dead_tokens > 0, "--dead-tokens must be positive")
        require(self.checkpoint_every >= 0, "--checkpoint-every must be >= 0")
        require(self.log_every > 0, "--log-every must be positive")
        if self.out is None:
            object.__setattr__(self, "out", self._default_out())
        object.__setattr__(self, "arch_params", dict(self.arch_params))

    def _check_hookpoint(self) -> None:
        """The default hookpoint of the architecture; a transcoder's must be a module's input."""
        transcodes = architecture_settings(self.architecture).transcodes
        if not self.hookpoint:
            object.__setattr__(self, "hookpoint", "mlp_in:*" if transcodes else DEFAULT_HOOKPOINT)
        require(
            not transcodes or self.hookpoint.startswith("mlp_in:") or self.hookpoint.endswith(":input"),
            f"--arch {self.architecture} reads a module's input and reconstructs its output: give"
            f" --hookpoint mlp_in:L (mlp_in:* for every layer) or PATH:input, not {self.hookpoint}",
        )

    def _default_out(self) -> Path:
        """`sae` next to the store; on the fly a run folder named after the model and hookpoint
        (`transcoders` instead of `sae` for a transcoder set)."""
        part = TRANSCODERS if architecture_settings(self.architecture).transcodes else SAE
        if self.acts is not None:
            return self.acts.parent / part
        name = f"{Path(self.model).name}-{self.hookpoint.replace('*', 'all')}"
        return Path("runs") / "".join(c if c.isalnum() or c in "._-" else "-" for c in name) / part

    def _check_sparsity(self) -> None:
        """--k and the architecture's own options apply to the chosen architecture, with valid values."""
        settings = architecture_settings(self.architecture)
        require(
            settings.takes_k or not self.k,
            f"--k does not apply to --arch {self.architecture} (only TopK-style SAEs take k)",
        )
        require(all(k > 0 for k in self.k), "--k must be positive")
        if settings.takes_k and not self.k:
            object.__setattr__(self, "k", (DEFAULT_K,))
        require(
            isinstance(self.arch_params, Mapping),
            f"arch_params must map hyperparameter names to values, got {self.arch_params!r}",
        )
        owners: dict[str, list[str]] = {}
        for arch, params in architecture_params().items():
            for f in fields(params):
                owners.setdefault(f.name, []).append(arch)
        for name in self.arch_params:
            require(name in owners, f"unknown architecture option {name!r}; they are {', '.join(owners)}")
            require(
                name in {f.name for f in fields(settings.params)},
                f"{option_flag(name)} does not apply to --arch {self.architecture}"
                f" ({', '.join(owners[name])} only)",
            )
        settings.params.from_dict(self.arch_params, self.architecture)

    @property
    def output(self) -> Path:
        """The output folder (`out`, always set once the config is built)."""
        assert self.out is not None
        return self.out
