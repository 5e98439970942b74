"""The settings of each SAE architecture: name → the dataclass of its own hyperparameters, and
whether it takes `k` (active latents per token).

`ARCHITECTURES` is the registry of architecture *settings*; `saescope.sae.registry` maps the same
names to the SAE classes, each of which takes its `Params` from here (a test checks that the two
registries hold the same names). Keeping the settings here lets `saescope train --help` list every
architecture and its options, and `TrainConfig` validate them, without importing torch.

Each `Params` is a frozen dataclass: one field per hyperparameter, named as its `saescope train`
option, the string under the field being that option's help, the values checked in
`__post_init__` (naming the option). An SAE's `cfg.json` stores them by name under `hyperparams`.

This module knows nothing about the SAEs themselves (no torch), training or file formats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, TypeVar

from ..errors import ConfigError, require
from .base import option_flag

P = TypeVar("P", bound="Hyperparams")

GATED_L1 = 0.13
"""The gated SAE's default L1 coefficient (see `GatedParams`), with the trainer's warm-up of the
penalty (`saescope.train.schedule.sparsity_scale`), measured by `benchmarks/architectures.py
gate-l1` on the demo's store (SmolLM2-135M layer 15, 4,608 latents) at the demo's full budget
(798,720 tokens): λ = 0.1 gave L0 57 (FVU 0.109), 0.13 L0 32 (FVU 0.126), 0.175 L0 17 (L0 32 is the
TopK-style default k). Shorter runs need a larger λ for the same L0 (at 200k tokens 0.175 gave L0 33)."""


def is_real(value: Any) -> bool:
    """A finite int or float (not a bool, not a string read from a file)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Hyperparams:
    """An architecture's own hyperparameters; this base class has none (TopK needs none)."""

    @classmethod
    def from_dict(cls: type[P], values: Mapping[str, Any], architecture: str) -> P:
        """The params from `cfg.json`'s `hyperparams` (or options): missing ones take their
        defaults; a name this architecture does not have is a `ConfigError`."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            has = f"it has {', '.join(names)}" if names else "it has none"
            raise ConfigError(f"a {architecture} SAE has no hyperparameter {unknown[0]!r} ({has})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The values as `cfg.json` stores them (a tuple as a list)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class BatchTopKParams(Hyperparams):
    """Hyperparameters of the BatchTopK SAE."""

    batchtopk_threshold_momentum: float = 0.01
    """BatchTopK and Matryoshka SAEs: weight m of the moving average that estimates the inference
    threshold θ from the smallest activation each training batch keeps (Bussmann et al. 2024,
    "BatchTopK Sparse Autoencoders", whose code and SAELens use 0.01); θ is a plain running mean
    for the first 1/m steps."""

    def __post_init__(self) -> None:
        m = self.batchtopk_threshold_momentum
        require(
            is_real(m) and 0 < m <= 1,
            f"the BatchTopK threshold momentum ({option_flag('batchtopk_threshold_momentum')}) must be in"
            f" (0, 1], got {m!r}",
        )


MATRYOSHKA_GROUPS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2 + 1 / 32)
"""SAEBench's group shares (Karvonen et al. 2025, `dictionary_learning`'s Matryoshka BatchTopK
trainer): nested prefixes of 1/32, 3/32, 7/32, 15/32 and all of the latents."""


@dataclass(frozen=True)
class MatryoshkaParams(BatchTopKParams):
    """Hyperparameters of the Matryoshka BatchTopK SAE (BatchTopK's, and its nested groups)."""

    matryoshka_groups: tuple[float, ...] = MATRYOSHKA_GROUPS
    """Matryoshka SAE: each nested group's share of the latents, in order (they sum to 1). The loss
    adds the reconstruction error of every prefix of groups — the first group alone, the first
    two, …, all of them — so the first latents must reconstruct on their own (Bussmann et al. 2025,
    "Learning Multi-Level Features with Matryoshka SAEs"; Nabeshima 2025). Default: SAEBench's
    1/32, 1/16, 1/8, 1/4, 1/2 + 1/32 (prefixes of 1/32, 3/32, 7/32, 15/32 and all of the latents)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        groups = self.matryoshka_groups
        if isinstance(groups, list):  # as read from cfg.json or a --config file
            groups = tuple(groups)
            object.__setattr__(self, "matryoshka_groups", groups)
        flag = option_flag("matryoshka_groups")
        require(
            isinstance(groups, tuple) and len(groups) > 0 and all(is_real(g) and g > 0 for g in groups),
            f"{flag} must be positive shares of the latents, got {groups!r}",
        )
        require(
            abs(sum(groups) - 1) <= 1e-6,
            f"{flag} must sum to 1 (each group's share of the latents), got {sum(groups):.6g}",
        )

    def prefix_widths(self, d_sae: int) -> tuple[int, ...]:
        """The latents of each nested prefix of groups of an SAE of `d_sae` latents (the last is
        `d_sae`); `ConfigError` when a group would get no latent."""
        widths, share = [], 0.0
        for group in self.matryoshka_groups:
            share += group
            widths.append(round(share * d_sae))
        widths[-1] = d_sae
        sizes = [b - a for a, b in zip([0, *widths], widths)]
        require(
            min(sizes) >= 1,
            f"{option_flag('matryoshka_groups')} gives a group no latents at {d_sae} latents"
            f" (group sizes {sizes}); use fewer or larger groups",
        )
        return tuple(widths)


@dataclass(frozen=True)
class GatedParams(Hyperparams):
    """Hyperparameters of the gated SAE."""

    gate_l1_coefficient: float = GATED_L1
    """Gated SAE: weight λ of the L1 penalty on the gate, λ · Σ_j ReLU(π_gate_j) · ‖W_dec_j‖
    (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse Autoencoders"), in
    normalised units (E‖x‖² = 1). Larger λ: fewer active latents. Default: about L0 32 on the demo's
    data; L0 depends on the data, so check it in the training log and adjust λ."""

    def __post_init__(self) -> None:
        require(
            is_real(self.gate_l1_coefficient) and self.gate_l1_coefficient >= 0,
            f"{option_flag('gate_l1_coefficient')} must be >= 0, got {self.gate_l1_coefficient!r}",
        )


@dataclass(frozen=True)
class ReLUParams(Hyperparams):
    """Hyperparameters of the ReLU SAE."""

    l1_coefficient: float = 0.2
    """ReLU SAE: weight λ of the L1 penalty on activations × decoder-row norms (Anthropic, Towards
    Monosemanticity and its April 2024 update). Inputs are scaled to E‖x‖² = 1 here, so Anthropic's
    λ = 5 (at E‖x‖² = d_in) corresponds to 5/√d_in."""

    def __post_init__(self) -> None:
        require(
            is_real(self.l1_coefficient) and self.l1_coefficient >= 0,
            f"{option_flag('l1_coefficient')} must be >= 0, got {self.l1_coefficient!r}",
        )


@dataclass(frozen=True)
class JumpReLUParams(Hyperparams):
    """Hyperparameters of the JumpReLU SAE."""

    l0_coefficient: float = 0.001
    """JumpReLU SAE: weight λ of the L0 penalty (Rajamanoharan et al. 2024, "Jumping Ahead"; Gemma
    Scope), in normalised units (E‖x‖² = 1)."""

    jumprelu_bandwidth: float = 0.001
    """JumpReLU SAE: width ε of the rectangle kernel of the straight-through estimators that train
    the thresholds ("Jumping Ahead" and Gemma Scope use 0.001 at E‖x‖² = 1)."""

    jumprelu_init_threshold: float = 0.001
    """JumpReLU SAE: initial threshold θ of every latent ("Jumping Ahead" and Gemma Scope: 0.001)."""

    def __post_init__(self) -> None:
        require(
            is_real(self.l0_coefficient) and self.l0_coefficient >= 0,
            f"{option_flag('l0_coefficient')} must be >= 0, got {self.l0_coefficient!r}",
        )
        require(
            is_real(self.jumprelu_bandwidth) and self.jumprelu_bandwidth > 0,
            f"the JumpReLU bandwidth ({option_flag('jumprelu_bandwidth')}) must be positive,"
            f" got {self.jumprelu_bandwidth!r}",
        )
        require(
            is_real(self.jumprelu_init_threshold) and self.jumprelu_init_threshold > 0,
            f"the JumpReLU initial threshold ({option_flag('jumprelu_init_threshold')}) must be positive,"
            f" got {self.jumprelu_init_threshold!r}",
        )


@dataclass(frozen=True)
class TranscoderParams(Hyperparams):
    """Hyperparameters of the transcoder."""

    transcoder_skip: bool = False
    """Transcoder: add a linear skip path from the module's input to its output, recon += x @ W_skip.T
    (Paulo et al. 2025, "Transcoders beat sparse autoencoders for interpretability"; circuit-tracer's
    W_skip), trained with the rest and started at zero."""

    def __post_init__(self) -> None:
        require(
            isinstance(self.transcoder_skip, bool),
            f"{option_flag('transcoder_skip')} must be true or false, got {self.transcoder_skip!r}",
        )


class ArchitectureSettings(NamedTuple):
    """What `saescope train` needs to know of one architecture."""

    params: type[Hyperparams]
    """The dataclass of its own hyperparameters (the SAE class's `Params`)."""
    takes_k: bool
    """Whether `k` (active latents per token) applies: TopK, BatchTopK and Matryoshka."""
    transcodes: bool = False
    """Whether it reads a module's input (`mlp_in:L`) and reconstructs that module's output (a
    transcoder) instead of reconstructing what it reads."""


ARCHITECTURES: dict[str, ArchitectureSettings] = {
    "batchtopk": ArchitectureSettings(BatchTopKParams, takes_k=True),
    "gated": ArchitectureSettings(GatedParams, takes_k=False),
    "jumprelu": ArchitectureSettings(JumpReLUParams, takes_k=False),
    "matryoshka": ArchitectureSettings(MatryoshkaParams, takes_k=True),
    "relu": ArchitectureSettings(ReLUParams, takes_k=False),
    "topk": ArchitectureSettings(Hyperparams, takes_k=True),
    "transcoder": ArchitectureSettings(TranscoderParams, takes_k=True, transcodes=True),
}
"""Architecture name → its settings; `saescope.sae.registry` holds a class for each name."""


def architecture_names() -> list[str]:
    """The architectures, sorted (the choices of `--arch`)."""
    return sorted(ARCHITECTURES)


def architecture_settings(name: str) -> ArchitectureSettings:
    """The settings of architecture `name`; `ConfigError` naming the others when there is none."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; choose from {', '.join(architecture_names())}")
    return ARCHITECTURES[name]


def architecture_params() -> dict[str, type[Hyperparams]]:
    """Architecture name -> the dataclass of its own hyperparameters, sorted by name."""
    return {name: ARCHITECTURES[name].params for name in architecture_names()}
