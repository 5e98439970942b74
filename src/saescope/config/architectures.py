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
        return asdict(self)


@dataclass(frozen=True)
class BatchTopKParams(Hyperparams):
    """Hyperparameters of the BatchTopK SAE."""

    batchtopk_threshold_momentum: float = 0.01
    """BatchTopK SAE: weight m of the moving average that estimates the inference threshold θ from
    the smallest activation each training batch keeps (Bussmann et al. 2024, "BatchTopK Sparse
    Autoencoders", whose code and SAELens use 0.01); θ is a plain running mean for the first 1/m
    steps."""

    def __post_init__(self) -> None:
        m = self.batchtopk_threshold_momentum
        require(
            is_real(m) and 0 < m <= 1,
            f"the BatchTopK threshold momentum ({option_flag('batchtopk_threshold_momentum')}) must be in"
            f" (0, 1], got {m!r}",
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


class ArchitectureSettings(NamedTuple):
    """What `saescope train` needs to know of one architecture."""

    params: type[Hyperparams]
    """The dataclass of its own hyperparameters (the SAE class's `Params`)."""
    takes_k: bool
    """Whether `k` (active latents per token) applies: TopK and BatchTopK."""


ARCHITECTURES: dict[str, ArchitectureSettings] = {
    "batchtopk": ArchitectureSettings(BatchTopKParams, takes_k=True),
    "jumprelu": ArchitectureSettings(JumpReLUParams, takes_k=False),
    "relu": ArchitectureSettings(ReLUParams, takes_k=False),
    "topk": ArchitectureSettings(Hyperparams, takes_k=True),
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
