"""`interpret_index` interrupted: what finished is stored, a rerun does only the rest."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from saescope.index.reader import Index
from saescope.interpret.explainers import Explanation, StatsExplainer
from saescope.interpret.records import LatentRecord
from saescope.interpret.resumable import interpret_index
from saescope.interpret.scorers import StatsScorer
from saescope.interpret.source import IndexRecords
from saescope.interpret.tables import ResultStore, read_tables


class Interrupted(StatsExplainer):
    """Stops the run (Ctrl-C, or SIGKILL) when asked to explain `at`; counts what it explained."""

    def __init__(self, at: int | None = None, kill: bool = False) -> None:
        super().__init__()
        self.at, self.kill = at, kill
        self.explained: list[int] = []

    async def explain(self, record: LatentRecord) -> Explanation:
        if record.latent == self.at:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt
        self.explained.append(record.latent)
        return await super().explain(record)


def run(index_dir: Path, latents: list[int], explainer: StatsExplainer, flush_after: float = 2.0) -> None:
    records = IndexRecords(Index(index_dir))
    store = ResultStore(index_dir, flush_after=flush_after)
    asyncio.run(interpret_index(records, latents, explainer, [StatsScorer()], store, chunk=2, progress=False))


def stored(index_dir: Path) -> list[int]:
    return sorted(read_tables(index_dir).explanations.column("latent").to_pylist())


def live(index_dir: Path, n: int) -> list[int]:
    counts = pq.read_table(index_dir / "latents.parquet").column("count").to_numpy()
    return [int(i) for i in np.flatnonzero(counts >= 10)[:n]]


def test_an_interrupted_run_keeps_what_finished(index_dir: Path) -> None:
    latents = live(index_dir, 8)
    with pytest.raises(KeyboardInterrupt):
        run(index_dir, latents, Interrupted(at=latents[4]), flush_after=3600)
    assert stored(index_dir) == latents[:4]  # two whole chunks; the third was in flight
    again = Interrupted()
    run(index_dir, latents, again)
    assert again.explained == latents[4:] and stored(index_dir) == latents


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_killed_run_keeps_what_finished(index_dir: Path) -> None:
    latents = live(index_dir, 8)
    pid = os.fork()
    if pid == 0:  # the child is killed while explaining the fifth latent
        try:
            run(index_dir, latents, Interrupted(at=latents[4], kill=True), flush_after=0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert stored(index_dir) == latents[:4]
    again = Interrupted()
    run(index_dir, latents, again)
    assert again.explained == latents[4:] and stored(index_dir) == latents
