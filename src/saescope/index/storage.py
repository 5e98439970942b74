"""`IndexStorage`: a latent index's files opened once, for the queries to read.

    storage = IndexStorage("runs/demo/index")
    storage.postings(12)                     # token keys where latent 12 fires, and its activations
    storage.doc_tokens([3, 4])               # the token ids of model inputs 3 and 4
    storage.decode([464, 3797])              # each token decoded on its own
    storage.stats()                          # latents.parquet

It holds the header, the paths of the files (the package docstring lists them), one embedded
DuckDB connection for scans and aggregations, the sorted Parquet files read by point lookups
(`lookup`: their footers read once), a few latents' postings and the last whole bucket read, the
documents, the tokenizer (`models.load_tokenizer`, no weights, loaded under one lock shared by every
storage) and the per-latent statistics. A part that is missing — a postings bucket, a tokens or
docs part, a table — is a `LatentIndexError` naming it, never a bare file error. May be shared
between threads (queries are serialised on the connection, reads of one file on that file).

The questions (examples, units, proxies, relations: `Index` and the modules it calls) take an
`IndexStorage`; this module knows nothing about them, nor about how the index was built.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..tokens import decode_each
from .format import DOCS_DIR, LATENTS, TOKEN_COUNTS, TOKENS_DIR, LatentIndexError, bucket_file, read_header
from .lookup import DocsLookup, SortedFile

POSTINGS_CACHE = 8
"""Latents whose postings stay in memory (a dashboard asks several things of one latent)."""
TOKENIZER_LOCK = threading.Lock()
"""Held while any storage loads its tokenizer (see `IndexStorage.tokenizer`)."""
REBUILD = "delete the index folder and run saescope index again"
"""What to do about a damaged index."""

Postings = tuple[np.ndarray, np.ndarray]
"""One latent's postings: token keys (ascending, int64) and activations (float32)."""


def sql_path(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


class IndexStorage:
    """A latent index's files opened for reading (see the module docstring)."""

    def __init__(self, path: Path | str, tokenizer: Any = None) -> None:
        self.path = Path(path)
        self.header = read_header(self.path)
        self._db = duckdb.connect()
        self._lock = threading.RLock()
        self._tokenizer = tokenizer
        self._decoded: dict[int, str] = {}
        self._postings: OrderedDict[int, Postings] = OrderedDict()
        self._stats: pa.Table | None = None
        self._token_files: list[tuple[Path, int]] | None = None
        self._buckets: dict[int, SortedFile] = {}
        self._docs: DocsLookup | None = None
        self._sorted: dict[str, SortedFile] = {}
        self._bulk_bucket: tuple[int, dict[int, Postings]] | None = None

    def __repr__(self) -> str:
        h = self.header
        return f"IndexStorage({str(self.path)!r}, d_sae={h.d_sae}, tokens={h.tokens})"

    # ---------------------------------------------------------------------------------- basics
    @property
    def d_sae(self) -> int:
        return self.header.d_sae

    @property
    def tokens(self) -> int:
        """Tokens indexed."""
        return self.header.tokens

    @property
    def stride(self) -> int:
        return self.header.stride

    def check_latent(self, latent: int) -> int:
        """`latent`, or `LatentIndexError` when it is not a latent of this SAE."""
        if not 0 <= int(latent) < self.d_sae:
            raise LatentIndexError(
                f"latent {latent} is out of range: this SAE has {self.d_sae} latents (0-{self.d_sae - 1})"
            )
        return int(latent)

    def checked(self, latents: Sequence[int]) -> list[int]:
        """`latents` as ints, each checked (`check_latent`), in their order without repeats."""
        return list(dict.fromkeys(self.check_latent(k) for k in latents))

    def damaged(self, what: str) -> LatentIndexError:
        """The error of a part of the index that is not there."""
        return LatentIndexError(f"{self.path} is damaged: {what}; {REBUILD}")

    # --------------------------------------------------------------------------------- files
    def file(self, name: str, what: str) -> Path:
        """A file of the index that must exist (`what` names it in the error)."""
        path = self.path / name
        if not path.is_file():
            raise LatentIndexError(f"{self.path} has no {what} ({name} is missing); {REBUILD}")
        return path

    def sorted_file(self, name: str, what: str, keys: Sequence[str]) -> SortedFile:
        """A table of the index sorted by `keys`, its footer read once (`what` names it in the error)."""
        if name not in self._sorted:
            self._sorted[name] = SortedFile(self.file(name, what), keys)
        return self._sorted[name]

    def parts(self, folder: str) -> list[Path]:
        """The Parquet files of a folder of the index (tokens, docs); an error when there are none."""
        paths = sorted((self.path / folder).glob("*.parquet"))
        if not paths:
            raise self.damaged(f"{folder}/ holds no Parquet file")
        return paths

    def token_files(self) -> list[tuple[Path, int]]:
        """The tokens tables and their row counts (from their Parquet footers); an error when they
        hold fewer tokens than the header says were indexed (a part file is missing)."""
        if self._token_files is None:
            files = [(p, pq.ParquetFile(p).metadata.num_rows) for p in self.parts(TOKENS_DIR)]
            held = sum(rows for _, rows in files)
            if held != self.tokens:
                where = f"{TOKENS_DIR}/ holds {held:,} of its {self.tokens:,} indexed tokens"
                raise self.damaged(f"{where} (a part file is missing)")
            self._token_files = files
        return self._token_files

    # ----------------------------------------------------------------------------------- SQL
    def sql(self, query: str, params: Sequence[Any] = ()) -> dict[str, np.ndarray]:
        """Run a query on this index's connection; columns as numpy arrays."""
        with self._lock:
            result: dict[str, np.ndarray] = self._db.execute(query, list(params)).fetchnumpy()
        return result

    def sql_with(self, name: str, table: pa.Table, query: str) -> dict[str, np.ndarray]:
        """Run a query that reads `table` under `name` (registered for this query only)."""
        with self._lock:
            self._db.register(name, table)
            try:
                return self.sql(query)
            finally:
                self._db.unregister(name)

    def glob(self, folder: str) -> str:
        """SQL literal of all Parquet files of a folder of the index (checked to be all there)."""
        if folder == TOKENS_DIR:
            self.token_files()
        else:
            self.parts(folder)
        return sql_path(self.path / folder / "*.parquet")

    # ------------------------------------------------------------------------------- tokenizer
    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded on first use. Loaded under a lock shared by every storage:
        transformers' lazy imports race when several threads load a tokenizer at once (ImportError
        and crashes were seen in the web server)."""
        if self._tokenizer is None:
            with TOKENIZER_LOCK:
                if self._tokenizer is None:
                    from ..models import load_tokenizer

                    self._tokenizer = load_tokenizer(self.header.model)
        return self._tokenizer

    def decode(self, token_ids: Sequence[int]) -> list[str]:
        """Each token decoded on its own."""
        missing = [int(i) for i in dict.fromkeys(token_ids) if int(i) not in self._decoded]
        if missing:
            texts = decode_each(self.tokenizer, missing)
            self._decoded.update(zip(missing, texts))
        return [self._decoded[int(i)] for i in token_ids]

    # ---------------------------------------------------------------------------------- tables
    def stats(self) -> pa.Table:
        """Per-latent statistics (`latents.parquet`, see `latent_table`)."""
        if self._stats is None:
            self._stats = pq.read_table(self.file(LATENTS, "latent statistics"))
        return self._stats

    def token_counts(self) -> dict[int, int]:
        """How often each token id occurs among the indexed tokens (background counts)."""
        table = pq.read_table(self.file(TOKEN_COUNTS, "token counts"))
        return dict(zip(table.column("token_id").to_pylist(), table.column("count").to_pylist()))

    # -------------------------------------------------------------------------------- postings
    def bucket(self, latent: int) -> SortedFile:
        """The postings file holding `latent` (its footer read once)."""
        per = self.header.bucket_latents
        bucket = self.check_latent(latent) // per
        if bucket not in self._buckets:
            lo, hi = bucket * per, min((bucket + 1) * per, self.d_sae) - 1
            path = self.file(bucket_file(bucket), f"postings of latents {lo}-{hi}")
            self._buckets[bucket] = SortedFile(path, ["latent", "token"])
        return self._buckets[bucket]

    def read_postings(self, latent: int, groups: np.ndarray) -> Postings:
        """`latent`'s postings in these row groups of its bucket (ascending token keys)."""
        table = self.bucket(latent).read(groups, ["latent", "token", "activation"])
        mine = table.column("latent").to_numpy() == latent
        keys = table.column("token").to_numpy()[mine].astype(np.int64)
        return keys, table.column("activation").to_numpy()[mine].astype(np.float32)

    def postings(self, latent: int) -> Postings:
        """Every token key where `latent` fires (ascending, int64) and its activation there (float32)."""
        latent = self.check_latent(latent)
        with self._lock:
            if latent in self._postings:
                self._postings.move_to_end(latent)
                return self._postings[latent]
        entry = self.read_postings(latent, self.bucket(latent).groups(latent))
        with self._lock:
            self._postings[latent] = entry
            if len(self._postings) > POSTINGS_CACHE:
                self._postings.popitem(last=False)
        return entry

    def postings_in(self, latent: int, ranges: Sequence[tuple[int, int]]) -> Postings:
        """`latent`'s postings within token key ranges [lo, hi): only the row groups that can hold
        them are read (a frequent latent's whole list can be millions of postings)."""
        if latent in self._postings:
            return self.postings(latent)
        bucket = self.bucket(latent)
        groups = {int(g) for lo, hi in ranges for g in bucket.groups(latent, (lo, hi - 1))}
        return self.read_postings(latent, np.array(sorted(groups), dtype=np.int64))

    def read_bucket(self, bucket: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One postings bucket read whole: latents, token keys (int64) and activations (float32),
        sorted by (latent, token)."""
        file = self.bucket(bucket * self.header.bucket_latents)
        table = file.read(range(file.file.metadata.num_row_groups), ["latent", "token", "activation"])
        return (
            table.column("latent").to_numpy(),
            table.column("token").to_numpy().astype(np.int64),
            table.column("activation").to_numpy().astype(np.float32),
        )

    def bulk_bucket(self, bucket: int) -> dict[int, Postings]:
        """Every latent's postings in one bucket (latent → keys, activations), read whole; the last
        bucket read stays in memory (one bucket at most)."""
        cached = self._bulk_bucket
        if cached is None or cached[0] != bucket:
            latents, keys, values = self.read_bucket(bucket)
            found, starts = np.unique(latents, return_index=True)
            ends = [*starts[1:].tolist(), len(latents)]
            split = {
                int(k): (keys[a:b], values[a:b]) for k, a, b in zip(found.tolist(), starts.tolist(), ends)
            }
            cached = (bucket, split)
            self._bulk_bucket = cached
        return cached[1]

    # ------------------------------------------------------------------------------- documents
    def doc_tokens(self, doc_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The token ids of these model inputs; an error naming those the docs table lacks."""
        if self._docs is None:
            self._docs = DocsLookup(self.parts(DOCS_DIR))
        found = self._docs.token_ids(doc_ids)
        missing = sorted({int(d) for d in doc_ids} - set(found))
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
            raise self.damaged(f"{DOCS_DIR}/ has no record of model input {shown} (a part file is missing)")
        return found

    def random_tokens(self, n: int, seed: int) -> np.ndarray:
        """`n` indexed token keys drawn uniformly at random (with replacement), ascending."""
        files = self.token_files()
        starts = np.cumsum([0] + [rows for _, rows in files])
        rows = np.sort(np.random.default_rng(seed).integers(0, starts[-1], size=n))
        which = np.searchsorted(starts, rows, side="right") - 1
        keys = []
        for f in np.unique(which):
            column = (
                pq.read_table(files[f][0], columns=["token"], use_threads=False).column("token").to_numpy()
            )
            keys.append(column[rows[which == f] - starts[f]])
        return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


__all__ = ["POSTINGS_CACHE", "TOKENIZER_LOCK", "IndexStorage", "Postings", "sql_path"]
