"""Reading an activation store: random access, shuffled batches, docs in context.

Shards are memory-mapped (one read-only mapping per file, tensors as views into it) and never read
whole, so any row is one page away: the Llama-3 "features from scratch" write-up measured 7 rows/s
when each sampled row meant a `torch.load` of its 32 MB `.pt` file, and moved to HDF5; a mapped
safetensors shard gives the same random access with no extra dependency and no pickle.

Batches come in three orders, all a deterministic function of `seed`, so `start_row` resumes a
training run exactly where it stopped:

- `random`: an exact permutation of all rows per epoch (rows sampled without replacement across
  all shards; int32 indices below 2^31 rows). Each batch's rows are sorted by shard and offset
  for locality, gathered, then put back in their random order.
- `buffer`: for stores too big for random page access. Shards are cut into contiguous chunks,
  the chunks shuffled; consecutive chunks form a window of about `buffer_rows` rows that is read
  sequentially into memory and permuted. Every row still comes exactly once per epoch.
- `none`: in order.

Under DDP every rank walks the same global order and takes its slice of each global batch. A
background thread gathers the next `prefetch` batches (into pinned memory when the target device
is CUDA, then copied with `non_blocking=True`).

This module knows nothing about how the store was written, nor about models or training.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import ConfigError, StoreError
from ..files import file_sha256
from .docs import DocRecord, DocsTable
from .manifest import STATS, Manifest, ShardInfo, merged_stats, read_manifest, read_rank_states
from .moments import RunningStats
from .shardfile import TORCH_TO_SAFETENSORS, as_tensor, map_file, mapped_array
from .shardfile import read_safetensors_header as _read_header

log = logging.getLogger(__name__)

Shuffle = Literal["random", "buffer", "none"]
Verify = Literal["none", "size", "full"]

CHUNK_BYTES = 32 << 20
"""`buffer` mode reads shards in contiguous chunks of about this many bytes."""
CHUNKS_PER_WINDOW = 16
"""A `buffer` window mixes at least this many chunks (from random places of the store)."""
BUFFER_BYTES = 1 << 30
"""Default size of a `buffer` mode window (262,144 rows of bf16 d_model 2048)."""
DOC_TABLE_CACHE = 32
"""Docs tables kept open by `docs`."""


class Batch(NamedTuple):
    """Rows of the store with everything recorded about them."""

    activations: Tensor
    """[n, d_model] in the store dtype."""
    token_ids: Tensor
    """[n] int32 token at each row."""
    doc_ids: Tensor
    """[n] int64 model input each row comes from."""
    positions: Tensor
    """[n] int32 position of each row in its model input."""


class _MappedShard(NamedTuple):
    mapping: mmap.mmap
    activations: Tensor
    token_ids: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray


class _Window(NamedTuple):
    """A `buffer` mode window: rows read into memory and the order they are served in."""

    rows: Tensor
    order: np.ndarray


class _End:
    pass


class _Failed(NamedTuple):
    error: BaseException


class ActivationStore:
    """A read-only view of an activation store folder (see `saescope.store.manifest`)."""

    def __init__(self, path: Path | str, verify: Verify = "size") -> None:
        self.path = Path(path)
        self._manifest = read_manifest(self.path)
        m = self._manifest
        self._dtype: torch.dtype = getattr(torch, m.dtype)
        self._starts = np.zeros(len(m.shards) + 1, dtype=np.int64)
        np.cumsum([s.rows for s in m.shards], out=self._starts[1:])
        self._maps: list[_MappedShard | None] = [None] * len(m.shards)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._doc_tables: OrderedDict[int, DocsTable] = OrderedDict()
        self._doc_index: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        if verify not in ("none", "size", "full"):
            raise ConfigError(f"verify must be none, size or full, got {verify!r}")
        if verify != "none":
            self.verify(verify)

    def __repr__(self) -> str:
        return (
            f"ActivationStore({str(self.path)!r}, rows={self.rows}, d_model={self.d_model}, "
            f"dtype={self._manifest.dtype}, hookpoint={self.hookpoint!r})"
        )

    # ----------------------------------------------------------------------------- properties

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def rows(self) -> int:
        return self._manifest.rows

    def __len__(self) -> int:
        return self._manifest.rows

    @property
    def d_model(self) -> int:
        return self._manifest.d_model

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def hookpoint(self) -> str:
        return self._manifest.hookpoint

    @property
    def model(self) -> str:
        return self._manifest.model

    @property
    def complete(self) -> bool:
        """Whether the capture reached its target (an incomplete store is still readable)."""
        return self._manifest.complete

    @property
    def stats(self) -> RunningStats:
        """Mean, variance and norm statistics of all rows (from `stats.safetensors`)."""
        count = self._manifest.stats.get("count")
        try:
            stats = RunningStats.load(self.path / STATS)
            if stats.count == count and stats.d_model == self.d_model:
                return stats
        except StoreError:
            pass
        # a capture killed between writing manifest.json and stats.safetensors: the rank files
        # hold the exact statistics of what the manifest lists
        states = read_rank_states(self.path)
        listed = {s.path for s in self._manifest.shards}
        if states and {s.path for st in states.values() for s in st.shards} == listed:
            return merged_stats(states, self.d_model)
        raise StoreError(
            f"{self.path / STATS} does not match manifest.json (capture interrupted?); "
            "rerun the capture command to repair it"
        )

    # --------------------------------------------------------------------------- verification

    def verify(self, level: Verify = "full") -> None:
        """Check every shard and docs file: `size` (exists with the recorded size) or `full` (SHA-256)."""
        if level == "none":
            return
        files = [(s.path, s.nbytes, s.sha256) for s in self._manifest.shards]
        files += [(s.docs, s.docs_nbytes, s.docs_sha256) for s in self._manifest.shards]
        for rel, size, _ in files:
            p = self.path / rel
            if not p.is_file():
                raise StoreError(f"shard {rel} of {self.path} is missing")
            actual = p.stat().st_size
            if actual != size:
                raise StoreError(f"shard {rel} is corrupt (size {actual}, manifest says {size})")
        if level != "full":
            return
        total = sum(size for _, size, _ in files)
        with tqdm(total=total, unit="B", unit_scale=True, desc="verifying", leave=False) as bar:
            for rel, _, sha in files:
                if file_sha256(self.path / rel, bar) != sha:
                    raise StoreError(f"shard {rel} is corrupt (sha256 mismatch)")

    # ---------------------------------------------------------------------------- raw access

    def _shard(self, i: int) -> _MappedShard:
        mapped = self._maps[i]
        if mapped is not None:
            return mapped
        with self._lock:
            mapped = self._maps[i]
            if mapped is None:
                mapped = self._map(self._manifest.shards[i])
                self._maps[i] = mapped
        return mapped

    def _map(self, info: ShardInfo) -> _MappedShard:
        path = self.path / info.path
        specs, _ = _read_header(path)
        want = {
            "activations": (TORCH_TO_SAFETENSORS[self._dtype], (info.rows, self.d_model)),
            "token_ids": ("I32", (info.rows,)),
            "doc_ids": ("I64", (info.rows,)),
            "positions": ("I32", (info.rows,)),
        }
        for name, (dtype, shape) in want.items():
            spec = specs.get(name)
            if spec is None or spec.dtype != dtype or spec.shape != shape:
                got = "missing" if spec is None else f"{spec.dtype} {list(spec.shape)}"
                raise StoreError(
                    f"shard {info.path} is corrupt ({name}: {got}, expected {dtype} {list(shape)})"
                )
        mapping = map_file(path)
        acts = specs["activations"]
        return _MappedShard(
            mapping=mapping,
            activations=as_tensor(mapped_array(mapping, acts), acts.dtype),
            token_ids=mapped_array(mapping, specs["token_ids"]),
            doc_ids=mapped_array(mapping, specs["doc_ids"]),
            positions=mapped_array(mapping, specs["positions"]),
        )

    def _advise(self, advice: int) -> None:
        """Tell the kernel how the mappings will be read (random: no readahead)."""
        for i in range(len(self._maps)):
            try:
                self._shard(i).mapping.madvise(advice)
            except (AttributeError, OSError):  # pragma: no cover - madvise is missing on some platforms
                return

    def _runs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
        """Sort global row ids; return (order, sorted local ids, [(shard, a, b)] runs of the sorted ids)."""
        if rows.size and (rows.min() < 0 or rows.max() >= self.rows):
            raise IndexError(f"row ids must be in [0, {self.rows}), got {rows.min()}..{rows.max()}")
        order = np.argsort(rows, kind="stable")
        srt = rows[order].astype(np.int64)
        shard = np.searchsorted(self._starts, srt, side="right") - 1
        cuts = np.flatnonzero(shard[1:] != shard[:-1]) + 1
        bounds = np.concatenate([[0], cuts, [len(srt)]]).astype(np.int64)
        runs = [(int(shard[a]), int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
        local = srt - self._starts[shard]
        return order, local, runs

    def _gather(self, rows: np.ndarray, out: Tensor) -> Tensor:
        """Activations of `rows` into `out [len(rows), d]`, via a shard/offset-sorted read."""
        order, local, runs = self._runs(rows)
        srt = self._scratch(len(rows))
        local_t = torch.from_numpy(local)
        for s, a, b in runs:
            torch.index_select(self._shard(s).activations, 0, local_t[a:b], out=srt[a:b])
        # back to the asked order: a gather by the inverse permutation (index_copy_ is 8× slower)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return torch.index_select(srt, 0, torch.from_numpy(inverse), out=out)

    def _scratch(self, n: int) -> Tensor:
        """A per-thread buffer of at least n rows, reused (fresh memory costs a page fault per 4 KiB)."""
        buf: Tensor | None = getattr(self._local, "scratch", None)
        if buf is None or buf.shape[0] < n:
            buf = torch.empty((n, self.d_model), dtype=self._dtype)
            self._local.scratch = buf
        return buf[:n]

    def _read_range(self, a: int, b: int, out: Tensor) -> Tensor:
        """Rows [a, b) in order into `out` (contiguous slices of the shards)."""
        k = 0
        s = int(np.searchsorted(self._starts, a, side="right")) - 1
        while a < b:
            lo = a - int(self._starts[s])
            hi = min(b, int(self._starts[s + 1])) - int(self._starts[s])
            out[k : k + hi - lo].copy_(self._shard(s).activations[lo:hi])
            k += hi - lo
            a += hi - lo
            s += 1
        return out

    def get(self, rows: Tensor | np.ndarray | Sequence[int]) -> Batch:
        """Rows by global id (any order, repeats allowed): activations and ids."""
        idx = _as_index(rows)
        acts = self._gather(idx, torch.empty((len(idx), self.d_model), dtype=self._dtype))
        token_ids = np.empty(len(idx), dtype=np.int32)
        doc_ids = np.empty(len(idx), dtype=np.int64)
        positions = np.empty(len(idx), dtype=np.int32)
        order, local, runs = self._runs(idx)
        for s, a, b in runs:
            sh, where, loc = self._shard(s), order[a:b], local[a:b]
            token_ids[where] = sh.token_ids[loc]
            doc_ids[where] = sh.doc_ids[loc]
            positions[where] = sh.positions[loc]
        return Batch(
            acts, torch.from_numpy(token_ids), torch.from_numpy(doc_ids), torch.from_numpy(positions)
        )

    def activations(self, rows: Tensor | np.ndarray | Sequence[int]) -> Tensor:
        """Activations of rows by global id, `[len(rows), d_model]` in the store dtype."""
        idx = _as_index(rows)
        return self._gather(idx, torch.empty((len(idx), self.d_model), dtype=self._dtype))

    # ------------------------------------------------------------------------------- batches

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: Shuffle = "random",
        seed: int = 0,
        start_row: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        prefetch: int = 2,
        epochs: int | None = 1,
        buffer_rows: int | None = None,
    ) -> Generator[Tensor, None, None]:
        """Activation batches `[batch_size // world_size, d_model]` in a seeded order.

        `start_row` skips that many rows of the global stream (`steps × batch_size` when
        resuming a training run), `epochs` counts from row 0 of the stream (None: endless), and
        epoch `e` uses its own order derived from `(seed, e)`. Under DDP rank `r` gets rows
        `[r*b, (r+1)*b)` of each global batch, `b = batch_size // world_size` (of a last partial
        batch, when `drop_last` is off, an equal share). `device`/`dtype` place and cast each
        batch (cast after the transfer on CUDA, so the copy moves the store dtype).
        """
        _check_batching(shuffle, batch_size, start_row, rank, world_size, prefetch, epochs)
        target = torch.device(device) if device is not None else torch.device("cpu")
        pin = target.type == "cuda"
        cast = dtype if dtype is not None and dtype != self._dtype else None
        self._advise(mmap.MADV_RANDOM if shuffle == "random" else mmap.MADV_NORMAL)
        if buffer_rows is None:
            buffer_rows = max(1, BUFFER_BYTES // (self.d_model * self._dtype.itemsize))
        plan = self._plan(batch_size, start_row, rank, world_size, drop_last, epochs)
        if shuffle == "random":
            produce = self._random_batches(plan, seed, pin)
        elif shuffle == "buffer":
            produce = self._buffer_batches(plan, seed, pin, buffer_rows)
        else:
            produce = self._ordered_batches(plan, pin)
        if cast is not None and not pin:
            produce = (b.to(cast) for b in produce)
        source = _prefetched(produce, prefetch) if prefetch > 0 else produce
        close: Callable[[], None] | None = getattr(source, "close", None)
        try:
            for batch in source:
                yield _placed(batch, target, pin, cast)
        finally:
            if close is not None:
                close()

    def _plan(
        self, batch_size: int, start_row: int, rank: int, world_size: int, drop_last: bool, epochs: int | None
    ) -> Iterator[tuple[int, int, int]]:
        """This rank's batches as `(epoch, a, b)`: positions [a, b) of epoch `epoch`'s order."""
        n = self.rows
        per_epoch = (n // batch_size) * batch_size if drop_last else n
        if per_epoch == 0:
            return
        epoch, p = divmod(start_row, per_epoch)
        while epochs is None or epoch < epochs:
            while p < n and (p + batch_size <= n or not drop_last):
                size = min(batch_size, n - p)
                yield epoch, p + rank * size // world_size, p + (rank + 1) * size // world_size
                p += size
            epoch, p = epoch + 1, 0

    def _alloc(self, n: int, pin: bool) -> Tensor:
        return torch.empty((n, self.d_model), dtype=self._dtype, pin_memory=pin)

    def _random_batches(self, plan: Iterator[tuple[int, int, int]], seed: int, pin: bool) -> Iterator[Tensor]:
        cached: tuple[int, np.ndarray] | None = None
        for epoch, a, b in plan:
            if cached is None or cached[0] != epoch:
                cached = (epoch, self.permutation(seed, epoch))
            yield self._gather(cached[1][a:b], self._alloc(b - a, pin))

    def permutation(self, seed: int, epoch: int) -> np.ndarray:
        """The `random` order of epoch `epoch`: a permutation of all row ids (int32 below 2^31 rows)."""
        index_dtype = np.int32 if self.rows < 2**31 else np.int64
        perm = np.arange(self.rows, dtype=index_dtype)
        np.random.default_rng([seed, epoch]).shuffle(perm)
        return perm

    def _ordered_batches(self, plan: Iterator[tuple[int, int, int]], pin: bool) -> Iterator[Tensor]:
        for _epoch, a, b in plan:
            yield self._read_range(a, b, self._alloc(b - a, pin))

    def buffer_windows(self, seed: int, epoch: int, buffer_rows: int) -> list[list[tuple[int, int]]]:
        """The `buffer` order of an epoch, part 1: windows as lists of `(global start, rows)` chunks.

        Chunks are contiguous pieces of one shard (at most CHUNK_BYTES, and small enough that a
        window holds CHUNKS_PER_WINDOW of them); their order is shuffled
        with `(seed, epoch)`, and consecutive chunks are grouped into windows of `buffer_rows`.
        Within a window, chunks are listed in file order (sequential reads).
        """
        row_bytes = self.d_model * self._dtype.itemsize
        chunk_rows = max(1, min(buffer_rows // CHUNKS_PER_WINDOW, CHUNK_BYTES // row_bytes))
        chunks = [
            (int(self._starts[s]) + a, min(chunk_rows, info.rows - a))
            for s, info in enumerate(self._manifest.shards)
            for a in range(0, info.rows, chunk_rows)
        ]
        order = np.random.default_rng([seed, epoch, 1]).permutation(len(chunks))
        per_window = max(1, buffer_rows // chunk_rows)
        return [
            sorted(chunks[int(i)] for i in order[w : w + per_window])
            for w in range(0, len(chunks), per_window)
        ]

    @staticmethod
    def window_order(seed: int, epoch: int, window: int, rows: int) -> np.ndarray:
        """The `buffer` order of an epoch, part 2: the permutation of one window's rows."""
        perm = np.arange(rows, dtype=np.int32)
        np.random.default_rng([seed, epoch, 2, window]).shuffle(perm)
        return perm

    def buffer_order(self, seed: int, epoch: int, buffer_rows: int) -> np.ndarray:
        """All row ids of an epoch in `buffer` order (for tests and analysis; batches never build it)."""
        parts = []
        for w, chunks in enumerate(self.buffer_windows(seed, epoch, buffer_rows)):
            ids = np.concatenate([np.arange(a, a + n) for a, n in chunks])
            parts.append(ids[self.window_order(seed, epoch, w, len(ids))])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _load_window(
        self, seed: int, epoch: int, w: int, chunks: list[tuple[int, int]], spare: Tensor | None
    ) -> _Window:
        total = sum(n for _a, n in chunks)
        if spare is not None and spare.shape[0] >= total:
            rows = spare[:total]  # a dropped window's memory: no page faults, no allocation
        else:
            rows = torch.empty((total, self.d_model), dtype=self._dtype)
        k = 0
        for a, n in chunks:
            self._read_range(a, a + n, rows[k : k + n])
            k += n
        return _Window(rows, self.window_order(seed, epoch, w, total))

    def _buffer_batches(
        self, plan: Iterator[tuple[int, int, int]], seed: int, pin: bool, buffer_rows: int
    ) -> Iterator[Tensor]:
        windows: list[list[tuple[int, int]]] = []
        starts = np.zeros(1, dtype=np.int64)
        epoch_now = -1
        loaded: dict[int, Future[_Window]] = {}
        with ThreadPoolExecutor(1, thread_name_prefix="saescope-store-window") as pool:
            spares: list[Tensor] = []

            def window(w: int) -> _Window:
                # keep the window in use and the next one (read ahead in the background); the
                # memory of a dropped window is reused (batches are copies, nothing else holds it)
                for old in [k for k in loaded if k < w]:
                    spares.append(loaded.pop(old).result().rows)
                for k in (w, w + 1):
                    if k < len(windows) and k not in loaded:
                        spare = spares.pop() if spares else None
                        loaded[k] = pool.submit(self._load_window, seed, epoch_now, k, windows[k], spare)
                return loaded[w].result()

            for epoch, a, b in plan:
                if epoch != epoch_now:
                    epoch_now = epoch
                    spares.extend(f.result().rows for f in loaded.values())
                    loaded.clear()
                    windows = self.buffer_windows(seed, epoch, buffer_rows)
                    starts = np.zeros(len(windows) + 1, dtype=np.int64)
                    np.cumsum([sum(n for _s, n in c) for c in windows], out=starts[1:])
                out = self._alloc(b - a, pin)
                k, p = 0, a
                while p < b:
                    w = int(np.searchsorted(starts, p, side="right")) - 1
                    hi = min(b, int(starts[w + 1]))
                    win = window(w)
                    idx = torch.from_numpy(win.order[p - starts[w] : hi - starts[w]].astype(np.int64))
                    torch.index_select(win.rows, 0, idx, out=out[k : k + hi - p])
                    k += hi - p
                    p = hi
                yield out

    # ---------------------------------------------------------------------------------- docs

    def docs(self, doc_ids: Sequence[int] | np.ndarray | Tensor) -> list[DocRecord]:
        """The model inputs with these ids (token ids, text, source), in the order asked."""
        ids = [int(d) for d in (doc_ids.tolist() if isinstance(doc_ids, (Tensor, np.ndarray)) else doc_ids)]
        if self._doc_index is None:
            index: dict[int, list[tuple[int, int, int]]] = {}
            for i, s in enumerate(self._manifest.shards):
                index.setdefault(s.rank, []).append((s.first_doc, s.last_doc, i))
            self._doc_index = {}
            for r, entries in index.items():
                entries.sort()
                arr = np.array(entries, dtype=np.int64)
                self._doc_index[r] = (arr[:, 0], arr[:, 1], arr[:, 2])
        out = []
        for d in ids:
            record = None
            for firsts, lasts, shard in self._doc_index.values():
                k = int(np.searchsorted(firsts, d, side="right")) - 1
                if k >= 0 and lasts[k] >= d:
                    record = self._doc_in(int(shard[k]), d)
                    if record is not None:
                        break
            if record is None:
                raise StoreError(f"doc {d} is not in the store at {self.path}")
            out.append(record)
        return out

    def _doc_in(self, shard: int, doc_id: int) -> DocRecord | None:
        if shard in self._doc_tables:
            self._doc_tables.move_to_end(shard)
        else:
            self._doc_tables[shard] = DocsTable.read(self.path / self._manifest.shards[shard].docs)
            if len(self._doc_tables) > DOC_TABLE_CACHE:
                self._doc_tables.popitem(last=False)
        return self._doc_tables[shard].get(doc_id)


def _as_index(rows: Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    if isinstance(rows, Tensor):
        rows = rows.detach().cpu().numpy()
    idx = np.asarray(rows)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise IndexError(f"row ids must be a 1-d integer array, got shape {idx.shape} of {idx.dtype}")
    return idx.astype(np.int64, copy=False)


def _prefetched(source: Iterator[Tensor], depth: int) -> Generator[Tensor, None, None]:
    """Run `source` in a background thread, `depth` items ahead; errors surface in the consumer."""
    q: queue.Queue[Tensor | _End | _Failed] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Tensor | _End | _Failed) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_End())
        except BaseException as e:
            put(_Failed(e))
        finally:
            close: Callable[[], None] | None = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="saescope-store-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _check_batching(
    shuffle: str,
    batch_size: int,
    start_row: int,
    rank: int,
    world_size: int,
    prefetch: int,
    epochs: int | None,
) -> None:
    """One clear error for a batching request that cannot be served."""
    if shuffle not in ("random", "buffer", "none"):
        raise ConfigError(f"shuffle must be random, buffer or none, got {shuffle!r}")
    if batch_size <= 0 or world_size <= 0 or batch_size % world_size:
        raise ConfigError(f"batch size {batch_size} must be a positive multiple of world size {world_size}")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} out of range for world size {world_size}")
    if start_row < 0 or prefetch < 0 or (epochs is not None and epochs < 0):
        raise ConfigError("start_row, prefetch and epochs must be >= 0")


def _placed(batch: Tensor, target: torch.device, pin: bool, cast: torch.dtype | None) -> Tensor:
    """`batch` on `target`: a pinned batch moves without blocking and is cast after the transfer
    (a CPU batch was cast where it was produced)."""
    if pin:
        batch = batch.to(target, non_blocking=True)
        return batch.to(cast) if cast is not None else batch
    return batch.to(target) if target.type != "cpu" else batch
