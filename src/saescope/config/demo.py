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
    train, eval, index, interpret, dashboard, steer (with --circuits: transcoders at every layer,
    their evaluation, and one attribution graph checked against the model)."""

    out: Path | None = None
    """Run folder. Default: runs/demo (runs/demo-quick with --quick; runs/demo-circuits with
    --circuits, runs/demo-circuits-quick with both)."""

    circuits: bool = False
    """Instead of the SAE pipeline: train a transcoder at every MLP of the embedded model (on the fly,
    all layers from one forward pass), evaluate them (each layer's MLP-output FVU; CE and KL with
    every MLP replaced), and build the attribution graph of one short Python prompt the model gets
    right, with its check against the real model (about 15 minutes on two CPU cores)."""

    prompt: str | None = None
    """With --circuits: the prompt whose next token the graph explains (default `x = f(g(y`)."""

    target: str | None = None
    """With --circuits: the next token to explain, exactly one token (default `))`, the model's top
    token on the default prompt)."""

    quick: bool = False
    """A small run of every stage (about two minutes on two CPU cores): fewer tokens, a narrower
    SAE; for trying the pipeline, not for reading its latents."""

    tokens: int | None = None
    """Activations to capture and train on (default 200,000; 16,384 with --quick; with --circuits
    32,768 tokens of every MLP's input and output, 8,192 with --quick)."""

    latents: int | None = None
    """SAE width (default 4,608 = 8 × d_model of SmolLM2-135M; 1,152 with --quick; with --circuits
    1,152 per transcoder, 576 with --quick)."""

    k: int | None = None
    """Active latents per token (default 32; 16 with --quick; with --circuits 32, 16 with --quick)."""

    epochs: float | None = None
    """Passes of SAE training over the captured activations (default 4; 2 with --quick; 2 with
    --circuits)."""

    eval_tokens: int | None = None
    """Held-out tokens for the evaluation (default 4,096; 512 with --quick; with --circuits 1,024,
    256 with --quick)."""

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
        require(self.prompt is None or self.prompt.strip() != "", "--prompt must not be empty")
        require(self.target is None or self.target != "", "--target must not be empty")
        require(
            self.circuits or (self.prompt is None and self.target is None),
            "--prompt and --target choose the graph of --circuits; add --circuits or drop them",
        )
        if self.latents is not None and self.k is not None:
            require(self.k <= self.latents, f"--k {self.k} is larger than --latents {self.latents}")
