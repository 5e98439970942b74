"""Sparse autoencoders: the shared interface, the architectures, and their file formats."""

from .base import EncoderOutput, ForwardOutput, LossSettings, LossTerms, SAEConfig, SparseAutoencoder
from .registry import architecture_names, get_architecture, register

__all__ = [
    "EncoderOutput",
    "ForwardOutput",
    "LossSettings",
    "LossTerms",
    "SAEConfig",
    "SparseAutoencoder",
    "architecture_names",
    "get_architecture",
    "register",
]
