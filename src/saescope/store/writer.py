"""Writing an activation store: resumable, crash-safe, overlapped with the caller's compute.

The caller (capture) hands `StoreWriter.add` the rows of whole model inputs ("docs"), grouped by
doc in increasing doc id order. `add` only plans and starts copies: it drops rows of docs already
committed (so a resumed capture may replay its last batch) and rows past the target, decides
where shards are cut (at doc boundaries, once a shard holds `shard_rows`), casts to the store
dtype on the source device and starts a non-blocking copy into pinned host memory when the
source is on CUDA (whose statistics are reduced on the GPU too). A background thread waits for
the copy and writes each shard and its docs table under temporary names (SHA-256 computed in
parallel with the write); a second one commits them in order (fsync, rename, then the rank
file, then the manifest), so the next shard is written while the previous one is flushed to
disk. Running statistics are merged at commit, so they always describe exactly the committed
rows and a resume never counts a row twice.

A capture killed at any moment leaves committed shards and at most some temporary or
uncommitted files, which the next writer on the folder deletes (logging each) before resuming
at `next_doc`. Earlier pipelines lost hours to formats that could not be sampled from (one .pt
file per chunk, in the Llama-3 "features from scratch" write-up) or resumed (one preallocated
memmap, in a "Do I Know This Entity?" replication); this store avoids both.

This module knows nothing about models, tokenizers or corpora, nor about reading the store.
"""

from __future__ import annotations

import errno
import json
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import SaescopeError, StoreError
from ..files import TempFile, is_temp_name, json_roundtrip, publish, write_temp
from .docs import DocRecord, docs_parquet
from .manifest import (
    DOCS_DIR,
    DTYPES,
    FORMAT,
    MANIFEST,
    RANKS_DIR,
    SHARDS_DIR,
    STATS,
    RankState,
    ShardInfo,
    StoreHeader,
    docs_path,
    first_difference,
    merge_manifest,
    read_manifest,
    read_rank_states,
    shard_path,
    write_rank_state,
)
from .moments import RunningStats, batch_moments
from .shardfile import TORCH_TO_SAFETENSORS, array_bytes, safetensors_chunks, tensor_bytes

log = logging.getLogger(__name__)

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass
class _Rows:
    """Rows of one segment on their way to the writer thread (a segment never spans two shards)."""

    activations: Tensor
    token_ids: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray
    docs: list[DocRecord]
    moments: Tensor | None
    """`batch_moments` of the rows, already computed on the source device (CUDA), or None."""
    ready: Any
    """CUDA event after which `activations` and `moments` hold their values, or None."""
    cut_after: bool
    """The shard ends after these rows."""
    nbytes: int


class _Flush:
    """Commit the rows received so far as a shard."""

    nbytes = 0


class _Close:
    """Commit what is left and record whether the target is reached."""

    nbytes = 0


class _Finish:
    """Record whether the target is reached (after every shard before it is committed)."""


@dataclass
class _Shard:
    """A shard and its docs table written under temporary names, waiting to be committed."""

    docs: TempFile
    shard: TempFile
    rows: int
    first_doc: int
    last_doc: int
    index: int
    stats: RunningStats
    """Statistics of exactly these rows."""


class _Skipped(Exception):
    """An item dropped because an earlier one failed."""


_STOP = object()


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _ids(values: Any, dtype: type[np.generic], name: str) -> np.ndarray:
    """A private 1-d numpy copy of ids given as a tensor (any device), array or sequence."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    out = np.array(values, dtype=dtype, copy=True)
    if out.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {out.shape}")
    return out


class StoreWriter:
    """Writes one rank's rows of an activation store; resumes and extends an existing one.

    Use as a context manager: `close` on success; on an exception, `abort` (complete shards
    still queued are written, the open one is dropped and recomputed by the resumed capture).
    Under torchrun each rank opens its own writer on the same folder with its `rank`; rank 0
    calls `merge_manifest(out)` after a barrier at the end.
    """

    def __init__(
        self,
        out: Path | str,
        *,
        model: str,
        revision: str | None,
        hookpoint: str,
        hookpoint_alias: str,
        d_model: int,
        dtype: str,
        capture: dict[str, Any],
        identity: dict[str, Any],
        rank: int = 0,
        world_size: int = 1,
        shard_rows: int,
        target_rows: int,
        max_queue_bytes: int = 1 << 30,
    ) -> None:
        if dtype not in DTYPES:
            raise StoreError(f"unknown store dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        if d_model <= 0 or shard_rows <= 0 or target_rows < 0 or max_queue_bytes <= 0:
            raise ValueError("d_model, shard_rows, max_queue_bytes must be positive and target_rows >= 0")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.out = Path(out)
        self.rank = rank
        self.world_size = world_size
        self.d_model = d_model
        self.dtype: torch.dtype = getattr(torch, dtype)
        self.shard_rows = shard_rows
        self.target_rows = target_rows
        self._max_queue_bytes = max_queue_bytes

        defining = {
            "model": model,
            "revision": revision,
            "hookpoint": hookpoint,
            "d_model": d_model,
            "dtype": dtype,
        }
        ident = json_roundtrip(identity)
        for key, value in defining.items():
            if key in ident and ident[key] != value:
                raise ValueError(f"identity[{key!r}] = {ident[key]!r} contradicts {key}={value!r}")
        self.header = StoreHeader(
            model=model,
            revision=revision,
            hookpoint=hookpoint,
            hookpoint_alias=hookpoint_alias,
            d_model=d_model,
            dtype=dtype,
            world_size=world_size,
            capture=json_roundtrip(capture),
            identity={**defining, **ident},
        )
        state = self._open()
        # committed state: written by the committer thread only, read by the caller
        self._state = state
        self._stats = state.running_stats()
        # the shard being filled: the rows thread's
        self._pending: list[_Rows] = []
        self._pending_stats = RunningStats(d_model)
        # planning: the caller's
        self._resume_doc = state.next_doc
        self._accepted = state.rows
        self._open_rows = 0
        self._open_doc: int | None = None
        self._next_index = len(state.shards)
        self._closed = False
        self._error: SaescopeError | None = None
        self._error_lock = threading.Lock()
        self._where = threading.local()  # the file each thread is writing, for error messages
        self._queue: queue.Queue[Any] = queue.Queue()
        self._commits: queue.Queue[Any] = queue.Queue(maxsize=2)  # shards written, not yet committed
        self._cv = threading.Condition()
        self._inflight = 0
        self._thread = threading.Thread(target=self._run, name=f"saescope-store-rows-r{rank}", daemon=True)
        self._committer = threading.Thread(
            target=self._run_commits, name=f"saescope-store-commit-r{rank}", daemon=True
        )
        self._thread.start()
        self._committer.start()

    # ----------------------------------------------------------------------------------- opening

    def _open(self) -> RankState:
        out = self.out
        if out.exists() and not out.is_dir():
            raise StoreError(f"{out} is a file, not an activation store folder; use another --out")
        if out.is_dir() and any(out.iterdir()):
            if not ((out / MANIFEST).exists() or (out / RANKS_DIR).is_dir()):
                raise StoreError(
                    f"{out} exists, is not empty and is not an activation store; use another --out"
                )
            # everything is checked before anything is touched: a foreign store is never modified
            headers: list[StoreHeader] = []
            manifest = read_manifest(out) if (out / MANIFEST).exists() else None
            if manifest is not None:
                headers.append(manifest.header)
            states = read_rank_states(out)
            headers.extend(s.header for s in states.values())
            for h in headers:
                self._check_identity(h)
            state = states.get(self.rank)
            if state is None and manifest is not None and any(s.rank == self.rank for s in manifest.shards):
                raise StoreError(
                    f"{out} lists shards of rank {self.rank} but has no {RANKS_DIR}/rank-{self.rank}.json; "
                    "it cannot be extended — use another --out"
                )
            if state is not None:
                self._check_committed_files(state)
        else:
            state = None
        # ranks/ first: a folder holding anything of ours is recognisable as a store
        for sub in (RANKS_DIR, SHARDS_DIR, DOCS_DIR):
            (out / sub).mkdir(parents=True, exist_ok=True)
        if state is None:
            state = RankState(header=self.header, rank=self.rank)
        else:
            self._remove_leftovers(state)
            log.info(
                "resuming activation store %s (rank %d): %d rows committed in %d shards, next doc %d",
                out,
                self.rank,
                state.rows,
                len(state.shards),
                state.next_doc,
            )
        state = replace(
            state, header=self.header, target_rows=self.target_rows, complete=state.rows >= self.target_rows
        )
        write_rank_state(out, state)
        if self.rank == 0:
            merge_manifest(out)
        return state

    def _check_identity(self, there: StoreHeader) -> None:
        if there.world_size != self.world_size:
            diff: tuple[str, Any, Any] | None = ("world_size", there.world_size, self.world_size)
        else:
            diff = first_difference(there.identity, self.header.identity)
        if diff is not None:
            key, a, b = diff
            raise StoreError(
                f"{self.out} holds a store made with other settings "
                f"({key}: {_show(a)} there, {_show(b)} here); use another --out"
            )

    def _check_committed_files(self, state: RankState) -> None:
        for shard in state.shards:
            for rel, size in ((shard.path, shard.nbytes), (shard.docs, shard.docs_nbytes)):
                path = self.out / rel
                if not path.is_file() or path.stat().st_size != size:
                    listed = f"{RANKS_DIR}/rank-{self.rank}.json"
                    raise StoreError(f"{path} is listed in {listed} but is missing or truncated")

    def _remove_leftovers(self, state: RankState) -> None:
        """Delete this rank's temporary files and files its rank file does not list."""
        keep = {s.path for s in state.shards} | {s.docs for s in state.shards}
        mine = {
            SHARDS_DIR: f"shard-r{self.rank}-",
            DOCS_DIR: f"docs-r{self.rank}-",
            RANKS_DIR: f"rank-{self.rank}.json",
        }
        for sub, prefix in mine.items():
            for path in sorted((self.out / sub).iterdir()):
                name = path.name
                ours = name.startswith(prefix) or (is_temp_name(name) and name[1:].startswith(prefix))
                if ours and (is_temp_name(name) or (sub != RANKS_DIR and f"{sub}/{name}" not in keep)):
                    log.warning("removing %s (left by an interrupted capture)", path)
                    path.unlink()
        if self.rank == 0:
            for path in sorted(self.out.iterdir()):
                if is_temp_name(path.name) and path.name[1:].startswith((MANIFEST, STATS)):
                    log.warning("removing %s (left by an interrupted capture)", path)
                    path.unlink()

    # ------------------------------------------------------------------------------- properties

    @property
    def next_doc(self) -> int:
        """First doc id this rank has not committed: where a resumed capture starts."""
        return self._state.next_doc

    @property
    def rows_committed(self) -> int:
        """Rows of this rank that are durably in the store."""
        return self._state.rows

    @property
    def rows_accepted(self) -> int:
        """Rows committed plus rows accepted by `add` and not yet committed."""
        return self._accepted

    @property
    def done(self) -> bool:
        """This rank's target is reached (committed or on its way): further rows are dropped."""
        return self._accepted >= self.target_rows

    @property
    def stats(self) -> RunningStats:
        """Statistics of this rank's committed rows (a copy)."""
        return self._stats.copy()

    # -------------------------------------------------------------------------------- adding

    def add(
        self,
        activations: Tensor,
        token_ids: Tensor | np.ndarray | Sequence[int],
        doc_ids: Tensor | np.ndarray | Sequence[int],
        positions: Tensor | np.ndarray | Sequence[int],
        docs: Sequence[DocRecord],
    ) -> int:
        """Queue rows `activations [n, d_model]` (any device and dtype) for writing; returns rows kept.

        Rows must be grouped by doc in increasing doc id order (also across calls); `docs` holds a
        `DocRecord` for every doc whose rows start in this call. Rows of docs below the resume
        point and rows beyond `target_rows` are dropped (the last doc may be truncated). Ids are
        best passed on the CPU (ids on CUDA cost a synchronisation); activations on CUDA are
        copied without one.
        """
        self._raise_if_failed()
        if self._closed:
            raise ValueError("add() after close()")
        doc, tok, pos = self._checked_ids(activations, token_ids, doc_ids, positions)
        n = activations.shape[0]
        if n == 0:
            return 0
        start = int(np.searchsorted(doc, self._resume_doc, side="left"))
        end = min(n, start + max(0, self.target_rows - self._accepted))
        if start >= end:
            return 0
        if self._open_doc is not None and doc[start] < self._open_doc:
            raise ValueError(f"doc {doc[start]} arrived after doc {self._open_doc}: doc ids must increase")

        bounds = np.flatnonzero(doc[start + 1 : end] != doc[start : end - 1]) + start + 1  # doc starts
        segments, flush_first = self._plan(doc, start, end, bounds)
        seg_docs = self._docs_per_segment(doc, np.concatenate([[start], bounds]), segments, docs)

        nbytes = (end - start) * self.d_model * self.dtype.itemsize
        self._acquire(nbytes)
        kept = activations.detach()[start:end]
        moments: list[Tensor | None] = [None] * len(segments)
        ready = None
        if kept.is_cuda:
            src = kept.to(self.dtype)
            host = torch.empty(src.shape, dtype=self.dtype, pin_memory=True)
            host.copy_(src, non_blocking=True)
            # statistics of the stored (rounded) values, reduced on the GPU so the host only merges
            packed = torch.stack([batch_moments(src[a - start : b - start]) for a, b, _c in segments])
            packed_host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
            packed_host.copy_(packed, non_blocking=True)
            moments = list(packed_host.unbind(0))
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(kept.device))
        elif kept.device.type == "cpu":
            host = kept.to(dtype=self.dtype, copy=True)  # the caller may reuse its buffer
        else:
            host = kept.to("cpu", self.dtype)

        if flush_first:
            self._queue.put(_Flush())
        for k, (a, b, cut) in enumerate(segments):
            self._queue.put(
                _Rows(
                    activations=host[a - start : b - start],
                    token_ids=tok[a:b],
                    doc_ids=doc[a:b],
                    positions=pos[a:b],
                    docs=seg_docs[k],
                    moments=moments[k],
                    ready=ready,
                    cut_after=cut,
                    nbytes=nbytes if k == len(segments) - 1 else 0,
                )
            )
        self._accepted += end - start
        self._open_doc = int(doc[end - 1])
        return end - start

    def _checked_ids(
        self,
        activations: Tensor,
        token_ids: Tensor | np.ndarray | Sequence[int],
        doc_ids: Tensor | np.ndarray | Sequence[int],
        positions: Tensor | np.ndarray | Sequence[int],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(doc_ids, token_ids, positions)` as arrays, after checking they fit `activations`."""
        if activations.ndim != 2 or activations.shape[1] != self.d_model:
            shape = tuple(activations.shape)
            raise StoreError(f"activations of shape {shape} do not fit this store (d_model {self.d_model})")
        doc = _ids(doc_ids, np.int64, "doc_ids")
        tok = _ids(token_ids, np.int32, "token_ids")
        pos = _ids(positions, np.int32, "positions")
        n = activations.shape[0]
        if not len(doc) == len(tok) == len(pos) == n:
            raise ValueError(
                f"{n} activation rows but {len(tok)} token_ids, {len(doc)} doc_ids, {len(pos)} positions"
            )
        if np.any(doc[1:] < doc[:-1]):
            raise ValueError("rows must arrive grouped by doc in increasing doc_id order")
        return doc, tok, pos

    def _docs_per_segment(
        self,
        doc: np.ndarray,
        firsts: np.ndarray,
        segments: list[tuple[int, int, bool]],
        docs: Sequence[DocRecord],
    ) -> list[list[DocRecord]]:
        """For each segment, the records of the docs whose rows start in it (`firsts`: the first
        row of each doc among the rows kept)."""
        records = {int(r.doc_id): r for r in docs}
        starts = [a for a, _b, _c in segments]
        seg_docs: list[list[DocRecord]] = [[] for _ in segments]
        for i in firsts:
            d = int(doc[i])
            if d == self._open_doc:
                continue  # continues a doc whose record came with an earlier call
            if d not in records:
                raise ValueError(f"no DocRecord given for doc {d}")
            seg_docs[int(np.searchsorted(starts, i, side="right")) - 1].append(records[d])
        return seg_docs

    def _plan(
        self, doc: np.ndarray, start: int, end: int, bounds: np.ndarray
    ) -> tuple[list[tuple[int, int, bool]], bool]:
        """Split rows [start, end) into segments (`bounds`: the rows after `start` where a new doc
        begins); a segment with `cut` ends a shard.

        A shard is cut at the first doc boundary once it holds `shard_rows` rows, so a doc never
        spans two shards and a shard exceeds `shard_rows` by less than one doc. The boolean says
        whether the shard already open must be cut before these rows (their first doc is new).
        """
        flush_first = False
        open_rows = self._open_rows
        if open_rows >= self.shard_rows and self._open_doc is not None and doc[start] != self._open_doc:
            flush_first = True
            open_rows = 0
        segments: list[tuple[int, int, bool]] = []
        a = start
        while True:
            k = int(np.searchsorted(bounds, a + self.shard_rows - open_rows, side="left"))
            if k == len(bounds):
                break
            b = int(bounds[k])
            segments.append((a, b, True))
            open_rows = 0
            a = b
        segments.append((a, end, False))
        self._open_rows = open_rows + (end - a)
        return segments, flush_first

    def _acquire(self, nbytes: int) -> None:
        """Wait until the rows in flight leave room for `nbytes` more (memory stays bounded)."""
        with self._cv:
            while (
                self._inflight > 0 and self._inflight + nbytes > self._max_queue_bytes and self._error is None
            ):
                self._cv.wait()
            self._inflight += nbytes
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------------ rows thread
    # Builds shards from the queued rows and writes them under temporary names (hashing while
    # writing), then hands them to the committer, so the next shard is written while the
    # previous one is fsynced and committed.

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            try:
                if self._error is None:
                    self._handle(item)
            except BaseException as e:
                self._pending, self._pending_stats = [], RunningStats(self.d_model)
                # let the committer finish what it holds, so the error counts every stored row
                drained = threading.Event()
                self._commits.put(drained)
                drained.wait()
                self._fail(e)
            finally:
                with self._cv:
                    self._inflight -= item.nbytes
                    self._cv.notify_all()
        self._commits.put(_STOP)

    def _handle(self, item: _Rows | _Flush | _Close) -> None:
        if isinstance(item, _Rows):
            if item.ready is not None:
                item.ready.synchronize()
            self._pending_stats.merge_moments(
                item.moments if item.moments is not None else batch_moments(item.activations)
            )
            self._pending.append(item)
            if item.cut_after:
                self._write_shard()
        elif isinstance(item, _Flush):
            if self._pending:
                self._write_shard()
        else:
            if self._pending:
                self._write_shard()
            self._commits.put(_Finish())

    def _write_shard(self) -> None:
        """Write the pending rows as the next shard and its docs table, under temporary names."""
        rank, index = self.rank, self._next_index
        rows = self._pending
        doc_ids = np.concatenate([r.doc_ids for r in rows])
        n = len(doc_ids)
        self._where.path = self.out / docs_path(rank, index)
        docs = write_temp(self._where.path, [docs_parquet([d for r in rows for d in r.docs])])
        try:
            self._where.path = self.out / shard_path(rank, index)
            tensors = [
                (
                    "activations",
                    TORCH_TO_SAFETENSORS[self.dtype],
                    (n, self.d_model),
                    [tensor_bytes(r.activations) for r in rows],
                ),
                ("doc_ids", "I64", (n,), [array_bytes(doc_ids)]),
                ("positions", "I32", (n,), [array_bytes(r.positions) for r in rows]),
                ("token_ids", "I32", (n,), [array_bytes(r.token_ids) for r in rows]),
            ]
            shard = write_temp(self._where.path, safetensors_chunks(tensors, {"format": FORMAT}))
        except BaseException:
            docs.tmp.unlink(missing_ok=True)
            raise
        self._commits.put(
            _Shard(docs, shard, n, int(doc_ids[0]), int(doc_ids[-1]), index, self._pending_stats)
        )
        self._next_index += 1
        self._pending, self._pending_stats = [], RunningStats(self.d_model)

    # ------------------------------------------------------------------------ committer thread
    # Commits shards in order: fsync + rename (shard and docs), then the rank file (the commit
    # point), then the manifest. Nothing refers to a shard before it is durable.

    def _run_commits(self) -> None:
        while True:
            item = self._commits.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                if self._error is not None:
                    raise _Skipped
                if isinstance(item, _Shard):
                    self._commit(item)
                else:
                    self._finish()
            except BaseException as e:
                if isinstance(item, _Shard):
                    for t in (item.docs, item.shard):
                        t.tmp.unlink(missing_ok=True)
                if not isinstance(e, _Skipped):
                    self._fail(e)

    def _commit(self, item: _Shard) -> None:
        state, rank = self._state, self.rank
        self._where.path = item.shard.final
        docs_file, shard_file = publish([item.docs, item.shard])
        try:
            info = ShardInfo(
                path=shard_path(rank, item.index),
                rows=item.rows,
                sha256=shard_file.sha256,
                nbytes=shard_file.size,
                docs=docs_path(rank, item.index),
                docs_sha256=docs_file.sha256,
                docs_nbytes=docs_file.size,
                first_doc=item.first_doc,
                last_doc=item.last_doc,
                rank=rank,
                index=item.index,
            )
            stats = self._stats.copy().merge(item.stats)
            new_state = replace(
                state,
                shards=(*state.shards, info),
                rows=state.rows + item.rows,
                next_doc=item.last_doc + 1,
                stats=stats.to_dict(),
                complete=state.rows + item.rows >= self.target_rows,
            )
            self._where.path = self.out / RANKS_DIR
            write_rank_state(self.out, new_state)  # the commit point
        except BaseException:
            # not committed: nothing refers to these files
            for t in (item.docs, item.shard):
                t.final.unlink(missing_ok=True)
            raise
        self._state, self._stats = new_state, stats
        log.debug("committed %s (%d rows, docs %d..%d)", info.path, info.rows, info.first_doc, info.last_doc)
        if rank == 0:
            self._where.path = self.out / MANIFEST
            merge_manifest(self.out)

    def _finish(self) -> None:
        state = replace(self._state, complete=self._state.rows >= self.target_rows)
        self._where.path = self.out / RANKS_DIR
        write_rank_state(self.out, state)
        self._state = state
        if self.rank == 0:
            self._where.path = self.out / MANIFEST
            merge_manifest(self.out)

    def _fail(self, e: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = self._as_store_error(e)

    def _as_store_error(self, e: BaseException) -> SaescopeError:
        rows = self._state.rows
        path = getattr(self._where, "path", self.out)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            err: SaescopeError = StoreError(
                f"disk full while writing {path}; {rows} rows are safely stored — "
                "free space and rerun the same command to resume"
            )
        elif isinstance(e, OSError):
            err = StoreError(
                f"could not write {path} ({e.strerror or e}); {rows} rows are safely stored — "
                "fix this and rerun the same command to resume"
            )
        elif isinstance(e, SaescopeError):
            return e
        else:
            err = StoreError(f"writing the activation store {self.out} failed ({type(e).__name__}: {e})")
        err.__cause__ = e
        return err

    # ------------------------------------------------------------------------------- closing

    def close(self) -> None:
        """Commit the last partial shard, mark the store complete if the target is reached, stop."""
        if self._closed:
            self._raise_if_failed()
            return
        self._closed = True
        self._queue.put(_Close())
        self._stop()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop after committing the complete shards already queued; the open shard is dropped.

        A resumed capture recomputes the dropped rows (they start at `next_doc`).
        """
        if self._closed:
            return
        self._closed = True
        self._stop()

    def _stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self._committer.join()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
            if self._error is not None:  # usually the very error being raised: the caller reports it
                log.debug("writer error: %s", self._error)
