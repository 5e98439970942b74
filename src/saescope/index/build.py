"""`saescope index`: build the latent index of one or more SAEs (see the package docstring).

SAE(s) → their world (`bound.bind_sae`: model, hookpoint; `heldout_corpus`: held-out text) or an
activation store → a source of codes (`sources`) → one `IndexWriter` per SAE (chunks committed as
they fill) → `finalize` (compaction, statistics, relations, map) → `index.json` complete.

A rerun of the same command resumes an interrupted build (or does nothing when it is complete); a
folder holding the index of another SAE, or one built with other settings, is refused before
anything is written. Under torchrun every rank indexes its share into the same folders and the
ranks split the compaction; rank 0 finishes.
This module knows nothing about how indexes are queried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from .. import distributed
from ..bound import bind_sae, heldout_corpus, same_model
from ..config import IndexConfig, ModelSettings, to_jsonable
from ..data import check_corpus
from ..errors import ConfigError
from ..files import read_json_object
from ..models import LoadedModel, load_model, load_tokenizer, resolve_device
from ..runs import SAE_CONFIG, index_beside
from ..sae.base import SparseAutoencoder
from ..sae.source import open_sae
from ..store import ActivationStore
from .finalize import compact, finish, remove_work_files
from .format import HEADER, IndexHeader, LatentIndexError, read_header, sae_fingerprint, write_header
from .sentences import sentence_ends
from .sources import CodeBatch, store_batches, text_batches
from .writer import IndexWriter

log = logging.getLogger(__name__)

NON_IDENTITY = ("batch_size", "device", "device_map", "out", "saes", "model_dtype", "chunk_tokens")
"""Settings a resumed build may change (they do not change what the index holds)."""


class IndexSummary(NamedTuple):
    """One finished index."""

    path: Path
    """The index folder."""
    sae: str
    """The SAE it indexes."""
    tokens: int
    """Tokens indexed."""
    docs: int
    """Documents (model inputs) indexed."""
    nonzeros: int
    """Stored (token, latent, activation) postings."""
    d_sae: int
    """Latents."""
    dead: int
    """Latents that never fire on the `tokens` indexed tokens."""
    dense: int
    """Latents firing on more than `dense_frequency` of them."""
    dense_frequency: float
    """The dense threshold (a fraction of the indexed tokens)."""
    postings_bytes: int
    """Bytes of the postings files."""

    @classmethod
    def of(cls, path: Path, header: IndexHeader) -> IndexSummary:
        s = header.summary
        return cls(
            path,
            header.sae,
            header.tokens,
            header.docs,
            header.nonzeros,
            header.d_sae,
            int(s.get("dead", 0)),
            int(s.get("dense", 0)),
            float(header.settings.get("dense_frequency", 0.0)),
            int(s.get("bytes", {}).get("postings", 0)),
        )


class IndexResult(NamedTuple):
    """What `build_index` built."""

    indexes: list[IndexSummary]
    """One per SAE, in the order given."""
    tokens_per_second: float
    """Tokens indexed per second by this run (0 when everything was already indexed)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "indexes": [{**s._asdict(), "path": str(s.path)} for s in self.indexes],
            "tokens_per_second": self.tokens_per_second,
        }

    def render(self) -> str:
        lines = []
        for s in self.indexes:
            per = s.postings_bytes / max(s.nonzeros, 1)
            lines.append(
                f"indexed {s.tokens:,} tokens of {shown(s.sae)} in {s.path}: {s.nonzeros:,} nonzeros "
                f"({per:.2f} bytes each); {s.dead:,} dead of {s.d_sae:,} latents on these {s.tokens:,} "
                f"tokens (never fire on them), {s.dense:,} dense (fire on more than "
                f"{100 * s.dense_frequency:g}% of them)"
            )
        return "\n".join(lines)


class Plan(NamedTuple):
    """What one build pass reads and where each SAE's index goes."""

    saes: list[SparseAutoencoder]
    """The SAEs, in order (on the device that encodes)."""
    headers: list[IndexHeader]
    """The header each index will have."""
    outs: list[Path]
    """Their folders."""
    batches: Callable[[int, int, int], Iterator[CodeBatch]]
    """`batches(rank, world_size, cursor)`: the source's code batches."""
    tokenizer: Any
    """The model's tokenizer (sentences)."""
    load_model: Callable[[], Any]
    """The language model (for logit effects), loaded on first call."""


def out_folders(cfg: IndexConfig, folders: list[Path]) -> list[Path]:
    """Each SAE's index folder: --out, else `index` beside the SAE's folder (`folders`: a published
    SAE's is its run folder's `sae/`)."""
    if cfg.out:
        return list(cfg.out)
    return [index_beside(Path(p).resolve()) for p in folders]


def settings_record(cfg: IndexConfig) -> dict[str, Any]:
    return {k: v for k, v in to_jsonable(cfg).items() if k not in NON_IDENTITY}


def shown(path: str) -> str:
    """`path` relative to the working folder when it lies inside it (index.json keeps it absolute)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def sae_config(path: Path, sae: SparseAutoencoder) -> dict[str, Any]:
    """The SAE's `cfg.json` contents (its parsed config when its format has no such file)."""
    if (path / SAE_CONFIG).is_file():
        return read_json_object(path / SAE_CONFIG, ConfigError, "an SAE config")
    return sae.cfg.to_dict()


def header_for(
    cfg: IndexConfig,
    path: Path,
    sae: SparseAutoencoder,
    model: str,
    hookpoint: str,
    source: dict[str, Any],
    world: int,
) -> IndexHeader:
    """The header of the index of the SAE at `path` (`source`: source, corpus, store, start, stride)."""
    return IndexHeader(
        sae=str(Path(path).resolve()),
        sae_sha256=sae_fingerprint(sae.file_tensors()),
        cfg=sae_config(Path(path), sae),
        model=model,
        hookpoint=hookpoint,
        d_sae=sae.d_sae,
        target_tokens=cfg.tokens,
        values=cfg.values,
        bucket_latents=cfg.bucket_latents,
        world_size=world,
        settings=settings_record(cfg),
        **source,
    )


def text_plan(cfg: IndexConfig, world: int) -> Plan:
    """Index held-out text (or --dataset) through the model, one pass for every SAE."""
    models: dict[str, LoadedModel] = {}
    settings = ModelSettings(
        model_dtype=cfg.model_dtype, device=cfg.device, device_map=cfg.device_map, threads=cfg.threads
    )
    bounds = [
        bind_sae(p, cfg.model or None, force=cfg.force, settings=settings, models=models) for p in cfg.saes
    ]
    if len(models) > 1 or len({id(b.loaded_model) for b in bounds}) > 1:
        raise ConfigError("the SAEs read different models; index them in separate runs")
    corpora = [heldout_corpus(b.sae, cfg.dataset, cfg.split, cfg.text_field, cfg.context_len) for b in bounds]
    if len({c.corpus for c in corpora}) > 1:
        raise ConfigError(
            "the SAEs were trained on different corpora; index them separately or pass --dataset"
        )
    corpus, start = corpora[0].corpus, max(c.start for c in corpora)
    check_corpus(corpus)
    loaded = bounds[0].loaded_model
    source = {
        "source": "text",
        "corpus": to_jsonable(corpus),
        "store": None,
        "start": start,
        "stride": corpus.context_len,
    }
    headers = [header_for(cfg, b.path, b.sae, loaded.name, b.hookpoint.name, source, world) for b in bounds]

    def batches(rank: int, world_size: int, cursor: int) -> Iterator[CodeBatch]:
        return text_batches(bounds, corpus, start, cfg.tokens, cfg.batch_size, rank, world_size, cursor)

    return Plan(
        [b.sae for b in bounds],
        headers,
        out_folders(cfg, [b.path for b in bounds]),
        batches,
        loaded.tokenizer,
        lambda: loaded.model,
    )


def check_store_fits(store: ActivationStore, path: Path, sae: SparseAutoencoder, cfg: IndexConfig) -> None:
    """The SAE reads what the store holds: same width, hookpoint and (unless --force) model."""
    if sae.d_in != store.d_model:
        raise ConfigError(f"{path} reads width {sae.d_in}, but {store.path} holds width {store.d_model}")
    names = {n for n in (sae.cfg.hookpoint, sae.cfg.hookpoint_alias) if n}
    if names and not names & {store.hookpoint, store.manifest.hookpoint_alias}:
        raise ConfigError(f"{path} reads {sae.cfg.hookpoint}, but {store.path} holds {store.hookpoint}")
    if sae.cfg.model and not same_model(sae.cfg.model, store.model) and not cfg.force:
        raise ConfigError(
            f"{path} was trained on {sae.cfg.model!r}, {store.path} holds {store.model!r}; "
            "pass --force to index it anyway"
        )


def store_plan(cfg: IndexConfig, world: int, device: str) -> Plan:
    """Index the rows of an activation store: the SAEs encode stored activations, no model runs."""
    assert cfg.acts is not None
    store = ActivationStore(cfg.acts)
    opened = [open_sae(p) for p in cfg.saes]
    saes = [o.sae.to(device).eval() for o in opened]
    paths = [o.folder for o in opened]
    for path, sae in zip(paths, saes):
        check_store_fits(store, path, sae, cfg)
    model = cfg.model or store.model
    stride = int(store.manifest.header.capture.get("context_len") or 1 << 16)
    source = {
        "source": "store",
        "corpus": None,
        "store": str(Path(cfg.acts).resolve()),
        "start": 0,
        "stride": stride,
    }
    headers = [header_for(cfg, p, sae, model, store.hookpoint, source, world) for p, sae in zip(paths, saes)]
    settings = ModelSettings(
        model=model,
        model_dtype=cfg.model_dtype,
        device=cfg.device,
        device_map=cfg.device_map,
        threads=cfg.threads,
    )
    loaded: list[Any] = []

    def load() -> Any:
        if not loaded:
            loaded.append(load_model(settings).model)
        return loaded[0]

    def batches(rank: int, world_size: int, cursor: int) -> Iterator[CodeBatch]:
        return store_batches(store, saes, cfg.tokens, rank, world_size, cursor)

    return Plan(saes, headers, out_folders(cfg, paths), batches, load_tokenizer(settings), load)


def check_existing(out: Path, header: IndexHeader) -> IndexHeader | None:
    """The header already at `out` when it is this very index (None when there is none); refuses a
    folder holding anything else."""
    if not (out / HEADER).exists():
        if out.exists() and any(out.iterdir()):
            raise LatentIndexError(f"{out} is not empty and holds no latent index; use another --out")
        return None
    existing = read_header(out, complete=False)
    if existing.sae_sha256 != header.sae_sha256:
        raise LatentIndexError(
            f"{out} holds the index of another SAE ({existing.sae}); use another --out or delete it"
        )
    mine, theirs = header.identity(), existing.identity()
    changed = [k for k in mine if mine[k] != theirs.get(k)]
    changed += [k for k in header.settings if header.settings[k] != existing.settings.get(k)]
    if changed:
        names = ", ".join(sorted(set(changed)))
        raise LatentIndexError(
            f"{out} holds an index of this SAE built with other settings ({names}); "
            "use another --out or delete it"
        )
    return existing


def run_source(
    plan: Plan, writers: list[IndexWriter | None], cfg: IndexConfig, dist: distributed.DistInfo
) -> float:
    """Feed the source's batches to the writers still working; returns tokens per second."""
    working = [w for w in writers if w is not None and not w.done]
    if not working:
        return 0.0
    cursor = min(w.cursor for w in working)
    share = cfg.tokens // dist.world_size
    already = min(w.progress.tokens for w in working)
    bar = tqdm(
        total=share,
        initial=min(already, share),
        unit="tok",
        unit_scale=True,
        disable=not dist.is_main,
        dynamic_ncols=True,
    )
    t0, seen, last = time.perf_counter(), 0, cursor
    with bar:
        for batch in plan.batches(dist.rank, dist.world_size, cursor):
            last = int(batch.order[-1]) + 1
            for writer, codes in zip(writers, batch.codes):
                if writer is not None and not writer.done:
                    writer.add(batch, codes, last)
            seen += len(batch.order)
            bar.update(len(batch.order))
    for w in working:
        w.finish(max(last, w.cursor))
    return seen / max(time.perf_counter() - t0, 1e-9)


def open_writers(plan: Plan, cfg: IndexConfig, dist: distributed.DistInfo) -> list[IndexWriter | None]:
    """A writer per index still to build (None for a complete one). Every rank checks the folders
    before rank 0 writes a header into any, so all refuse alike and none sees a half-made folder."""
    existing = [check_existing(out, h) for out, h in zip(plan.outs, plan.headers)]
    distributed.barrier()
    if dist.is_main:
        for out, header, found in zip(plan.outs, plan.headers, existing):
            if found is None:
                out.mkdir(parents=True, exist_ok=True)
                write_header(out, header)
    distributed.barrier()
    ends = sentence_ends(plan.tokenizer)
    writers: list[IndexWriter | None] = []
    for out, header, found in zip(plan.outs, plan.headers, existing):
        if found is not None and found.complete:
            log.info("%s is already complete", out)
            writers.append(None)
            continue
        writers.append(
            IndexWriter(
                out, dist.rank, header.stride, header.bucket_latents, header.values, cfg.chunk_tokens, ends
            )
        )
    return writers


def build_index(cfg: IndexConfig) -> IndexResult:
    """Build (or resume, or find complete) the index of every SAE in `cfg` (module docstring)."""
    dist = distributed.init(cfg.device)
    if len(set(out_folders(cfg, [Path(p) for p in cfg.saes]))) != len(cfg.saes):
        raise ConfigError("two SAEs would share one index folder; give one --out per SAE")
    if cfg.acts is not None:
        plan = store_plan(cfg, dist.world_size, str(resolve_device(cfg.device)))
    else:
        plan = text_plan(cfg, dist.world_size)
    if len(set(plan.outs)) != len(cfg.saes):  # two names of one published SAE
        raise ConfigError("two SAEs would share one index folder; give one --out per SAE")
    writers = open_writers(plan, cfg, dist)
    rate = run_source(plan, writers, cfg, dist)
    distributed.barrier()
    summaries = []
    for out, header, sae, writer in zip(plan.outs, plan.headers, plan.saes, writers):
        if writer is not None:
            compact(out, header, cfg, dist.rank, dist.world_size)
            distributed.barrier()
            if dist.is_main:
                finish(out, header, cfg, sae, plan.load_model)
            distributed.barrier()
        elif dist.is_main:
            remove_work_files(out)
        summaries.append(IndexSummary.of(out, read_header(out)))
    return IndexResult(summaries, rate)


__all__ = ["IndexResult", "IndexSummary", "build_index"]
