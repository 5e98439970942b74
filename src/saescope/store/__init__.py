"""Activation store: sharded, memory-mapped, resumable storage of activation rows.

`StoreWriter` writes a store (async, atomic, resumable), `ActivationStore` reads it (random
access, shuffled batches, docs), `merge_manifest` rebuilds the manifest from the rank files,
`RunningStats` holds mean/variance/norm statistics. The format is in `manifest`, the docs table
(the model inputs behind the rows, also written by the latent index) in `docs`.
"""

from .docs import DocRecord, DocsTable
from .manifest import FORMAT, Manifest, ShardInfo, merge_manifest, read_manifest
from .moments import RunningStats
from .reader import ActivationStore, Batch
from .writer import StoreWriter

__all__ = [
    "FORMAT",
    "ActivationStore",
    "Batch",
    "DocRecord",
    "DocsTable",
    "Manifest",
    "RunningStats",
    "ShardInfo",
    "StoreWriter",
    "merge_manifest",
    "read_manifest",
]
