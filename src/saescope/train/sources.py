"""Where training activations come from: an activation store, or a model run on the fly.

Both give the trainer the same thing: shuffled batches of raw activations from a known position
of a deterministic order (`rows consumed`), a sample for initialisation, provenance (model,
hookpoints) to record in the SAE, and `ready_at`, when it could first produce activations (the
store opened and verified, the model loaded): the trainer counts its throughput from there. Store
training resumes exactly; on-the-fly training resumes at the first model input it had not read
(the rows that sat in its shuffle buffer are skipped).

Several hookpoints in one pass: a batch row holds every hookpoint's activation of one token side
by side (`Layout`: hookpoint → its columns), so one forward pass (or one aligned read of sibling
stores) feeds every dictionary — an SAE per hookpoint, or a transcoder per layer, which reads an
input hookpoint (`mlp_in:L`) and reconstructs the module's output (`mlp_out:L`): each `Stream`
names the columns one dictionary reads and those it reconstructs.
Knows nothing about SAEs or optimisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..config import TrainConfig, corpus_of, model_of, to_jsonable
from ..distributed import DistInfo
from ..errors import ConfigError

log = logging.getLogger(__name__)

BUFFER_BYTES = 2 * 2**30
"""On the fly: the most memory the shuffle buffer takes (float32 rows of every hookpoint), its
copies included: filling and shuffling hold up to three copies of the buffer's rows at once (the
chunks read, their concatenation, the shuffled order), so the buffer holds a third of this."""
SHUFFLE_COPIES = 3


class Columns(NamedTuple):
    """One hookpoint's place in a batch row."""

    name: str
    """Canonical hookpoint name (`model.layers.3.mlp:input`)."""
    alias: str
    """Its short form (`mlp_in:3`)."""
    start: int
    """First column."""
    width: int
    """Columns (the activation's width)."""

    def of(self, rows: Tensor) -> Tensor:
        """This hookpoint's activations in `rows` [n, layout width]."""
        return rows[:, self.start : self.start + self.width]


class Stream(NamedTuple):
    """What one dictionary trains on: the hookpoint it reads, and the one it reconstructs (the
    same for an SAE; the module's output for a transcoder)."""

    input: Columns
    """Where it reads."""
    output: Columns | None
    """Where what it reconstructs lies; None: its input (an SAE)."""

    @property
    def target(self) -> Columns:
        return self.output or self.input


def layout(hookpoints: Sequence[tuple[str, str, int]]) -> list[Columns]:
    """(name, alias, width) of each hookpoint, side by side in that order."""
    out, start = [], 0
    for name, alias, width in hookpoints:
        out.append(Columns(name, alias, start, width))
        start += width
    return out


def pair_streams(columns: Sequence[Columns], transcode: bool) -> list[Stream]:
    """One stream per hookpoint (SAEs), or per input hookpoint with its module's output
    (transcoders: `X:input` reconstructs `X`); an input without its output is an error."""
    if not transcode:
        return [Stream(c, None) for c in columns]
    by_name = {c.name: c for c in columns}
    inputs = [c for c in columns if c.name.endswith(":input")]
    if not inputs:
        raise ConfigError(
            "a transcoder reads a module's input: give --hookpoint mlp_in:L (or mlp_in:* for every layer)"
        )
    streams = []
    for c in inputs:
        out = by_name.get(c.name.removesuffix(":input"))
        if out is None:
            raise ConfigError(f"no activations of {c.name.removesuffix(':input')} to pair with {c.alias}")
        streams.append(Stream(c, out))
    return streams


@dataclass
class Provenance:
    model: str
    revision: str | None
    columns: list[Columns]
    """Every hookpoint a batch row holds, in column order."""
    streams: list[Stream]
    """One per dictionary to train (each of a sweep's widths and k trains on each stream)."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Columns of a batch row."""
        return sum(c.width for c in self.columns)


class StoreSource:
    """Batches from an activation store — or from sibling stores of one capture (`--hookpoints`
    with several values), read in the same order side by side — without replacement; epochs
    reshuffle with a new seed."""

    def __init__(self, path: Path, shuffle: str, seed: int, transcode: bool = False):
        from ..store import ActivationStore
        from ..store.manifest import MANIFEST

        folders = (
            [path] if (path / MANIFEST).is_file() else sorted(p.parent for p in path.glob(f"*/{MANIFEST}"))
        )
        if not folders:
            raise ConfigError(f"{path} holds no activation store (no {MANIFEST}, nor sibling stores in it)")
        self.stores = [ActivationStore(folder, verify="full") for folder in folders]
        m = self.stores[0].manifest
        self.rows: int = self.stores[0].rows
        if self.rows == 0:
            raise ConfigError(f"activation store {folders[0]} holds no rows")
        self._check_aligned(folders)
        shuffle = shuffle if shuffle != "auto" else ("random" if self.rows < 2**31 else "buffer")
        # Only the `random` order is the same for stores of different widths (it depends on the rows).
        self.shuffle = shuffle if len(self.stores) == 1 else "random"
        self.seed = seed
        columns = layout([(s.manifest.hookpoint, s.manifest.hookpoint_alias, s.d_model) for s in self.stores])
        self.provenance = Provenance(
            model=m.model,
            revision=m.revision,
            columns=columns,
            streams=pair_streams(columns, transcode),
            details={
                "store": str(path),
                "store_rows": self.rows,
                "capture": m.capture,
                # The first model input the capture did not use: where held-out evaluation starts.
                "next_doc": max((s.last_doc for s in m.shards), default=-1) + 1,
            },
        )
        self.ready_at = time.perf_counter()

    def _check_aligned(self, folders: list[Path]) -> None:
        """Sibling stores must hold the same tokens in the same order (one capture's)."""
        first = self.stores[0]
        ends = [0, self.rows - 1]
        for folder, store in zip(folders[1:], self.stores[1:]):
            same = store.rows == self.rows and store.model == first.model
            if not same or not torch.equal(store.get(ends).doc_ids, first.get(ends).doc_ids):
                raise ConfigError(
                    f"{folder} and {folders[0]} are not one capture's stores (other rows or model);"
                    " capture every hookpoint in one run (--hookpoints A B)"
                )

    def mean_squared_norm(self, name: str) -> float | None:
        """E‖x‖² of hookpoint `name`, as its store recorded it."""
        store = next(s for s in self.stores if s.manifest.hookpoint == name)
        return float(store.stats.mean_squared_norm)

    def sample(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(self.rows, generator=g)[: min(n, self.rows)].sort().values
        return torch.cat([s.get(idx).activations.float() for s in self.stores], dim=-1)

    def batches(
        self, batch_size: int, start_row: int, dist: DistInfo, device: torch.device, end_row: int
    ) -> Iterator[Tensor]:
        """Local batches (batch_size // world rows) from global row `start_row` of the order on
        (`end_row`, where the run ends, is for sources that size buffers from it)."""
        per_epoch = (self.rows // batch_size) * batch_size
        if per_epoch == 0:
            raise ConfigError(f"--batch-size {batch_size} is larger than the store ({self.rows} rows)")
        epoch, offset = divmod(start_row, per_epoch)
        while True:
            parts = [
                store.batches(
                    batch_size,
                    shuffle=self.shuffle,  # type: ignore[arg-type]
                    seed=self.seed + epoch,
                    start_row=offset,
                    rank=dist.rank,
                    world_size=dist.world_size,
                    drop_last=True,
                    device=device,
                )
                for store in self.stores
            ]
            for batches in zip(*parts):
                yield batches[0] if len(batches) == 1 else torch.cat(batches, dim=-1)
            epoch, offset = epoch + 1, 0


class ModelSource:
    """Activations computed from a model as training goes, through a shuffle buffer.

    The buffer holds at most `buffer_rows` rows and never more than the run will consume, so a
    short run does not compute activations it will not train on. A corpus that ends before the
    buffer is full is shuffled as it is and read again (the next epoch); it is never cycled just to
    fill the buffer. The first rows of the corpus, read before training to initialise the SAE (and
    to learn d_in), are kept and are the first rows training reads: no forward pass runs twice.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        dist: DistInfo,
        device: torch.device,
        buffer_rows: int = 262_144,
        transcode: bool = False,
    ):
        from ..hookpoints import hookpoint_order, output_of, resolve_hookpoints
        from ..models import load_model

        self.cfg, self.dist = cfg, dist
        self.loaded = load_model(model_of(cfg, device=str(device)))
        self.ready_at = time.perf_counter()  # the probe below is already the model's work
        model = self.loaded.model
        reads = resolve_hookpoints(model, [cfg.hookpoint])
        if transcode:
            reads = [p for h in reads for p in (h, output_of(model, h))]
        # In firing order, so the forward pass stops after the last one.
        self.hookpoints = hookpoint_order(model, reads)
        self.buffer_rows = buffer_rows
        self.rows = None
        self.next_doc = 0
        # The corpus's first chunks of rows, each with the first input after it, kept for training;
        # and whether they are the whole corpus (it ended while they were read).
        self._head: list[tuple[Tensor, int]] = []
        self._head_is_corpus = False
        self._widths: dict[str, int] = {}
        self._read_head(1)
        columns = layout([(h.name, h.alias, self._widths[h.name]) for h in self.hookpoints])
        # Rows are float32 side by side: a buffer of many hookpoints holds fewer of them.
        row_bytes = 4 * sum(c.width for c in columns)
        self.buffer_rows = min(buffer_rows, max(1, BUFFER_BYTES // (SHUFFLE_COPIES * row_bytes)))
        self.provenance = Provenance(
            model=cfg.model,
            revision=self.loaded.revision,
            columns=columns,
            streams=pair_streams(columns, transcode),
            details={"on_the_fly": True, "corpus": to_jsonable(corpus_of(self.cfg))},
        )

    def mean_squared_norm(self, name: str) -> float | None:
        """Unknown before training (the trainer measures it on the sample)."""
        return None

    def _read(self, start_doc: int) -> Iterator[tuple[Tensor, int]]:
        """(activation rows, the first input after them) of this rank's model inputs, in corpus
        order, from input `start_doc` on."""
        from ..data import iter_model_inputs
        from ..positions import for_rank, iter_positions

        corpus = iter_model_inputs(corpus_of(self.cfg), self.loaded.tokenizer, start=start_doc)
        inputs = for_rank(corpus, self.dist.rank, self.dist.world_size)
        for batch in iter_positions(self.loaded, self.hookpoints, inputs, batch_size=16):
            acts = [batch.activations[h.name].float() for h in self.hookpoints]
            self._widths = {h.name: a.shape[-1] for h, a in zip(self.hookpoints, acts)}
            rows = acts[0] if len(acts) == 1 else torch.cat(acts, dim=-1)
            yield rows, batch.inputs[-1].doc_id + 1

    def _read_head(self, n: int) -> Tensor:
        """The corpus's first `n` rows (fewer if it is shorter), read once and kept."""
        have = sum(len(c) for c, _ in self._head)
        if have < n and not self._head_is_corpus:
            start = self._head[-1][1] if self._head else 0
            for chunk, after in self._read(start):
                self._head.append((chunk, after))
                have += len(chunk)
                if have >= n:
                    break
            else:
                self._head_is_corpus = True
        if not self._head:
            raise ConfigError(f"corpus {self.cfg.dataset!r} gave no activations")
        return torch.cat([c for c, _ in self._head])[:n]

    def _rows(self, start_doc: int) -> Iterator[Tensor]:
        """Activation rows from input `start_doc` to the end of the corpus (the kept head first when
        starting at 0); `next_doc` follows what was read."""
        head, self._head = (self._head if start_doc == 0 else []), []
        for chunk, after in head:
            self.next_doc = after
            yield chunk
        if head and self._head_is_corpus:
            return
        for chunk, after in self._read(head[-1][1] if head else start_doc):
            self.next_doc = after
            yield chunk

    def sample(self, n: int, seed: int) -> Tensor:
        """The corpus's first `n` rows (training reads them again from memory, first)."""
        return self._read_head(n).cpu()

    def batches(
        self, batch_size: int, start_row: int, dist: DistInfo, device: torch.device, end_row: int
    ) -> Iterator[Tensor]:
        """Local batches of global rows `start_row` to `end_row` of the data order (see the class
        docstring); a resumed run (`start_row` > 0) reads on from `next_doc`."""
        local = batch_size // dist.world_size
        need = (end_row - start_row) // batch_size * local
        capacity = max(local, min(self.buffer_rows, need))
        g = torch.Generator(device="cpu").manual_seed(self.cfg.train_seed + start_row)
        start_doc = self.next_doc if start_row > 0 else 0
        log.info(
            "on the fly: shuffle buffer of %s rows (the model's forward passes fill it)", f"{capacity:,}"
        )
        held: list[Tensor] = []
        passes = 0
        while need > 0:
            for chunk in self._rows(start_doc):
                held.append(chunk.to(device))
                if sum(len(c) for c in held) >= min(capacity, need):
                    kept, out = self._shuffle_out(torch.cat(held), local, need, g)
                    held, need = [kept], need - len(out) * local
                    yield from out
                    if need == 0:
                        return
            # The corpus ended: what the buffer holds is shuffled and used as it is.
            if held:
                kept, out = self._shuffle_out(torch.cat(held), local, need, g, everything=True)
                held, need = [kept], need - len(out) * local
                yield from out
            passes += 1
            start_doc = 0
            if need > 0:
                log.info("on the fly: the corpus was read %d time(s); starting it again", passes)

    @staticmethod
    def _shuffle_out(
        rows: Tensor, local: int, need: int, g: torch.Generator, everything: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """Shuffle `rows`; return (the rows kept, the batches to yield now). About half the buffer
        goes out and the rest stays, so batches mix many inputs — all of it when it holds what the
        run still needs or when the corpus ended (`everything`)."""
        rows = rows[torch.randperm(len(rows), generator=g).to(rows.device)]
        share = len(rows) if everything or len(rows) >= need else len(rows) // 2
        n_out = min(share // local * local, need)
        return rows[n_out:], [rows[s : s + local] for s in range(0, n_out, local)]
