"""Where training activations come from: an activation store, or a model run on the fly.

Both give the trainer the same thing: shuffled batches of raw activations from a known position
of a deterministic order (`rows consumed`), a sample for initialisation, and provenance (model,
hookpoint) to record in the SAE. Store training resumes exactly; on-the-fly training resumes at
the first model input it had not read (the rows that sat in its shuffle buffer are skipped).
Knows nothing about SAEs or optimisation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import ModelSettings, TrainConfig, corpus_of, to_jsonable
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

    @property
    def mean_squared_norm(self) -> float | None:
        return float(self.store.stats.mean_squared_norm)

    def sample(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(self.rows, generator=g)[: min(n, self.rows)].sort().values
        return self.store.get(idx).activations.float()

    def batches(
        self, batch_size: int, start_row: int, dist: DistInfo, device: torch.device
    ) -> Iterator[Tensor]:
        """Local batches (batch_size // world rows) from global row `start_row` of the order on."""
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
    """Activations computed from a model as training goes, through a shuffle buffer."""

    def __init__(self, cfg: TrainConfig, dist: DistInfo, device: torch.device, buffer_rows: int = 262_144):
        from ..hookpoints import resolve_hookpoints
        from ..models import load_model

        self.cfg, self.dist = cfg, dist
        model_settings = ModelSettings(
            model=cfg.model,
            revision=cfg.revision,
            model_dtype=cfg.model_dtype,
            device=str(device),
            device_map=cfg.device_map,
        )
        self.loaded = load_model(model_settings)
        (self.hookpoint,) = resolve_hookpoints(self.loaded.model, [cfg.hookpoint])
        self.buffer_rows = max(buffer_rows, 4 * cfg.batch_size)
        self.rows = None
        self.next_doc = 0
        probe = self._first_rows(8)
        self.provenance = Provenance(
            model=cfg.model,
            revision=self.loaded.revision,
            hookpoint=self.hookpoint.name,
            hookpoint_alias=self.hookpoint.alias,
            d_in=probe.shape[-1],
            details={"on_the_fly": True, "corpus": to_jsonable(corpus_of(self.cfg))},
        )

    mean_squared_norm = None

    def _rows(self, start_doc: int) -> Iterator[Tensor]:
        """Activation rows of this rank's model inputs, in corpus order, from `start_doc` on."""
        from ..data import iter_model_inputs
        from ..positions import for_rank, iter_positions

        corpus = iter_model_inputs(corpus_of(self.cfg), self.loaded.tokenizer, start=start_doc)
        inputs = for_rank(corpus, self.dist.rank, self.dist.world_size)
        for batch in iter_positions(self.loaded, [self.hookpoint], inputs, batch_size=16):
            self.next_doc = batch.inputs[-1].doc_id + 1
            yield batch.activations[self.hookpoint.name].float()

    def _first_rows(self, n: int) -> Tensor:
        for chunk in self._rows(0):
            return chunk[:n]
        raise ConfigError(f"corpus {self.cfg.dataset!r} gave no activations")

    def sample(self, n: int, seed: int) -> Tensor:
        got, count = [], 0
        for chunk in self._rows(0):
            got.append(chunk)
            count += len(chunk)
            if count >= n:
                break
        return torch.cat(got)[:n].cpu()

    def batches(
        self, batch_size: int, start_row: int, dist: DistInfo, device: torch.device
    ) -> Iterator[Tensor]:
        local = batch_size // dist.world_size
        g = torch.Generator(device="cpu").manual_seed(self.cfg.train_seed + start_row)
        buffer: list[Tensor] = []
        filled = 0
        start_doc = self.next_doc if start_row > 0 else 0
        while True:
            for chunk in self._rows(start_doc):
                buffer.append(chunk.to(device))
                filled += len(chunk)
                if filled < self.buffer_rows:
                    continue
                rows = torch.cat(buffer)
                rows = rows[torch.randperm(len(rows), generator=g).to(device)]
                # Yield about half the buffer and keep the rest, so batches mix many inputs.
                n_out = (len(rows) // 2 // local) * local
                for s in range(0, n_out, local):
                    yield rows[s : s + local]
                buffer, filled = [rows[n_out:]], len(rows) - n_out
            log.info("on-the-fly corpus exhausted; starting it again")
            start_doc = 0
