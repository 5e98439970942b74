"""`saescope demo` settings.

This module knows nothing about the stages the demo runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import require


@dataclass(frozen=True)
class DemoConfig:
    """`saescope demo`: the whole pipeline on the embedded model and the built-in corpus — capture,
    train, eval, index, interpret, dashboard, steer."""

    out: Path | None = None
    """Run folder. Default: runs/demo (runs/demo-quick with --quick)."""

    quick: bool = False
    """A small run of every stage (about two minutes on two CPU cores): fewer tokens, a narrower
    SAE; for trying the pipeline, not for reading its latents."""

    tokens: int | None = None
    """Activations to capture and train on (default 200,000; 16,384 with --quick)."""

    latents: int | None = None
    """SAE width (default 4,608 = 8 × d_model of SmolLM2-135M; 1,152 with --quick)."""

    k: int | None = None
    """Active latents per token (default 32; 16 with --quick)."""

    epochs: float | None = None
    """Passes of SAE training over the captured activations (default 4; 2 with --quick)."""

    eval_tokens: int | None = None
    """Held-out tokens for the evaluation (default 4,096; 512 with --quick)."""

    index_tokens: int | None = None
    """Held-out tokens to index (default 30,000; 4,096 with --quick)."""

    explain: int | None = None
    """Latents to explain with the statistics explainer and the local model (default 3; 1 with --quick)."""

    def __post_init__(self) -> None:
        require(self.tokens is None or self.tokens >= 4096, "--tokens must be at least 4096")
        for name in ("latents", "k", "eval_tokens", "index_tokens", "explain"):
            value = getattr(self, name)
            require(value is None or value > 0, f"--{name.replace('_', '-')} must be positive")
        require(self.epochs is None or self.epochs > 0, "--epochs must be positive")
        if self.latents is not None and self.k is not None:
            require(self.k <= self.latents, f"--k {self.k} is larger than --latents {self.latents}")
