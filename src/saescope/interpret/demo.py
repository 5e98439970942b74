"""The demo's interpretation: a handful of latents explained by statistics and by the local model.

`demo_interpretation(index_dir)` draws a few latents (seeded) among those firing on 0.1%–2% of
the indexed tokens — neither rare nor dense — explains each twice, with the statistics explainer
and with the embedded SmolLM2-135M-Instruct on the CPU (its answer begun for it, so that it keeps
to the JSON asked for), scores both explanations on held-out windows with the statistics scorer
(the tokens an explanation quotes or its statistics rules, against where the latent fires, beside
another latent's explanation as the chance baseline), stores everything in the index and returns
a result whose `render()` the demo prints.

Generation on two CPU cores runs at roughly 20 tokens a second, so the model is asked once per
latent, with bounded sizes: 6 windows of 11 tokens shown (a prompt of about 350 tokens) and at
most 48 tokens of answer. Scoring by the model (detection) is left out: a 135M-parameter model
does not label excerpts in the asked format, and each label request costs as much as an
explanation. A rerun finds everything stored (every answer in the response cache) and takes
seconds. A 135M-parameter model is too small to explain most latents: it mostly repeats itself
without closing the phrase it was given to finish, and such a latent says so (no JSON found) —
read the statistics explanations, or pass a larger local `model`.

This module knows nothing about the rest of the demo.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..index.reader import Index
from .clients import BatchClient, ChatClient, make_client
from .clients.local import DEFAULT_LOCAL_MODEL, preload
from .explainers import Explainer, LLMExplainer, StatsExplainer
from .resumable import interpret_index
from .scorers import Scorer, StatsScorer
from .source import IndexRecords, RecordSettings
from .summary import LatentReport, Usage
from .tables import WORK_DIR, ResultStore

SETTINGS = RecordSettings(train_examples=12, bins=4, per_bin=5, before=8, after=2, seed=0)
"""Examples per latent: 12 train windows of 11 tokens; 20 firing and 20 quiet held-out ones."""
SHOWN_EXAMPLES = 6
EXPLAIN_TOKENS = 48
FREQUENCY = (1e-3, 2e-2)
"""Firing frequencies the demo's latents are drawn from."""


class DemoInterpretation(NamedTuple):
    """What the demo's interpretation did."""

    index_dir: Path
    """The index the results are stored in."""
    model: str
    """The local model that explained."""
    stats: tuple[LatentReport, ...]
    """Each latent's statistics explanation and its scores."""
    llm: tuple[LatentReport, ...]
    """Each latent's explanation by the local model and its scores."""
    usage: Usage
    """The local model's calls and tokens."""
    elapsed_s: float
    """Seconds it took."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index_dir),
            "model": self.model,
            "stats": [r.to_json() for r in self.stats],
            "llm": [r.to_json() for r in self.llm],
            "usage": self.usage.to_json(),
            "elapsed_s": self.elapsed_s,
        }

    def render(self) -> str:
        lines = [
            f"auto-interpretation of {len(self.stats)} latents by statistics and by {self.model}, "
            f"scored on held-out text by the statistics scorer ({self.elapsed_s:.0f}s)"
        ]
        for by, reports in (("statistics", self.stats), (self.model, self.llm)):
            lines.append(f"explained by {by}:")
            lines += [f"  {line}" for r in reports for line in r.lines()]
        lines.append(f"language model: {self.usage.line}")
        return "\n".join(lines)


def demo_latents(index: Index, n: int, seed: int = 0) -> list[int]:
    """`n` latents drawn at random among those firing on 0.1%–2% of the tokens (any live ones when
    too few do)."""
    frequency = index.stats().column("frequency").to_numpy()
    low, high = FREQUENCY
    pool = [i for i, f in enumerate(frequency) if low <= f <= high] or [
        i for i, f in enumerate(frequency) if f > 0
    ]
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


async def _explain_twice(
    records: IndexRecords,
    latents: Sequence[int],
    explainers: Sequence[Explainer],
    scorers: Sequence[Scorer],
    store: ResultStore,
    client: ChatClient | BatchClient,
    model: str,
) -> list[tuple[LatentReport, ...]]:
    try:
        await preload(client, model)
        outcomes = [
            await interpret_index(records, latents, e, scorers, store, concurrency=1) for e in explainers
        ]
    finally:
        await client.aclose()
    return [o.reports for o in outcomes]


def demo_interpretation(
    index_dir: Path | str,
    latents: int = 3,
    *,
    model: str = DEFAULT_LOCAL_MODEL,
    device: str = "cpu",
    seed: int = 0,
) -> DemoInterpretation:
    """Explain and score `latents` latents of the index at `index_dir` (see the module docstring)."""
    started = time.perf_counter()
    index = Index(index_dir)
    chosen = demo_latents(index, latents, seed)
    client = make_client("local", cache=Path(index_dir) / WORK_DIR / "responses.jsonl", device=device)
    explainers: list[Explainer] = [
        StatsExplainer(),
        LLMExplainer(
            client, model, n_examples=SHOWN_EXAMPLES, max_tokens=EXPLAIN_TOKENS, seed=seed, prefill=True
        ),
    ]
    scorers: list[Scorer] = [StatsScorer(per_bin=SETTINGS.per_bin, n_bins=SETTINGS.bins, seed=seed)]
    records = IndexRecords(index, SETTINGS._replace(seed=seed))
    store = ResultStore(index_dir)
    stats, llm = asyncio.run(_explain_twice(records, chosen, explainers, scorers, store, client, model))
    return DemoInterpretation(
        Path(index_dir), model, stats, llm, Usage.of(client.usage), time.perf_counter() - started
    )


__all__ = ["DemoInterpretation", "demo_interpretation", "demo_latents"]
