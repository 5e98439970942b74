"""The architecture registry: name -> SAE class.

Every architecture module registers its class with `@register`. The architectures' *settings* (each
one's hyperparameter dataclass and whether it takes k) live in `saescope.config.architectures`,
torch-free, where the CLI and `TrainConfig` read them; `register` checks that a class agrees with
its entry there, and a test that both registries hold the same names. Adding an architecture is
adding one file here (and one import below) and its entry there.
This module knows nothing about training or file formats.
"""

from __future__ import annotations

from typing import TypeVar

from ..config.architectures import ARCHITECTURES
from ..errors import ConfigError
from .base import SparseAutoencoder

_REGISTRY: dict[str, type[SparseAutoencoder]] = {}

T = TypeVar("T", bound=type[SparseAutoencoder])


def register(cls: T) -> T:
    """Class decorator: make `cls` available under `cls.architecture`, which must have an entry in
    `saescope.config.architectures` naming the same `Params` and `takes_k`."""
    settings = ARCHITECTURES.get(cls.architecture)
    if settings is None or (settings.params, settings.takes_k) != (cls.Params, cls.takes_k):
        raise TypeError(
            f"{cls.__name__} ({cls.architecture!r}, Params={cls.Params.__name__}, takes_k={cls.takes_k})"
            f" disagrees with saescope.config.architectures ({settings})"
        )
    _REGISTRY[cls.architecture] = cls
    return cls


def _load_builtin() -> None:
    # Imported for their @register side effect.
    from . import batchtopk, gated, jumprelu, matryoshka, relu, topk, transcoder  # noqa: F401


def architecture_names() -> list[str]:
    """The registered SAE classes' names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_architecture(name: str) -> type[SparseAutoencoder]:
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown architecture {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
