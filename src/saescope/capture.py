"""`saescope capture`: run a model over a corpus and write one activation store per hookpoint.

model × corpus → model inputs (data.py) → forward pass that stops after the last hooked module
(hooks.py) → the sampled positions' activations → StoreWriter (store/), which copies them off the
GPU and writes shards in the background while the next forward runs. A capture into an existing
store resumes after the last committed input (or extends it to more --tokens). Under torchrun,
rank r takes the inputs with doc_id % world == r and writes its own shards; rank 0 merges the
manifests. Knows nothing about SAEs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from . import distributed
from .config import CaptureConfig, VerifyConfig, corpus_of, to_jsonable
from .data import BUILTIN, ModelInput, iter_model_inputs
from .data import check_corpus as check_documents
from .errors import ConfigError, StoreError
from .hookpoints import Hookpoint, resolve_hookpoints
from .hooks import collect_activations
from .models import LoadedModel, load_model
from .positions import for_rank, iter_positions
from .runs import hookpoint_folder
from .store import DocRecord, StoreWriter, merge_manifest
from .store.manifest import MANIFEST
from .store.verify import verify_store

log = logging.getLogger(__name__)

# Capture settings that do not change what the store holds (so a resume may change them).
NON_IDENTITY_FIELDS = {"tokens", "batch_size", "device", "device_map", "shard_mb", "out", "hookpoints"}


@dataclass(frozen=True)
class StoreSummary:
    path: Path
    hookpoint: str
    rows: int
    d_model: int


class CaptureResult(NamedTuple):
    """What `capture` stored."""

    stores: list[StoreSummary]
    """One store per hookpoint (rank 0 reports the whole store, other ranks their own rows)."""
    rows_per_second: float
    """Rows stored per second by this run (per hookpoint, this rank)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stores": [
                {"path": str(s.path), "hookpoint": s.hookpoint, "rows": s.rows, "d_model": s.d_model}
                for s in self.stores
            ],
            "rows_per_second": self.rows_per_second,
        }

    def render(self) -> str:
        return "\n".join(
            f"stored {s.rows:,} rows of {s.hookpoint} (d_model {s.d_model}) in {s.path}" for s in self.stores
        )


def store_folder(out: Path, hookpoint: Hookpoint, several: bool) -> Path:
    """`--out` itself for one hookpoint; a sibling folder per hookpoint for several."""
    if not several:
        return out
    return out / hookpoint_folder(hookpoint.alias or hookpoint.name)


def probe_widths(loaded: LoadedModel, hookpoints: Sequence[Hookpoint]) -> dict[str, int]:
    """Width of each hookpoint's activation, from a two-token forward pass."""
    ids = torch.tensor([[0, 0]], device=loaded.device)
    with collect_activations(loaded.model, hookpoints) as collector, torch.inference_mode():
        acts = collector.run(input_ids=ids, attention_mask=torch.ones_like(ids))
    return {name: int(a.shape[-1]) for name, a in acts.items()}


def rank_share(total: int, dist: distributed.DistInfo) -> int:
    return total // dist.world_size + (1 if dist.rank < total % dist.world_size else 0)


def recorded_config(cfg: CaptureConfig, loaded: LoadedModel) -> CaptureConfig:
    """`cfg` as the store records it: the model as `load_model` named it (an absolute path for a
    local folder) and a local dataset as an absolute path, so that later stages (train, eval) find
    both from any working directory, and `./x` and `x` are the same store's settings."""
    dataset = cfg.dataset
    if dataset != BUILTIN and Path(dataset).expanduser().exists():
        dataset = str(Path(dataset).expanduser().resolve())
    return dataclasses.replace(cfg, model=loaded.name, dataset=dataset)


def check_corpus(cfg: CaptureConfig, loaded: LoadedModel) -> None:
    """Fail on a missing or empty corpus before any store is opened: a store left behind by such a
    run would record the wrong dataset and refuse the corrected command."""
    next(iter_model_inputs(corpus_of(cfg), loaded.tokenizer), None)


def corpus_identity(cfg: CaptureConfig, loaded: LoadedModel, hookpoint: Hookpoint) -> dict[str, Any]:
    """The settings that define a store's contents (compared when resuming)."""
    ident = {k: v for k, v in to_jsonable(cfg).items() if k not in NON_IDENTITY_FIELDS}
    ident.update(
        model_dtype=str(loaded.dtype).removeprefix("torch."),
        revision=loaded.revision,
        hookpoint=hookpoint.name,
    )
    return ident


def check_existing(folder: Path) -> None:
    """Resuming or extending a store builds on the shards already there: refuse (before anything is
    written) when any of them is not intact."""
    if not (folder / MANIFEST).exists():
        return
    try:
        verify_store(VerifyConfig(folder))
    except StoreError as e:
        raise StoreError(f"cannot resume or extend: {e} (delete the store, or use another --out)") from None


def open_writers(
    cfg: CaptureConfig, loaded: LoadedModel, hookpoints: Sequence[Hookpoint], dist: distributed.DistInfo
) -> list[StoreWriter]:
    """One writer per hookpoint (`cfg` as `recorded_config` gives it); the ones already opened are
    aborted if a later one refuses its folder."""
    several = len(hookpoints) > 1
    if several and (cfg.out / MANIFEST).exists():
        raise StoreError(
            f"{cfg.out} holds the store of one hookpoint; several hookpoints write sibling stores "
            "into a folder of their own — use another --out"
        )
    for hp in hookpoints:
        check_existing(store_folder(cfg.out, hp, several))
    widths = probe_widths(loaded, hookpoints)
    itemsize = torch.empty((), dtype=getattr(torch, cfg.store_dtype)).element_size()
    writers: list[StoreWriter] = []
    try:
        for hp in hookpoints:
            d = widths[hp.name]
            writers.append(
                StoreWriter(
                    store_folder(cfg.out, hp, several),
                    model=cfg.model,
                    revision=loaded.revision,
                    hookpoint=hp.name,
                    hookpoint_alias=hp.alias,
                    d_model=d,
                    dtype=cfg.store_dtype,
                    capture=to_jsonable(cfg),
                    identity=corpus_identity(cfg, loaded, hp),
                    rank=dist.rank,
                    world_size=dist.world_size,
                    shard_rows=max(1, cfg.shard_mb * 2**20 // (d * itemsize)),
                    target_rows=rank_share(cfg.tokens, dist),
                )
            )
    except BaseException:
        for w in writers:
            w.abort()
        raise
    return writers


def capture(cfg: CaptureConfig) -> CaptureResult:
    """Run the capture `cfg` describes (see the module docstring)."""
    dist = distributed.init(cfg.device)
    check_documents(corpus_of(cfg))  # a wrong --dataset fails before the model loads
    loaded = load_model(cfg)
    hookpoints = resolve_hookpoints(loaded.model, cfg.hookpoints)
    if len({hp.name for hp in hookpoints}) != len(hookpoints):
        raise ConfigError("the same hookpoint is named twice")
    cfg = recorded_config(cfg, loaded)
    check_corpus(cfg, loaded)
    writers = open_writers(cfg, loaded, hookpoints, dist)
    # Each writer closes on success; on an error (or Ctrl-C) it keeps its complete shards and drops
    # the open one, which a rerun recomputes.
    with contextlib.ExitStack() as stack:
        for w in writers:
            stack.enter_context(w)
        stored = run_capture(cfg, loaded, hookpoints, writers, dist)
    distributed.barrier()
    summaries = []
    for hp, w in zip(hookpoints, writers):
        # rank 0 reports the whole store, the other ranks their own rows
        rows = merge_manifest(w.out).rows if dist.is_main else w.rows_committed
        summaries.append(StoreSummary(w.out, hp.alias or hp.name, rows, w.d_model))
    return CaptureResult(summaries, stored)


def enough_inputs(batch: list[ModelInput], rows_wanted: int) -> list[ModelInput]:
    """The shortest prefix of `batch` that yields `rows_wanted` rows (all of it if it yields fewer):
    the last batch of a capture runs the forward pass only over the inputs it stores."""
    have = 0
    for n, item in enumerate(batch, 1):
        have += len(item.positions)
        if have >= rows_wanted:
            return batch[:n]
    return batch


def run_capture(
    cfg: CaptureConfig,
    loaded: LoadedModel,
    hookpoints: Sequence[Hookpoint],
    writers: list[StoreWriter],
    dist: distributed.DistInfo,
) -> float:
    """The capture loop; returns rows stored per second."""
    start = min(w.next_doc for w in writers)
    target = rank_share(cfg.tokens, dist)
    already = min(w.rows_committed for w in writers)
    if already >= target:
        log.info("the store already holds %d rows (target %d); nothing to do", already, target)
        return 0.0
    if already:
        log.info("resuming: %d rows already stored; continuing at input %d", already, start)
    inputs = for_rank(
        iter_model_inputs(corpus_of(cfg), loaded.tokenizer, start=start), dist.rank, dist.world_size
    )

    def trim(batch: list[ModelInput]) -> list[ModelInput]:
        return enough_inputs(batch, target - min(w.rows_accepted for w in writers))

    bar = tqdm(
        total=target,
        initial=already,
        unit="tok",
        unit_scale=True,
        disable=not dist.is_main,
        dynamic_ncols=True,
    )
    t0, stored = time.perf_counter(), 0
    # the bar closes before an error is reported, so the error line is not glued to it
    with bar, torch.inference_mode():
        for pb in iter_positions(loaded, hookpoints, inputs, cfg.batch_size, trim=trim):
            docs = [DocRecord(b.doc_id, b.token_ids, b.text, b.source) for b in pb.inputs]
            before = min(w.rows_accepted for w in writers)
            for hp, w in zip(hookpoints, writers):
                w.add(pb.activations[hp.name], pb.token_ids, pb.doc_ids, pb.positions, docs)
            after = min(w.rows_accepted for w in writers)
            stored += after - before
            bar.update(after - before)
            if all(w.done for w in writers):
                break
    if min(w.rows_accepted for w in writers) < target:
        log.warning("the corpus ran out after %d rows (asked for %d)", already + stored, target)
    return stored / max(time.perf_counter() - t0, 1e-9)
