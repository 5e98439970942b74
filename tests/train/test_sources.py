"""On-the-fly activations: the shuffle buffer is sized from the budget and the corpus, and no
forward pass is wasted — a short run computes about what it trains on, a small corpus is read once
per pass instead of being cycled to fill a fixed buffer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from saescope.config import TrainConfig
from saescope.distributed import DistInfo
from saescope.train.sources import ModelSource

ONE = DistInfo(rank=0, world_size=1, local_rank=0)
BATCH = 64


def corpus(tmp_path: Path, lines: int) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(
        "\n".join(
            f"The cat {i} is on the mat, and Paris is the capital number {i * 7}." for i in range(lines)
        )
    )
    return path


class Counted(ModelSource):
    """A ModelSource that counts the rows its model computes and the passes it starts."""

    computed = 0
    starts: list[int]

    def _read(self, start_doc: int) -> Iterator[tuple[torch.Tensor, int]]:
        self.starts = [*getattr(self, "starts", []), start_doc]
        for chunk, after in super()._read(start_doc):
            self.computed += len(chunk)
            yield chunk, after


def source(tiny_model_dir: Path, dataset: Path, tokens: int, **changes: Any) -> Counted:
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        dataset=str(dataset),
        hookpoint="resid_post:1",
        context_len=32,
        out=dataset.parent / "sae",
        tokens=tokens,
        batch_size=BATCH,
        device="cpu",
        **changes,
    )
    return Counted(cfg, ONE, torch.device("cpu"))


def test_a_short_run_computes_one_forward_batch_and_trains_on_its_rows(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    src = source(tiny_model_dir, corpus(tmp_path, 400), tokens=3 * BATCH)
    sample = src.sample(3 * BATCH, seed=0)  # the trainer's initialisation sample
    batches = list(src.batches(BATCH, 0, ONE, torch.device("cpu"), end_row=3 * BATCH))
    # One forward batch (16 inputs of 31 positions) answered the probe, the sample and training: the
    # fixed 262,144-row buffer would have had the model compute 262,144 rows first.
    assert src.starts == [0] and src.computed == 16 * 31
    assert [len(b) for b in batches] == [BATCH] * 3
    rows = torch.cat(batches)
    assert len({tuple(r.tolist()) for r in rows}) == 3 * BATCH  # no row twice
    first = {tuple(r.tolist()) for r in sample}
    assert (
        sum(tuple(r.tolist()) in first for r in rows) > 0
    )  # the sample's rows are trained on, not recomputed


def test_a_corpus_smaller_than_the_buffer_is_read_once_per_pass(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = source(tiny_model_dir, corpus(tmp_path, 12), tokens=10 * BATCH)
    corpus_rows = len(src.sample(10**6, seed=0))  # the whole corpus: the sample stops where it ends
    assert corpus_rows < 10 * BATCH
    batches = list(src.batches(BATCH, 0, ONE, torch.device("cpu"), end_row=10 * BATCH))
    assert [len(b) for b in batches] == [BATCH] * 10
    passes = -(-10 * BATCH // corpus_rows)
    # The first pass came from the sample, each later one is read once: never more than one pass of
    # rows beyond what training consumes (the fixed buffer cycled it to 262,144 rows first).
    assert [s for s in src.starts if s == 0] == [0] * passes
    assert src.computed == passes * corpus_rows


def test_a_resumed_run_reads_on_from_its_next_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = source(tiny_model_dir, corpus(tmp_path, 400), tokens=6 * BATCH)
    src.sample(BATCH, seed=0)
    src.next_doc = 40  # as restored from a checkpoint
    batches = src.batches(BATCH, 3 * BATCH, ONE, torch.device("cpu"), end_row=6 * BATCH)
    assert len(list(batches)) == 3
    assert src.starts[-1] == 40 and src.next_doc > 40


@pytest.mark.parametrize("rows", [0, 5])
def test_shuffle_out_by_hand(rows: int) -> None:
    g = torch.Generator().manual_seed(0)
    buffer = torch.arange(40 + rows, dtype=torch.float32)[:, None]
    kept, out = ModelSource._shuffle_out(buffer, local=8, need=64, g=g)
    assert [len(b) for b in out] == [8] * 2 and len(kept) == 40 + rows - 16  # about half goes out
    kept, out = ModelSource._shuffle_out(buffer, local=8, need=16, g=g)
    assert [len(b) for b in out] == [8] * 2  # what the run still needs, no more
    kept, out = ModelSource._shuffle_out(buffer, local=8, need=64, g=g, everything=True)
    assert [len(b) for b in out] == [8] * 5 and len(kept) == rows  # the corpus ended: all full batches
    assert sorted(torch.cat([*out, kept]).flatten().tolist()) == list(range(40 + rows))
