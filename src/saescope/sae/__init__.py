"""Sparse autoencoders: the shared interface, the architectures, and their file formats."""

from ..config.architectures import Hyperparams, architecture_params
from .base import EncoderOutput, ForwardOutput, LossTerms, SAEConfig, SparseAutoencoder
from .registry import architecture_names, get_architecture, register

__all__ = [
    "EncoderOutput",
    "ForwardOutput",
    "Hyperparams",
    "LossTerms",
    "SAEConfig",
    "SparseAutoencoder",
    "architecture_names",
    "architecture_params",
    "get_architecture",
    "register",
]
