"""`saescope circuit` settings: an attribution graph of one prompt.

This module knows nothing about how graphs are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import require
from .base import ModelSettings, check_choices


@dataclass(frozen=True)
class CircuitConfig(ModelSettings):
    """`saescope circuit`: the attribution graph of a prompt's next token, checked against the model.

    With transcoders (every MLP replaced by its transcoder, attention patterns and norm scales
    frozen, one error node per layer and position: circuit-tracer's local replacement model) the
    graph's edges are the exact direct linear effects between latents, error nodes, token
    embeddings and logits; with residual-stream SAEs only, a Sparse Feature Circuits graph
    (attribution patching between consecutive SAEs). The graph is pruned by influence on the
    logits, scored (replacement, completeness), and checked: for its most influential nodes, the
    effect on the target logit of ablating the node as the graph predicts it beside the effect of
    ablating it in the real model. Writes RUN/circuits/NAME.json (+ .safetensors, and
    circuit-tracer's graph file NAME.circuit-tracer.json)."""

    run: Path = field(default=Path(), metadata={"positional": True, "metavar": "RUN", "required": True})
    """The run folder (graphs are written to RUN/circuits; its transcoders or SAE are used unless
    --transcoders or --saes name others)."""

    prompt: str = field(default="", metadata={"required": True})
    """The prompt whose next token the graph explains."""

    target: str | None = None
    """The next token to explain (exactly one token). Default: the model's top tokens until
    --logit-probability of the probability."""

    transcoders: Path | None = None
    """A transcoder set (one folder per layer). Default: the run's transcoders."""

    saes: tuple[Path, ...] = ()
    """Residual-stream SAE folders (resid_pre:L, resid_post:L) for a Sparse Feature Circuits graph
    when there are no transcoders. Default: the run's SAE."""

    max_prompt_tokens: int = 64
    """Refuse longer prompts (each backward pass runs over every position)."""

    prepend_bos: bool = True
    """Start the prompt with the tokenizer's BOS token."""

    max_logits: int = 10
    """Logit nodes at most (without --target)."""

    logit_probability: float = 0.95
    """Without --target: the top tokens until this much of the probability."""

    max_feature_nodes: int = 500
    """Latents whose incoming edges are computed, the most influential on the logits first (the
    graph keeps these)."""

    batch_size: int = 64
    """Targets per backward pass."""

    node_threshold: float = 0.8
    """Pruning: keep the fewest nodes holding this share of the influence on the logits."""

    edge_threshold: float = 0.98
    """Pruning: keep the fewest edges holding this share of the (pruned graph's) edge influence."""

    validate: int = 20
    """Nodes (the most influential) ablated in the graph and in the real model (0: no check)."""

    head_edges: int = 20
    """Kept edges between positions (largest |weight| first) split over the attention heads that
    carry them (transcoder graphs; 0: none)."""

    sfc_method: Literal["attribution-patching", "integrated-gradients"] = "attribution-patching"
    """Sparse Feature Circuits edges: the gradient at the prompt, or integrated gradients."""

    ig_steps: int = 10
    """Integrated gradients' steps."""

    name: str = ""
    """The graph's name (its files' stem and circuit-tracer's slug). Default: from the prompt."""

    force: bool = False
    """Use --model even if the dictionaries were trained on another model."""

    model: str = ""
    """Model to run. Default: the one the dictionaries record."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(self.prompt.strip() != "", "give a non-empty --prompt")
        require(self.target != "", "--target must not be empty")
        require(
            self.max_prompt_tokens >= 2,
            f"--max-prompt-tokens must be at least 2, got {self.max_prompt_tokens}",
        )
        require(self.max_logits >= 1, f"--max-logits must be at least 1, got {self.max_logits}")
        require(
            0.0 < self.logit_probability <= 1.0,
            f"--logit-probability must be in (0, 1], got {self.logit_probability}",
        )
        require(
            self.max_feature_nodes >= 0,
            f"--max-feature-nodes must be at least 0, got {self.max_feature_nodes}",
        )
        require(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        for name in ("node_threshold", "edge_threshold"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        require(self.validate >= 0, f"--validate must be at least 0, got {self.validate}")
        require(self.head_edges >= 0, f"--head-edges must be at least 0, got {self.head_edges}")
        require(self.ig_steps >= 1, f"--ig-steps must be at least 1, got {self.ig_steps}")
        require(
            all(c.isalnum() or c in "-_." for c in self.name),
            f"--name may hold letters, digits, - _ . only, got {self.name!r}",
        )
        require(self.threads >= 0, f"--threads must be at least 0, got {self.threads}")


__all__ = ["CircuitConfig"]
