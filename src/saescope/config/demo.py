"""`saescope demo` settings.

This module knows nothing about the stages the demo runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import require


@dataclass(frozen=True)
class DemoConfig:
    """`saescope demo`: the whole pipeline on the embedded model and the built-in corpus."""

    out: Path = Path("runs/demo")
    """Run folder."""

    tokens: int = 200_000
    """Activations to capture and train on."""

    latents: int = 4608
    """SAE width (8 × d_model of SmolLM2-135M)."""

    k: int = 32
    """Active latents per token."""

    epochs: float = 4.0
    """Passes of SAE training over the captured activations."""

    lr: float = 3e-3
    """Peak learning rate. Higher than train's long-run default 2e-4/√(latents/2^14): the demo sees
    under a million tokens (measured on its store: FVU 0.12 at 3e-3, 0.15 at 1e-3, 0.24 at the
    default)."""

    eval_tokens: int = 8192
    """Tokens for the downstream evaluation."""

    def __post_init__(self) -> None:
        require(self.tokens >= 4096, "--tokens must be at least 4096")
        require(self.latents > 0 and self.k > 0 and self.k <= self.latents, "need 0 < k <= latents")
