"""Where training activations come from: an activation store, or a model run on the fly.

Both give the trainer the same thing: shuffled batches of raw activations from a known position
of a deterministic order (`rows consumed`), a sample for initialisation, provenance (model,
hookpoint) to record in the SAE, and `ready_at`, when it could first produce activations (the
store opened and verified, the model loaded): the trainer counts its throughput from there. Store
training resumes exactly; on-the-fly training resumes at the first model input it had not read
(the rows that sat in its shuffle buffer are skipped).
Knows nothing about SAEs or optimisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import TrainConfig, corpus_of, model_of, to_jsonable
from ..distributed import DistInfo
from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Provenance:
    model: str
    revision: str | None
    hookpoint: str
    hookpoint_alias: str
    d_in: int
    details: dict[str, Any] = field(default_factory=dict)


class StoreSource:
    """Batches from an activation store, without replacement; epochs reshuffle with a new seed."""

    def __init__(self, path: Path, shuffle: str, seed: int):
        from ..store import ActivationStore

        self.store = ActivationStore(path, verify="full")
        m = self.store.manifest
        self.rows: int = self.store.rows
        if self.rows == 0:
            raise ConfigError(f"activation store {path} holds no rows")
        self.shuffle = shuffle if shuffle != "auto" else ("random" if self.rows < 2**31 else "buffer")
        self.seed = seed
        self.provenance = Provenance(
            model=m.model,
            revision=m.revision,
            hookpoint=m.hookpoint,
            hookpoint_alias=m.hookpoint_alias,
            d_in=m.d_model,
            details={
                "store": str(path),
                "store_rows": self.rows,
                "capture": m.capture,
                # The first model input the capture did not use: where held-out evaluation starts.
                "next_doc": max((s.last_doc for s in m.shards), default=-1) + 1,
            },
        )
        self.ready_at = time.perf_counter()

    @property
    def mean_squared_norm(self) -> float | None:
        return float(self.store.stats.mean_squared_norm)

    def sample(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(self.rows, generator=g)[: min(n, self.rows)].sort().values
        return self.store.get(idx).activations.float()

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
            yield from self.store.batches(
                batch_size,
                shuffle=self.shuffle,  # type: ignore[arg-type]
                seed=self.seed + epoch,
                start_row=offset,
                rank=dist.rank,
                world_size=dist.world_size,
                drop_last=True,
                device=device,
            )
            epoch, offset = epoch + 1, 0


class ModelSource:
    """Activations computed from a model as training goes, through a shuffle buffer.

    The buffer holds at most `buffer_rows` rows and never more than the run will consume, so a
    short run does not compute activations it will not train on. A corpus that ends before the
    buffer is full is shuffled as it is and read again (the next epoch); it is never cycled just to
    fill the buffer. The first rows of the corpus, read before training to initialise the SAE (and
    to learn d_in), are kept and are the first rows training reads: no forward pass runs twice.
    """

    def __init__(self, cfg: TrainConfig, dist: DistInfo, device: torch.device, buffer_rows: int = 262_144):
        from ..hookpoints import resolve_hookpoints
        from ..models import load_model

        self.cfg, self.dist = cfg, dist
        self.loaded = load_model(model_of(cfg, device=str(device)))
        self.ready_at = time.perf_counter()  # the probe below is already the model's work
        (self.hookpoint,) = resolve_hookpoints(self.loaded.model, [cfg.hookpoint])
        self.buffer_rows = buffer_rows
        self.rows = None
        self.next_doc = 0
        # The corpus's first chunks of rows, each with the first input after it, kept for training;
        # and whether they are the whole corpus (it ended while they were read).
        self._head: list[tuple[Tensor, int]] = []
        self._head_is_corpus = False
        probe = self._read_head(1)
        self.provenance = Provenance(
            model=cfg.model,
            revision=self.loaded.revision,
            hookpoint=self.hookpoint.name,
            hookpoint_alias=self.hookpoint.alias,
            d_in=probe.shape[-1],
            details={"on_the_fly": True, "corpus": to_jsonable(corpus_of(self.cfg))},
        )

    mean_squared_norm = None

    def _read(self, start_doc: int) -> Iterator[tuple[Tensor, int]]:
        """(activation rows, the first input after them) of this rank's model inputs, in corpus
        order, from input `start_doc` on."""
        from ..data import iter_model_inputs
        from ..positions import for_rank, iter_positions

        corpus = iter_model_inputs(corpus_of(self.cfg), self.loaded.tokenizer, start=start_doc)
        inputs = for_rank(corpus, self.dist.rank, self.dist.world_size)
        for batch in iter_positions(self.loaded, [self.hookpoint], inputs, batch_size=16):
            yield batch.activations[self.hookpoint.name].float(), batch.inputs[-1].doc_id + 1

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
