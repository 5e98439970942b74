"""`saescope capture` settings.

This module knows nothing about how capture runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require
from .base import CorpusSettings, ModelSettings, StoreDType


@dataclass(frozen=True)
class CaptureConfig(CorpusSettings, ModelSettings):
    """`saescope capture`: run a model over a corpus and store activations at hookpoints."""

    hookpoints: tuple[str, ...] = field(
        default=("resid_post:15",), metadata={"flags": ("--hookpoint", "--hookpoints")}
    )
    """Where to read activations: a module path (`model.layers.15`, globs allowed; `PATH:input` for a
    module's input) or a short form (`resid_post:L`, `resid_pre:L`, `mlp_in:L`, `mlp_out:L`,
    `attn_out:L`; `*` for every layer). Several give sibling stores of the same tokens in the same
    order: `mlp_in:* mlp_out:*` are the pairs `saescope train --arch transcoder --acts` reads."""

    out: Path = Path("runs/demo/acts")
    """Output folder. Running again with the same folder resumes (or extends to more --tokens)."""

    tokens: int = 200_000
    """Stop once this many rows (token activations) are stored per hookpoint."""

    batch_size: int = 16
    """Model inputs per forward pass."""

    store_dtype: StoreDType = "bfloat16"
    """Precision of stored activations."""

    shard_mb: int = 256
    """Target size of one activation shard in MiB."""

    def __post_init__(self) -> None:
        CorpusSettings.__post_init__(self)
        require(len(self.hookpoints) > 0, "give at least one --hookpoint")
        require(self.tokens > 0, f"--tokens must be positive, got {self.tokens}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(1 <= self.shard_mb <= 65536, f"--shard-mb must be in [1, 65536], got {self.shard_mb}")
