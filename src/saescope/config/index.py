"""`saescope index` settings.

This module knows nothing about how the index is built or read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import require
from .base import ModelSettings, check_choices

ValueDType = Literal["float16", "float32"]
MapMethod = Literal["auto", "umap", "pca", "none"]


@dataclass(frozen=True)
class IndexConfig(ModelSettings):
    """`saescope index`: every latent of one or more SAEs on every token of held-out text."""

    saes: tuple[Path, ...] = field(
        default=(), metadata={"positional": True, "metavar": "SAE", "required": True}
    )
    """SAE folders (or published names: `hf:OWNER/REPO[/PATH][@REVISION]`, `saelens:RELEASE/SAE_ID`)
    to index (several SAEs of one model share one pass over the text)."""

    out: tuple[Path, ...] = ()
    """Index folder of each SAE, in the order of the SAEs. Default: `index` beside each SAE folder
    (runs/NAME/sae → runs/NAME/index)."""

    dataset: str | None = None
    """Text to index. Default: the SAE's own training corpus from the first model input training did
    not read (held-out text)."""

    split: str = "train"
    """Split of a Hugging Face dataset."""

    text_field: str = "text"
    """Field holding the text in `.jsonl`/`.parquet`/Hugging Face records."""

    acts: Path | None = None
    """Index the rows of this activation store instead of text: the SAE encodes stored activations
    and no model runs (the store keeps token ids and documents)."""

    tokens: int = 100_000
    """Tokens (positions) to index; the last model input is cut to make it exact."""

    context_len: int | None = None
    """Tokens per model input when indexing text. Default: the SAE's capture setting."""

    batch_size: int = 8
    """Model inputs per forward pass."""

    values: ValueDType = "float16"
    """How activations are stored: float16 (2 bytes, relative error at most 1/2048; tiny positive values
    are kept positive) or float32 (exact)."""

    chunk_tokens: int = 65_536
    """Tokens per committed chunk: a killed build loses at most this much work, and holds about
    this many tokens' latents in memory."""

    bucket_latents: int = 64
    """Latents per postings file: a query about one latent reads one file."""

    top_examples: int = 100
    """Top activations kept per latent for quick top-k queries (the full postings stay the truth)."""

    related: int = 64
    """Co-occurring latents and decoder-cosine neighbours kept per latent."""

    logit_tokens: int = 20
    """Top and bottom tokens kept per latent of its logit effect (decoder direction · unembedding)."""

    dense_frequency: float = 0.1
    """A latent firing on more than this fraction of tokens is listed as dense."""

    map: MapMethod = "auto"
    """2-D map of the decoder directions: `umap` (the `map` extra), `pca`, `auto` (UMAP when
    installed, else PCA) or `none`."""

    map_clusters: int = 0
    """Clusters of the map (k-means on the decoder directions); 0 picks about sqrt(latents / 2)."""

    seed: int = 0
    """Seed of the map's layout and clusters."""

    force: bool = False
    """Index even if --model or the store's model differs from the model the SAE was trained on."""

    model: str = ""
    """Model to run. Default: the one the SAE records."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(len(self.saes) > 0, "give at least one SAE folder")
        require(
            not self.out or len(self.out) == len(self.saes),
            f"give one --out per SAE ({len(self.saes)} SAEs, {len(self.out)} --out)",
        )
        require(len(set(self.saes)) == len(self.saes), "the same SAE folder is named twice")
        require(self.dataset is None or self.acts is None, "give --dataset or --acts, not both")
        require(self.tokens > 0, f"--tokens must be positive, got {self.tokens}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(self.context_len is None or self.context_len >= 2, "--context-len must be at least 2")
        require(self.chunk_tokens > 0, f"--chunk-tokens must be positive, got {self.chunk_tokens}")
        require(self.bucket_latents > 0, f"--bucket-latents must be positive, got {self.bucket_latents}")
        require(self.top_examples > 0, f"--top-examples must be positive, got {self.top_examples}")
        require(self.related > 0, f"--related must be positive, got {self.related}")
        require(self.logit_tokens > 0, f"--logit-tokens must be positive, got {self.logit_tokens}")
        require(
            0.0 < self.dense_frequency <= 1.0,
            f"--dense-frequency must be in (0, 1], got {self.dense_frequency}",
        )
        require(self.map_clusters >= 0, f"--map-clusters must be >= 0, got {self.map_clusters}")
