"""The on-disk contract of an activation store: folder layout, manifest, rank files.

One store per hookpoint, a folder:

    manifest.json                           the merge of all rank files (what readers open)
    stats.safetensors                       mean [d], var [d] of all committed rows (float64)
    ranks/rank-{r}.json                     rank r's committed shards, running stats, next doc
    shards/shard-r{r}-{i:05d}.safetensors   activations [rows, d], token_ids, doc_ids, positions
    docs/docs-r{r}-{i:05d}.parquet          doc_id, token_ids, text, source of that shard's docs

A rank file is the source of truth for its rank; `manifest.json` is rebuilt from the rank files
(`merge_manifest`). Every file is replaced atomically (see `files`), and a rank file is written
only after the shards it lists are durable, so the store on disk is always consistent.

This module knows nothing about how rows are produced, written in the background, or read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..files import read_json, write_json
from ..runs import STORE_MANIFEST
from .moments import RunningStats

log = logging.getLogger(__name__)

FORMAT = "saescope.activations/1"
MANIFEST = STORE_MANIFEST
STATS = "stats.safetensors"
RANKS_DIR = "ranks"
SHARDS_DIR = "shards"
DOCS_DIR = "docs"
DTYPES = ("bfloat16", "float16", "float32")
"""Store dtypes (the names of the torch dtypes)."""


def shard_path(rank: int, index: int) -> str:
    """Path of a shard relative to the store folder."""
    return f"{SHARDS_DIR}/shard-r{rank}-{index:05d}.safetensors"


def docs_path(rank: int, index: int) -> str:
    """Path of a shard's docs table relative to the store folder."""
    return f"{DOCS_DIR}/docs-r{rank}-{index:05d}.parquet"


def rank_path(rank: int) -> str:
    """Path of a rank's progress file relative to the store folder."""
    return f"{RANKS_DIR}/rank-{rank}.json"


@dataclass(frozen=True)
class ShardInfo:
    """One committed shard and its docs table."""

    path: str
    """Shard file, relative to the store folder."""
    rows: int
    """Rows it holds."""
    sha256: str
    """Hex SHA-256 of the shard file."""
    nbytes: int
    """Size of the shard file (`bytes` in JSON)."""
    docs: str
    """Docs table (Parquet), relative to the store folder."""
    docs_sha256: str
    """Hex SHA-256 of the docs table."""
    docs_nbytes: int
    """Size of the docs table (`docs_bytes` in JSON)."""
    first_doc: int
    """Smallest doc id with rows in this shard."""
    last_doc: int
    """Largest doc id with rows in this shard."""
    rank: int
    """Rank that wrote it."""
    index: int
    """Its index among that rank's shards."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "sha256": self.sha256,
            "bytes": self.nbytes,
            "docs": self.docs,
            "docs_sha256": self.docs_sha256,
            "docs_bytes": self.docs_nbytes,
            "first_doc": self.first_doc,
            "last_doc": self.last_doc,
            "rank": self.rank,
            "index": self.index,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> ShardInfo:
        try:
            return cls(
                path=str(d["path"]),
                rows=int(d["rows"]),
                sha256=str(d["sha256"]),
                nbytes=int(d["bytes"]),
                docs=str(d["docs"]),
                docs_sha256=str(d["docs_sha256"]),
                docs_nbytes=int(d["docs_bytes"]),
                first_doc=int(d["first_doc"]),
                last_doc=int(d["last_doc"]),
                rank=int(d["rank"]),
                index=int(d["index"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{where}: malformed shard entry ({e!r} in {d!r:.200})") from e


@dataclass(frozen=True)
class StoreHeader:
    """What a store is: the settings every rank shares."""

    model: str
    revision: str | None
    hookpoint: str
    """Canonical hookpoint (module path)."""
    hookpoint_alias: str
    """The form the user gave (`resid_post:15`)."""
    d_model: int
    dtype: str
    """`bfloat16`, `float16` or `float32`."""
    world_size: int
    """Number of ranks that write the store."""
    capture: dict[str, Any]
    """The full capture config (JSON values)."""
    identity: dict[str, Any]
    """The settings that define the data; a store is only ever extended with equal ones."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "hookpoint": self.hookpoint,
            "hookpoint_alias": self.hookpoint_alias,
            "d_model": self.d_model,
            "dtype": self.dtype,
            "world_size": self.world_size,
            "capture": self.capture,
            "identity": self.identity,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> StoreHeader:
        try:
            header = cls(
                model=str(d["model"]),
                revision=None if d["revision"] is None else str(d["revision"]),
                hookpoint=str(d["hookpoint"]),
                hookpoint_alias=str(d.get("hookpoint_alias", d["hookpoint"])),
                d_model=int(d["d_model"]),
                dtype=str(d["dtype"]),
                world_size=int(d.get("world_size", 1)),
                capture=dict(d["capture"]),
                identity=dict(d.get("identity", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{where}: missing or malformed field {e}") from e
        if header.dtype not in DTYPES:
            raise StoreError(f"{where}: unknown dtype {header.dtype!r} (expected one of {', '.join(DTYPES)})")
        return header


@dataclass(frozen=True)
class RankState:
    """The content of `ranks/rank-{r}.json`: everything rank r has committed."""

    header: StoreHeader
    rank: int
    shards: tuple[ShardInfo, ...] = ()
    rows: int = 0
    next_doc: int = 0
    """First doc id this rank has not committed (where a resumed capture starts)."""
    stats: dict[str, Any] = field(default_factory=dict)
    """`RunningStats.to_dict()` of this rank's committed rows."""
    target_rows: int = 0
    """The target of the last writer (informational: re-running with more extends the store)."""
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            **self.header.to_dict(),
            "rank": self.rank,
            "rows": self.rows,
            "next_doc": self.next_doc,
            "target_rows": self.target_rows,
            "complete": self.complete,
            "shards": [s.to_dict() for s in self.shards],
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> RankState:
        check_format(d, where)
        try:
            return cls(
                header=StoreHeader.from_dict(d, where),
                rank=int(d["rank"]),
                shards=tuple(ShardInfo.from_dict(s, where) for s in d["shards"]),
                rows=int(d["rows"]),
                next_doc=int(d["next_doc"]),
                stats=dict(d["stats"]),
                target_rows=int(d.get("target_rows", 0)),
                complete=bool(d["complete"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{where}: missing or malformed field {e}") from e

    def running_stats(self) -> RunningStats:
        return RunningStats.from_dict(self.stats) if self.stats else RunningStats(self.header.d_model)


@dataclass(frozen=True)
class Manifest:
    """The content of `manifest.json`: what a reader needs to open the store."""

    header: StoreHeader
    rows: int
    shards: tuple[ShardInfo, ...]
    stats: dict[str, Any]
    """`RunningStats.summary()`: count, mean_squared_norm, norm_mean, norm_std."""
    complete: bool

    @property
    def model(self) -> str:
        return self.header.model

    @property
    def revision(self) -> str | None:
        return self.header.revision

    @property
    def hookpoint(self) -> str:
        return self.header.hookpoint

    @property
    def hookpoint_alias(self) -> str:
        return self.header.hookpoint_alias

    @property
    def d_model(self) -> int:
        return self.header.d_model

    @property
    def dtype(self) -> str:
        return self.header.dtype

    @property
    def capture(self) -> dict[str, Any]:
        return self.header.capture

    @property
    def identity(self) -> dict[str, Any]:
        return self.header.identity

    def to_dict(self) -> dict[str, Any]:
        h = self.header.to_dict()
        capture, identity = h.pop("capture"), h.pop("identity")
        return {
            "format": FORMAT,
            **h,
            "rows": self.rows,
            "complete": self.complete,
            "stats": self.stats,
            "shards": [s.to_dict() for s in self.shards],
            "capture": capture,
            "identity": identity,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Manifest:
        check_format(d, where)
        try:
            manifest = cls(
                header=StoreHeader.from_dict(d, where),
                rows=int(d["rows"]),
                shards=tuple(ShardInfo.from_dict(s, where) for s in d["shards"]),
                stats=dict(d["stats"]),
                complete=bool(d["complete"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{where}: missing or malformed field {e}") from e
        if sum(s.rows for s in manifest.shards) != manifest.rows:
            raise StoreError(f"{where}: rows ({manifest.rows}) is not the sum of the shards' rows")
        return manifest


def check_format(d: Any, where: str) -> None:
    """Refuse a JSON document that is not of our format."""
    if not isinstance(d, dict):
        raise StoreError(f"{where} is not an activation store manifest (not a JSON object)")
    fmt = d.get("format")
    if fmt != FORMAT:
        raise StoreError(f"{where} has format {fmt!r}; this saescope reads {FORMAT!r}")


def read_manifest(store: Path) -> Manifest:
    """The manifest of the store at `store`."""
    path = store / MANIFEST
    if not path.exists():
        raise StoreError(f"no activation store at {store} (manifest.json missing)")
    raw = read_json(path, StoreError)
    return Manifest.from_dict(raw, str(path))


def read_rank_states(store: Path) -> dict[int, RankState]:
    """Every rank file of the store, by rank."""
    states: dict[int, RankState] = {}
    folder = store / RANKS_DIR
    if not folder.is_dir():
        return states
    for path in sorted(folder.glob("rank-*.json")):
        if not path.exists():  # removed since the glob
            continue
        state = RankState.from_dict(read_json(path, StoreError), str(path))
        if path.name != f"rank-{state.rank}.json":
            raise StoreError(f"{path} holds the progress of rank {state.rank}")
        states[state.rank] = state
    return states


def write_rank_state(store: Path, state: RankState) -> None:
    """Commit a rank's progress (atomic: readers see the old file or the new one)."""
    # compact: the running statistics hold two d_model-long vectors
    write_json(store / rank_path(state.rank), state.to_dict(), indent=None)


def first_difference(there: dict[str, Any], here: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The first setting (in `here`'s order, then `there`'s) whose value differs, or None."""
    missing = object()
    for key in [*here, *(k for k in there if k not in here)]:
        a, b = there.get(key, missing), here.get(key, missing)
        if a != b:
            return key, "unset" if a is missing else a, "unset" if b is missing else b
    return None


def merged_stats(states: dict[int, RankState], d_model: int) -> RunningStats:
    """The statistics of all ranks' committed rows, merged in rank order."""
    stats = RunningStats(d_model)
    for r in sorted(states):
        stats.merge(states[r].running_stats())
    return stats


def merge_manifest(store: Path) -> Manifest:
    """Rebuild `manifest.json` and `stats.safetensors` from all rank files.

    Rows are summed, statistics merged (in rank order), shards ordered by rank then index; the
    store is `complete` when every rank of `world_size` has a rank file marked complete. Rank 0
    calls this after each of its shards and, under torchrun, once more after a barrier at the
    end; it is also usable standalone (`merge_manifest(Path("runs/x/acts"))`).
    """
    store = Path(store)
    states = read_rank_states(store)
    if not states:
        raise StoreError(f"no activation store at {store} (no rank files in {store / RANKS_DIR})")
    ranks = sorted(states)
    first = states[ranks[0]].header
    for r in ranks[1:]:
        a, b = first.to_dict(), states[r].header.to_dict()
        del a["capture"], b["capture"]  # may name the rank; the identity is what must agree
        diff = first_difference(a, b)
        if diff is not None:
            key, a_value, b_value = diff
            raise StoreError(
                f"{store}: rank files disagree ({key}: {a_value} for rank {ranks[0]}, {b_value} for rank {r})"
            )
    stats = merged_stats(states, first.d_model)
    shards: list[ShardInfo] = []
    for r in ranks:
        shards.extend(sorted(states[r].shards, key=lambda s: s.index))
    manifest = Manifest(
        header=first,
        rows=sum(states[r].rows for r in ranks),
        shards=tuple(shards),
        stats=stats.summary(),
        complete=ranks == list(range(first.world_size)) and all(states[r].complete for r in ranks),
    )
    # manifest first: if we are killed in between, the stats file lags, and a reader rebuilds the
    # statistics from the rank files, which then match the manifest (see ActivationStore.stats)
    write_json(store / MANIFEST, manifest.to_dict())
    stats.save(store / STATS)
    log.debug("merged %s: %d rows in %d shards from %d ranks", store, manifest.rows, len(shards), len(ranks))
    return manifest
