"""Writing an index's chunks: resumable after a kill at any moment, one writer per SAE and rank.

`IndexWriter.add` turns a batch of codes into postings (every active (token, latent, activation),
no truncation), token rows and document records, and buffers them; once `chunk_tokens` tokens are
buffered it commits a chunk: three files (`tokens/`, `docs/`, `chunks/` `part-r{r}-c{i}.parquet`)
written under temporary names, made durable and renamed (`files.publish`), then the rank's
progress record (`progress/rank-{r}.json`) is replaced — the commit point. A writer opened on a
folder deletes files no progress record lists (a chunk killed before its commit) and resumes at
the committed `cursor`: rows before it are skipped, so nothing is lost or indexed twice.

This module knows nothing about models, sources or the final compaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import is_temp_name, publish, read_json_object, write_json, write_temp
from ..store.docs import DocRecord, docs_parquet
from .format import (
    CHUNKS_DIR,
    DOCS_DIR,
    TOKENS_DIR,
    LatentIndexError,
    chunk_file,
    progress_file,
    token_keys,
)
from .postings import Postings, TokenRows, as_stored, chunk_postings_bytes, tokens_bytes
from .sentences import sentence_starts
from .sources import CodeBatch, Codes

log = logging.getLogger(__name__)

DOCS_ROW_GROUP = 16
"""Documents per row group of a chunk's docs table (a query reads a few documents by id)."""


@dataclass
class Progress:
    """A rank's committed work (`progress/rank-{r}.json`)."""

    rank: int
    chunks: list[dict[str, int]] = field(default_factory=list)
    """Committed chunks: `chunk`, `tokens`, `nonzeros`, `docs`, `cursor`."""
    cursor: int = 0
    """Rows with `order` below this are committed."""
    done: bool = False
    """The rank's whole share is committed."""

    @property
    def tokens(self) -> int:
        return sum(c["tokens"] for c in self.chunks)

    @property
    def nonzeros(self) -> int:
        return sum(c["nonzeros"] for c in self.chunks)

    @property
    def docs(self) -> int:
        return sum(c["docs"] for c in self.chunks)

    @classmethod
    def read(cls, folder: Path, rank: int) -> Progress:
        path = folder / progress_file(rank)
        if not path.is_file():
            return cls(rank)
        raw = read_json_object(path, LatentIndexError, "index build progress")
        return cls(rank, list(raw.get("chunks", [])), int(raw.get("cursor", 0)), bool(raw.get("done", False)))

    def write(self, folder: Path) -> None:
        record: dict[str, Any] = {
            "rank": self.rank,
            "chunks": self.chunks,
            "cursor": self.cursor,
            "done": self.done,
            "tokens": self.tokens,
            "nonzeros": self.nonzeros,
            "docs": self.docs,
        }
        write_json(folder / progress_file(self.rank), record)


@dataclass
class _Buffer:
    """What the next chunk will hold."""

    postings: list[Postings] = field(default_factory=list)
    tokens: list[TokenRows] = field(default_factory=list)
    docs: list[DocRecord] = field(default_factory=list)
    n_tokens: int = 0


class IndexWriter:
    """Buffers one SAE's codes and commits them in chunks (see the module docstring)."""

    def __init__(
        self,
        out: Path,
        rank: int,
        stride: int,
        bucket_latents: int,
        values: str,
        chunk_tokens: int,
        sentence_ends: np.ndarray,
    ) -> None:
        self.out = Path(out)
        self.rank = rank
        self.stride = stride
        self.bucket_latents = bucket_latents
        self.values = values
        self.chunk_tokens = chunk_tokens
        self.sentence_ends = sentence_ends
        for folder in (TOKENS_DIR, DOCS_DIR, CHUNKS_DIR, "progress"):
            (self.out / folder).mkdir(parents=True, exist_ok=True)
        self.progress = Progress.read(self.out, rank)
        self._remove_uncommitted()
        self._buffer = _Buffer()

    @property
    def cursor(self) -> int:
        """Rows with `order` below this are committed (resume from here)."""
        return self.progress.cursor

    @property
    def done(self) -> bool:
        return self.progress.done

    def committed_files(self) -> set[str]:
        """Paths (relative to the index) of this rank's committed chunk files."""
        return {
            chunk_file(folder, self.rank, c["chunk"])
            for c in self.progress.chunks
            for folder in (TOKENS_DIR, DOCS_DIR, CHUNKS_DIR)
        }

    def _remove_uncommitted(self) -> None:
        """Delete this rank's temporary files and chunk files no progress record lists."""
        keep = self.committed_files()
        prefix = f"part-r{self.rank}-"
        for folder in (TOKENS_DIR, DOCS_DIR, CHUNKS_DIR):
            for path in (self.out / folder).iterdir():
                ours = path.name.startswith(prefix) or path.name.startswith("." + prefix)
                if ours and (is_temp_name(path.name) or f"{folder}/{path.name}" not in keep):
                    log.info("removing %s (not committed by the interrupted build)", path)
                    path.unlink()

    # -------------------------------------------------------------------------------- adding
    def add(self, batch: CodeBatch, codes: Codes, cursor: int) -> None:
        """Buffer the batch's rows at or after the committed cursor; `cursor` is where the source
        stands after this batch. Commits a chunk once enough tokens are buffered."""
        keep = batch.order >= self.progress.cursor
        if not keep.any():
            return
        rows = np.flatnonzero(keep)
        keys = token_keys(batch.doc_ids[rows], batch.positions[rows], self.stride)
        self._buffer.tokens.append(self._token_rows(batch, rows, keys))
        self._buffer.postings.append(self._postings(codes, rows, keys))
        starts = batch.doc_starts
        self._buffer.docs += [d for d, s in zip(batch.docs, starts) if s >= self.progress.cursor]
        self._buffer.n_tokens += len(rows)
        if self._buffer.n_tokens >= self.chunk_tokens:
            self.commit(cursor)

    def _token_rows(self, batch: CodeBatch, rows: np.ndarray, keys: np.ndarray) -> TokenRows:
        doc_ids, positions = batch.doc_ids[rows], batch.positions[rows]
        sentence = np.empty(len(rows), dtype=np.int64)
        for doc in batch.docs:
            mine = doc_ids == doc.doc_id
            if mine.any():
                starts = sentence_starts(np.asarray(doc.token_ids), self.sentence_ends)
                sentence[mine] = doc.doc_id * self.stride + starts[positions[mine]]
        return TokenRows(
            keys, doc_ids.astype(np.int64), positions.astype(np.int32), batch.token_ids[rows], sentence
        )

    def _postings(self, codes: Codes, rows: np.ndarray, keys: np.ndarray) -> Postings:
        acts = codes.acts.numpy()[rows]
        indices = codes.indices.numpy()[rows]
        active = acts > 0
        row_of = np.nonzero(active)[0]
        return Postings(
            indices[active].astype(np.int32),
            keys[row_of],
            as_stored(acts[active], self.values),
        )

    # ------------------------------------------------------------------------------ committing
    def commit(self, cursor: int) -> None:
        """Write the buffered rows as the next chunk and record it (nothing when empty)."""
        buffer, self._buffer = self._buffer, _Buffer()
        if buffer.n_tokens == 0:
            self.progress.cursor = max(self.progress.cursor, cursor)
            return
        chunk = 1 + max((c["chunk"] for c in self.progress.chunks), default=-1)
        postings = Postings.concat(buffer.postings, np.dtype(self.values)).sorted()
        tokens = TokenRows(*(np.concatenate(columns) for columns in zip(*buffer.tokens)))
        files = [
            write_temp(self.out / chunk_file(TOKENS_DIR, self.rank, chunk), [tokens_bytes(tokens)]),
            write_temp(
                self.out / chunk_file(DOCS_DIR, self.rank, chunk), [docs_parquet(buffer.docs, DOCS_ROW_GROUP)]
            ),
            write_temp(
                self.out / chunk_file(CHUNKS_DIR, self.rank, chunk),
                [chunk_postings_bytes(postings, self.bucket_latents)],
            ),
        ]
        publish(files)
        self.progress.chunks.append(
            {
                "chunk": chunk,
                "tokens": buffer.n_tokens,
                "nonzeros": len(postings),
                "docs": len(buffer.docs),
                "cursor": cursor,
            }
        )
        self.progress.cursor = cursor
        self.progress.write(self.out)
        log.debug(
            "%s: chunk %d of rank %d committed (%d tokens)", self.out, chunk, self.rank, buffer.n_tokens
        )

    def finish(self, cursor: int) -> None:
        """Commit what is buffered and record that this rank's share is complete."""
        self.commit(cursor)
        self.progress.done = True
        self.progress.write(self.out)


__all__ = ["IndexWriter", "Progress"]
