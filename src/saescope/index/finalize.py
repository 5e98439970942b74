"""Finishing an index once every chunk is committed: compaction, statistics, relations, map.

1. Compaction, bucket by bucket (rank r takes buckets b with b % world == r): the bucket's row
   group of every chunk file is read, sorted by (latent, token) and written as
   `postings/bucket-{b}.parquet`, after its statistics and top examples (`parts/`). The bucket
   file is written last, so a bucket is done exactly when its file exists: a killed compaction
   resumes at the first missing bucket.
2. On rank 0: `latents.parquet` and `top.parquet` from the parts, co-occurring partners from the
   chunk files (each holds whole tokens; the header's `summary.cooccurrence` records which are
   kept), token counts, decoder neighbours, logit effects (when the model can be loaded), the map;
   then `index.json` is marked complete and the work files removed.

This module knows nothing about sources, or how chunks were written.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..config import IndexConfig
from ..errors import SaescopeError
from ..files import is_temp_name, publish, write_atomic, write_temp
from ..sae.base import SparseAutoencoder
from .cooccurrence import MIN_SHARED, PARTNER_METRICS, cooccurrence_counts, top_partners
from .decoder import logit_effects, logits_table, neighbours
from .format import (
    CHUNKS_DIR,
    COOCCURRENCE,
    DOCS_DIR,
    LATENTS,
    LOGITS,
    MAP,
    NEIGHBOURS,
    PARTS_DIR,
    POSTINGS_DIR,
    PROGRESS_DIR,
    TOKEN_COUNTS,
    TOKENS_DIR,
    TOP,
    IndexHeader,
    LatentIndexError,
    bucket_file,
    chunk_file,
    write_header,
)
from .latent_map import choose_method, latent_map
from .latent_table import bucket_stats, top_examples
from .postings import Postings, bucket_postings_bytes, read_latent_range
from .writer import Progress

log = logging.getLogger(__name__)


TABLE_ROW_GROUP = 8_192
"""Rows per row group of the per-latent tables (sorted by latent: a query reads one or two groups)."""


def table_bytes(table: pa.Table) -> memoryview:
    """A table as zstd Parquet bytes, in small row groups."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=TABLE_ROW_GROUP)
    return memoryview(sink.getvalue())


def write_table(path: Path, table: pa.Table) -> None:
    """Write a table as a Parquet file, atomically."""
    write_atomic(path, [table_bytes(table)])


def read_progress(out: Path, world_size: int) -> list[Progress]:
    """Every rank's progress; `LatentIndexError` when a rank has not finished its share."""
    progress = [Progress.read(out, r) for r in range(world_size)]
    unfinished = [p.rank for p in progress if not p.done]
    if unfinished:
        raise LatentIndexError(f"{out}: rank(s) {unfinished} did not finish; rerun the index command")
    return progress


def chunk_paths(out: Path, progress: list[Progress]) -> list[Path]:
    """Every committed chunk's postings file."""
    return [out / chunk_file(CHUNKS_DIR, p.rank, c["chunk"]) for p in progress for c in p.chunks]


def remove_temp_files(folder: Path, names: set[str] | None = None) -> None:
    """Delete temporary files a killed build left in `folder` (only those of the files `names`,
    when given: other ranks may be writing theirs)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if is_temp_name(path.name) and (names is None or path.name[1:].rsplit(".", 2)[0] in names):
            log.info("removing %s (left by an interrupted build)", path)
            path.unlink(missing_ok=True)


def bucket_files(bucket: int) -> tuple[str, str, str]:
    """Names of a bucket's statistics part, top-examples part and postings file."""
    return f"stats-{bucket:05d}.parquet", f"top-{bucket:05d}.parquet", Path(bucket_file(bucket)).name


def compact_bucket(
    out: Path, header: IndexHeader, bucket: int, chunks: list[Path], cfg: IndexConfig, tokens: int
) -> None:
    """Merge one bucket's postings from every chunk, with its statistics and top examples."""
    lo = bucket * header.bucket_latents
    hi = min(lo + header.bucket_latents, header.d_sae)
    parts = [read_latent_range(path, lo, hi) for path in chunks]
    postings = Postings.concat(parts, np.dtype(header.values)).sorted()
    (out / PARTS_DIR).mkdir(exist_ok=True)
    stats_name, top_name, _ = bucket_files(bucket)
    files = [
        write_temp(
            out / PARTS_DIR / stats_name,
            [table_bytes(bucket_stats(postings, lo, hi, tokens, cfg.dense_frequency))],
        ),
        write_temp(
            out / PARTS_DIR / top_name,
            [table_bytes(top_examples(postings, cfg.top_examples))],
        ),
        write_temp(out / bucket_file(bucket), [bucket_postings_bytes(postings)]),
    ]
    publish(files)


def compact(out: Path, header: IndexHeader, cfg: IndexConfig, rank: int, world_size: int) -> None:
    """Compact this rank's share of the buckets (those not done yet)."""
    progress = read_progress(out, world_size)
    chunks = chunk_paths(out, progress)
    tokens = sum(p.tokens for p in progress)
    (out / POSTINGS_DIR).mkdir(exist_ok=True)
    mine = [b for b in range(header.buckets) if b % world_size == rank]
    names = {name for b in mine for name in bucket_files(b)}
    remove_temp_files(out / PARTS_DIR, names)
    remove_temp_files(out / POSTINGS_DIR, names)
    todo = [b for b in mine if not (out / bucket_file(b)).exists()]
    for bucket in tqdm(todo, desc=f"compacting {out.name}", unit="bucket", disable=rank != 0 or not todo):
        compact_bucket(out, header, bucket, chunks, cfg, tokens)


def merged_parts(out: Path, kind: str, buckets: int) -> pa.Table:
    """The `parts/{kind}-*.parquet` tables of every bucket, in bucket order."""
    return pa.concat_tables(
        [pq.read_table(out / PARTS_DIR / f"{kind}-{b:05d}.parquet") for b in range(buckets)]
    )


def chunk_blocks(chunks: list[Path]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(latents, token keys) of each chunk file."""
    for path in chunks:
        table = pq.read_table(path, columns=["latent", "token"])
        yield table.column("latent").to_numpy(), table.column("token").to_numpy()


def token_counts(out: Path, progress: list[Progress]) -> pa.Table:
    """How often each token id occurs among the indexed tokens (`token_id`, `count`; only ids seen)."""
    counts = np.zeros(0, dtype=np.int64)
    for p in progress:
        for c in p.chunks:
            ids = pq.read_table(out / chunk_file(TOKENS_DIR, p.rank, c["chunk"]), columns=["token_id"])
            found = np.bincount(ids.column("token_id").to_numpy())
            counts = np.pad(counts, (0, max(0, len(found) - len(counts))))
            counts[: len(found)] += found
    seen = np.flatnonzero(counts)
    return pa.table({"token_id": pa.array(seen.astype(np.int32)), "count": pa.array(counts[seen])})


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def write_logits(out: Path, sae: SparseAutoencoder, load_model: Callable[[], Any], n: int) -> bool:
    """`logits.parquet`, when the model can be loaded (False, with a warning, when not)."""
    try:
        model = load_model()
    except SaescopeError as e:
        log.warning("no logit effects in %s: %s", out, e)
        return False
    write_table(out / LOGITS, logits_table(logit_effects(sae.W_dec.detach(), model, n)))
    return True


def finish(
    out: Path, header: IndexHeader, cfg: IndexConfig, sae: SparseAutoencoder, load_model: Callable[[], Any]
) -> IndexHeader:
    """Rank 0's part (see the module docstring): returns the complete header."""
    remove_temp_files(out)
    progress = read_progress(out, header.world_size)
    chunks = chunk_paths(out, progress)
    latents = merged_parts(out, "stats", header.buckets)
    write_table(out / LATENTS, latents)
    write_table(out / TOP, merged_parts(out, "top", header.buckets))
    log.info("%s: co-occurrence counts", out)
    write_table(
        out / COOCCURRENCE, top_partners(cooccurrence_counts(chunk_blocks(chunks), header.d_sae), cfg.related)
    )
    write_table(out / TOKEN_COUNTS, token_counts(out, progress))
    write_table(out / NEIGHBOURS, neighbours(sae.W_dec.detach().cpu(), cfg.related))
    has_logits = write_logits(out, sae, load_model, cfg.logit_tokens)
    method = choose_method(cfg.map)
    if method != "none":
        write_table(out / MAP, latent_map(sae.W_dec.detach(), method, cfg.map_clusters, cfg.seed).table())
    summary = {
        "dead": int(np.sum(latents.column("dead").to_numpy(zero_copy_only=False))),
        "dense": int(np.sum(latents.column("dense").to_numpy(zero_copy_only=False))),
        "map": method,
        "logits": has_logits,
        "cooccurrence": {"min_shared": MIN_SHARED, "kept": cfg.related, "by": list(PARTNER_METRICS)},
        "bytes": {
            "postings": folder_bytes(out / POSTINGS_DIR),
            "tokens": folder_bytes(out / TOKENS_DIR),
            "docs": folder_bytes(out / DOCS_DIR),
        },
    }
    done = dataclasses.replace(
        header,
        complete=True,
        tokens=sum(p.tokens for p in progress),
        docs=sum(p.docs for p in progress),
        nonzeros=sum(p.nonzeros for p in progress),
        summary=summary,
    )
    if done.tokens < header.target_tokens:
        asked = header.target_tokens
        log.warning("%s: the text ran out after %d tokens (asked for %d)", out, done.tokens, asked)
    write_header(out, done)
    remove_work_files(out)
    return done


def remove_work_files(out: Path) -> None:
    """Delete what only an unfinished build needs (after `index.json` says complete)."""
    for folder in (CHUNKS_DIR, PARTS_DIR, PROGRESS_DIR):
        shutil.rmtree(out / folder, ignore_errors=True)


__all__ = ["compact", "compact_bucket", "finish", "remove_work_files", "token_counts"]
