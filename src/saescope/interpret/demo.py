"""The demo's interpretation: the latents statistics explain best, explained again by the local model.

`demo_interpretation(index_dir)` first explains a pool of candidate latents (`POOL`, drawn with a
seed among those firing on 0.1%–2% of the indexed tokens: neither rare nor dense) with the
statistics explainer — the tokens, n-grams and preceding tokens most over-represented where each
fires — and scores every explanation on held-out windows with the statistics scorer (where the
explanation's rules match against where the latent fires, beside another latent's explanation as
the chance baseline). It then shows the `latents` whose explanations score best (the lower end of
the AUROC's 95% interval: an explanation must beat chance on held-out text, not on its own
examples), and asks the embedded SmolLM2-135M-Instruct on the CPU to explain those same latents
(its answer begun for it, so that it keeps to the JSON asked for), scored the same way. Every
result is stored in the index (the dashboard and the server show the whole pool's explanations);
a rerun finds them all stored and takes seconds. Which latents are shown depends on the trained
SAE, but each one shown has a measured statistics explanation; if no candidate has one, the
demo says so.

Generation on two CPU cores runs at roughly 20 tokens a second, so the model is asked once per
shown latent, with bounded sizes: 6 windows of 11 tokens (a prompt of about 350 tokens) and at
most 48 tokens of answer. Scoring by the model (detection) is left out: a 135M-parameter model
does not label excerpts in the asked format. It is also too small to explain most latents: it
mostly repeats itself without closing the phrase it was given to finish, and such a latent says so
(no JSON found) — read the statistics explanations, or pass a larger local `model`.

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
"""Firing frequencies the demo's candidate latents are drawn from."""
POOL = 100
"""Candidate latents explained by statistics, among which the best explained are shown."""


class DemoInterpretation(NamedTuple):
    """What the demo's interpretation did."""

    index_dir: Path
    """The index the results are stored in."""
    model: str
    """The local model that explained."""
    candidates: int
    """Latents explained by statistics (the pool the shown ones were chosen from)."""
    explained: int
    """Candidates whose statistics explanation has a measured score."""
    stats: tuple[LatentReport, ...]
    """The shown latents' statistics explanations and their scores, best first."""
    llm: tuple[LatentReport, ...]
    """The same latents explained by the local model, and its scores."""
    usage: Usage
    """The local model's calls and tokens."""
    elapsed_s: float
    """Seconds it took."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index_dir),
            "model": self.model,
            "candidates": self.candidates,
            "explained": self.explained,
            "stats": [r.to_json() for r in self.stats],
            "llm": [r.to_json() for r in self.llm],
            "usage": self.usage.to_json(),
            "elapsed_s": self.elapsed_s,
        }

    def render(self) -> str:
        lines = [
            f"auto-interpretation: {self.candidates} candidate latents explained by statistics "
            f"({self.explained} with a measured score); the {len(self.stats)} that score best on "
            f"held-out text (lower end of the statistics AUROC's 95% interval), also explained by "
            f"{self.model} ({self.elapsed_s:.0f}s)"
        ]
        if not self.stats:
            lines.append("no candidate's statistics explanation could be scored: nothing to show")
        for by, reports in (("statistics", self.stats), (self.model, self.llm)):
            lines.append(f"explained by {by}:")
            lines += [f"  {line}" for r in reports for line in r.lines()]
        lines.append(f"language model: {self.usage.line}")
        return "\n".join(lines)


def candidate_latents(index: Index, n: int, seed: int = 0) -> list[int]:
    """`n` latents drawn at random among those firing on 0.1%–2% of the tokens (any live ones when
    too few do), ascending."""
    frequency = index.stats().column("frequency").to_numpy()
    low, high = FREQUENCY
    pool = [i for i, f in enumerate(frequency) if low <= f <= high] or [
        i for i, f in enumerate(frequency) if f > 0
    ]
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


def quality(report: LatentReport) -> float | None:
    """How well a statistics explanation did on held-out text: the lower end of its AUROC's 95%
    interval (None when that was not measured)."""
    for score in report.scores:
        if score.metric == "auroc" and score.measured and report.ok:
            return float(score.ci_low) if score.ci_low == score.ci_low else float(score.value)
    return None


def best_explained(reports: Sequence[LatentReport], n: int) -> list[LatentReport]:
    """The `n` reports with the best `quality`, best first (ties: the lower latent)."""
    rated = [(q, r) for r in reports if (q := quality(r)) is not None]
    rated.sort(key=lambda pair: (-pair[0], pair[1].latent))
    return [r for _, r in rated[:n]]


async def _explain(
    records: IndexRecords,
    candidates: Sequence[int],
    shown: int,
    llm: Explainer,
    scorers: Sequence[Scorer],
    store: ResultStore,
    client: ChatClient | BatchClient,
    model: str,
) -> tuple[tuple[LatentReport, ...], list[LatentReport], tuple[LatentReport, ...]]:
    """(every candidate's statistics report, the best `shown` of them, the model's reports on those)."""
    screened = await interpret_index(records, candidates, StatsExplainer(), scorers, store, concurrency=4)
    best = best_explained(screened.reports, shown)
    if not best:
        return screened.reports, [], ()
    try:
        await preload(client, model)
        by_model = await interpret_index(
            records, [r.latent for r in best], llm, scorers, store, concurrency=1
        )
    finally:
        await client.aclose()
    order = {r.latent: i for i, r in enumerate(best)}
    return screened.reports, best, tuple(sorted(by_model.reports, key=lambda r: order[r.latent]))


def demo_interpretation(
    index_dir: Path | str,
    latents: int = 3,
    *,
    model: str = DEFAULT_LOCAL_MODEL,
    device: str = "cpu",
    seed: int = 0,
    pool: int = POOL,
) -> DemoInterpretation:
    """Explain `pool` candidate latents of the index at `index_dir` by statistics and show the
    `latents` best explained, explained by `model` too (see the module docstring)."""
    started = time.perf_counter()
    index = Index(index_dir)
    candidates = candidate_latents(index, max(pool, latents), seed)
    client = make_client("local", cache=Path(index_dir) / WORK_DIR / "responses.jsonl", device=device)
    llm = LLMExplainer(
        client, model, n_examples=SHOWN_EXAMPLES, max_tokens=EXPLAIN_TOKENS, seed=seed, prefill=True
    )
    scorers: list[Scorer] = [StatsScorer(per_bin=SETTINGS.per_bin, n_bins=SETTINGS.bins, seed=seed)]
    records = IndexRecords(index, SETTINGS._replace(seed=seed))
    store = ResultStore(index_dir)
    screened, best, by_model = asyncio.run(
        _explain(records, candidates, latents, llm, scorers, store, client, model)
    )
    explained = sum(1 for r in screened if quality(r) is not None)
    return DemoInterpretation(
        Path(index_dir),
        model,
        len(screened),
        explained,
        tuple(best),
        by_model,
        Usage.of(client.usage),
        time.perf_counter() - started,
    )


__all__ = ["DemoInterpretation", "best_explained", "candidate_latents", "demo_interpretation", "quality"]
