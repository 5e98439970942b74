"""The architecture registry: name -> SAE class, and name -> its hyperparameters.

Every architecture module registers its class with `@register`; the CLI derives its choices from
`architecture_names()` and one option per hyperparameter from `architecture_params()`, so adding an
architecture is adding one file (and one import below).
This module knows nothing about training or file formats.
"""

from __future__ import annotations

from typing import TypeVar

from ..errors import ConfigError
from .base import Hyperparams, SparseAutoencoder

_REGISTRY: dict[str, type[SparseAutoencoder]] = {}

T = TypeVar("T", bound=type[SparseAutoencoder])


def register(cls: T) -> T:
    """Class decorator: make `cls` available under `cls.architecture`."""
    _REGISTRY[cls.architecture] = cls
    return cls


def _load_builtin() -> None:
    # Imported for their @register side effect.
    from . import batchtopk, jumprelu, relu, topk  # noqa: F401


def architecture_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_architecture(name: str) -> type[SparseAutoencoder]:
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown architecture {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def architecture_params() -> dict[str, type[Hyperparams]]:
    """Architecture name -> the dataclass of its own hyperparameters (`SparseAutoencoder.Params`)."""
    _load_builtin()
    return {name: _REGISTRY[name].Params for name in sorted(_REGISTRY)}
