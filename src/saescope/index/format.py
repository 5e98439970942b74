"""The on-disk contract of a latent index: file names, `index.json`, token keys, and its error.

Every indexed token is named by one integer, its *token key*: `doc_id * stride + position`, where
`stride` (in `index.json`) bounds the length of a model input. A key needs no lookup table to
become (doc_id, position), is the same whichever rank or chunk indexed the token, and, sorted
within a latent's postings, grows by small steps that Parquet's delta encoding stores in about a
byte. The files are listed in the package docstring (`saescope.index`).

This module knows nothing about models, SAEs' weights or how the files are computed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SaescopeError
from ..files import json_safe, read_json_object, write_json
from ..runs import INDEX_HEADER

FORMAT = "saescope.index/1"
HEADER = INDEX_HEADER
TOKENS_DIR = "tokens"
DOCS_DIR = "docs"
POSTINGS_DIR = "postings"
CHUNKS_DIR = "chunks"
"""Work in progress: each committed chunk's postings, until the final compaction."""
PARTS_DIR = "parts"
"""Work in progress: per-bucket statistics and top examples, until they are merged."""
PROGRESS_DIR = "progress"
"""Work in progress: each rank's committed chunks."""
LATENTS = "latents.parquet"
TOP = "top.parquet"
COOCCURRENCE = "cooccurrence.parquet"
NEIGHBOURS = "neighbours.parquet"
LOGITS = "logits.parquet"
MAP = "map.parquet"
TOKEN_COUNTS = "token_counts.parquet"
EXPLANATIONS = "explanations.parquet"
SCORES = "scores.parquet"


class LatentIndexError(SaescopeError):
    """A latent index that is missing, unfinished, foreign, or asked something out of range."""


def chunk_file(folder: str, rank: int, chunk: int) -> str:
    """Path (relative to the index) of a chunk's file in `folder` (tokens, docs or chunks)."""
    return f"{folder}/part-r{rank}-c{chunk:06d}.parquet"


def bucket_file(bucket: int) -> str:
    """Path (relative to the index) of a bucket's postings."""
    return f"{POSTINGS_DIR}/bucket-{bucket:05d}.parquet"


def progress_file(rank: int) -> str:
    """Path (relative to the index) of a rank's progress record."""
    return f"{PROGRESS_DIR}/rank-{rank}.json"


def token_keys(doc_ids: np.ndarray, positions: np.ndarray, stride: int) -> np.ndarray:
    """Token keys (int64) of (doc_id, position) pairs."""
    return np.asarray(doc_ids, dtype=np.int64) * stride + np.asarray(positions, dtype=np.int64)


def split_keys(keys: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc_ids, positions) of token keys."""
    keys = np.asarray(keys, dtype=np.int64)
    return keys // stride, keys % stride


def sae_fingerprint(tensors: dict[str, Any]) -> str:
    """SHA-256 of an SAE's weights (name, dtype, shape and bytes of each tensor, by name): the same
    for the same SAE in any file format, different for any other SAE."""
    import torch  # only building and --text queries fingerprint an SAE; the other queries stay light

    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class IndexHeader:
    """`index.json`: what an index holds and how it was built."""

    sae: str
    """The SAE folder (absolute path)."""
    sae_sha256: str
    """`sae_fingerprint` of its weights (an index answers only for this SAE)."""
    cfg: dict[str, Any]
    """The SAE's `cfg.json` contents."""
    model: str
    """The model the SAE reads (as `load_model` accepts it)."""
    hookpoint: str
    """Where in the model."""
    d_sae: int
    """Latents."""
    source: str
    """`text` (the model ran over a corpus) or `store` (rows of an activation store)."""
    corpus: dict[str, Any] | None
    """Text source: the corpus settings (`CorpusSettings`) the inputs were cut with."""
    store: str | None
    """Store source: the activation store folder."""
    start: int
    """Text source: the first model input (doc_id) indexed (held-out text starts there)."""
    stride: int
    """Token key = doc_id * stride + position (stride bounds a model input's length)."""
    target_tokens: int
    """Tokens asked for (`--tokens`)."""
    values: str
    """Stored activation dtype: float16 or float32."""
    bucket_latents: int
    """Latents per postings file (bucket b holds latents [b·n, (b+1)·n))."""
    world_size: int
    """Ranks that built it."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The build settings (`IndexConfig`)."""
    complete: bool = False
    """Whether the build finished (queries refuse an unfinished index)."""
    tokens: int = 0
    """Tokens (positions) indexed."""
    docs: int = 0
    """Documents (model inputs) indexed."""
    nonzeros: int = 0
    """Stored (token, latent, activation) postings."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Once complete: dead and dense counts, map method, bytes of each part."""
    format: str = FORMAT

    @property
    def buckets(self) -> int:
        """Postings files."""
        return -(-self.d_sae // self.bucket_latents)

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to resume or reuse this index."""
        keys = ("sae_sha256", "source", "corpus", "store", "start", "stride", "target_tokens", "values")
        more = ("bucket_latents", "world_size", "model", "hookpoint")
        return json_safe({k: getattr(self, k) for k in (*keys, *more)})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe({f.name: getattr(self, f.name) for f in fields(self)})
        return {"format": out.pop("format"), **out}


def write_header(folder: Path, header: IndexHeader) -> None:
    """Write `index.json` atomically."""
    write_json(Path(folder) / HEADER, header.to_dict())


def read_header(folder: Path | str, complete: bool = True) -> IndexHeader:
    """The header of the index at `folder`; `LatentIndexError` when it is not one (or, with
    `complete`, when its build has not finished)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LatentIndexError(f"{folder} is not a latent index (no such folder)")
    if not (folder / HEADER).is_file():
        raise LatentIndexError(f"{folder} is not a latent index (no {HEADER})")
    raw = read_json_object(folder / HEADER, LatentIndexError, "a latent index header")
    if raw.get("format") != FORMAT:
        raise LatentIndexError(f"{folder} is not a {FORMAT} latent index (format {raw.get('format')!r})")
    known = {f.name for f in fields(IndexHeader)}
    try:
        header = IndexHeader(**{k: v for k, v in raw.items() if k in known})
    except TypeError as e:
        raise LatentIndexError(f"{folder / HEADER} is incomplete ({e})") from None
    if complete and not header.complete:
        raise LatentIndexError(f"{folder} is an unfinished index: rerun the index command to finish it")
    return header


__all__ = [
    "COOCCURRENCE",
    "DOCS_DIR",
    "EXPLANATIONS",
    "FORMAT",
    "HEADER",
    "LATENTS",
    "LOGITS",
    "MAP",
    "NEIGHBOURS",
    "POSTINGS_DIR",
    "SCORES",
    "TOKENS_DIR",
    "TOKEN_COUNTS",
    "TOP",
    "IndexHeader",
    "LatentIndexError",
    "bucket_file",
    "chunk_file",
    "progress_file",
    "read_header",
    "sae_fingerprint",
    "split_keys",
    "token_keys",
    "write_header",
]
