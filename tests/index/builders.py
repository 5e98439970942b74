"""A tiny world to index: the tiny Llama, a random TopK SAE on it, and a small corpus.

`topk_sae` makes an SAE whose encoder is its (unit) decoder transposed and scaled, so that the
tiny model's residual stream makes several latents fire per token; `write_corpus` writes short
documents of a few words (some with digits and Arabic words, for the proxy tests); `build` runs
`build_index` with small chunks so that a few hundred tokens already span several chunks and
buckets.

This module knows nothing about the index code under test beyond its public entry points.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saescope.config import IndexConfig
from saescope.index.build import IndexResult, build_index
from saescope.sae import SparseAutoencoder
from saescope.sae.formats import save_sae
from tests.builders import random_topk_sae

HOOKPOINT = "resid_post:1"
D_MODEL = 32  # the tiny Llama's width
WORDS = ["the", "cat", "is", "on", "a", "mat", "Paris", "far", "away", "river", "stone", "light"]
WORDS += ["house", "green", "blue", "there", "another", "matter", "character", "42", "7", "سلام", "كتاب"]


def topk_sae(
    model_dir: Path, d_sae: int = 48, k: int = 5, seed: int = 0, scale: float = 8.0
) -> SparseAutoencoder:
    """A TopK SAE on the tiny model's `resid_post:1` with random unit decoder rows."""
    return random_topk_sae(model_dir, d_sae, k, seed, scale)


def save(sae: SparseAutoencoder, folder: Path) -> Path:
    save_sae(sae, folder)
    return folder


def write_corpus(path: Path, docs: int = 40, seed: int = 0) -> Path:
    """`docs` short documents of random words, as `.jsonl`."""
    rng = random.Random(seed)
    lines = []
    for _ in range(docs):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 30))]
        text = " ".join(words).capitalize() + rng.choice([".", "!", "?"])
        lines.append(json.dumps({"text": text}))
    path.write_text("\n".join(lines) + "\n")
    return path


def settings(saes: list[Path], outs: list[Path], corpus: Path | None = None, **kw: Any) -> IndexConfig:
    base: dict[str, Any] = {
        "saes": tuple(saes),
        "out": tuple(outs),
        "dataset": str(corpus) if corpus is not None else None,
        "device": "cpu",
        "tokens": 600,
        "context_len": 24,
        "batch_size": 4,
        "chunk_tokens": 128,
        "bucket_latents": 8,
        "map": "pca",
        "map_clusters": 4,
    }
    base.update(kw)
    return IndexConfig(**base)


def build(saes: list[Path], outs: list[Path], corpus: Path | None = None, **kw: Any) -> IndexResult:
    return build_index(settings(saes, outs, corpus, **kw))


def all_postings(index: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent, token, activation) of every posting, in file order, read with pyarrow alone."""
    table = pq.read_table(sorted((index / "postings").glob("*.parquet")))
    return (
        table.column("latent").to_numpy(),
        table.column("token").to_numpy(),
        table.column("activation").to_numpy().astype(np.float32),
    )


def dense_of(index: Path, keys: np.ndarray, d_sae: int) -> np.ndarray:
    """The index's postings as a dense [len(keys), d_sae] matrix over the token keys `keys`."""
    latent, token, activation = all_postings(index)
    rows = np.searchsorted(keys, token)
    assert np.array_equal(keys[rows], token), "a posting names a token that is not indexed"
    dense = np.zeros((len(keys), d_sae), dtype=np.float32)
    dense[rows, latent] = activation
    return dense


def table_of(index: Path, folder: str) -> pa.Table:
    """All Parquet files of a folder of the index, sorted by their first column."""
    table = pq.read_table(sorted((index / folder).glob("*.parquet")))
    return table.sort_by(table.column_names[0])
