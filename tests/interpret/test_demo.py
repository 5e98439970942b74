"""The demo's interpretation: candidates explained by statistics, the best shown and explained by a local
model, stored, rendered; whichever latents training made, every one shown has a measured explanation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from saescope.index.reader import Index
from saescope.interpret.demo import FREQUENCY, best_explained, candidate_latents, demo_interpretation, quality
from saescope.interpret.tables import read_interpretations


def test_candidates_are_neither_rare_nor_dense_and_seeded(built_index: Path) -> None:
    index = Index(built_index)
    frequency = index.stats().column("frequency").to_numpy()
    chosen = candidate_latents(index, 3)
    assert len(chosen) == 3 and chosen == candidate_latents(index, 3)
    low, high = FREQUENCY
    eligible = [i for i, f in enumerate(frequency) if low <= f <= high] or [
        i for i, f in enumerate(frequency) if f
    ]
    assert set(chosen) <= set(eligible)


def test_demo_on_the_tiny_model(index_dir: Path, tiny_model_dir: Path) -> None:
    result = demo_interpretation(index_dir, 3, model=str(tiny_model_dir), pool=12)
    assert [r.latent for r in result.stats] == [r.latent for r in result.llm] and len(result.stats) == 3
    assert result.candidates == len(candidate_latents(Index(index_dir), 12)) and result.explained >= 3
    # the shown latents are the best explained of the pool, each with a measured explanation
    everything = read_interpretations(index_dir)
    shown = [quality(r) for r in result.stats]
    assert all(q is not None for q in shown) and shown == sorted(shown, reverse=True)
    assert {i.explanation.latent for i in everything if i.explanation.explainer == "stats"} >= {
        r.latent for r in result.stats
    }
    assert result.usage.calls == 3  # the model is asked once per latent, nothing for scoring
    assert result.usage.completion_tokens <= 3 * 48 and result.usage.prompt_tokens < 3 * 1000
    text = result.render()
    assert "explained by statistics:" in text and f"explained by {tiny_model_dir}:" in text
    assert "language model: 3 calls" in text
    # random weights write no JSON: each such latent says so, the statistics ones are scored
    assert all(
        r.ok or r.messages == ("no explanation: no JSON object found in the answer",) for r in result.llm
    )
    assert any(s.scorer == "statistics" for r in result.stats for s in r.scores)
    stored = read_interpretations(index_dir)
    assert {i.explanation.explainer for i in stored} == {"stats", "llm"}
    again = demo_interpretation(index_dir, 3, model=str(tiny_model_dir), pool=12)
    assert again.usage.calls == 0 and [r.status for r in again.stats] == ["stored"] * 3
    assert [r.latent for r in again.stats] == [r.latent for r in result.stats]


def test_the_best_explained_are_chosen_and_failures_never(index_dir: Path, tiny_model_dir: Path) -> None:
    result = demo_interpretation(index_dir, 2, model=str(tiny_model_dir), pool=12)
    reports = list(result.stats)
    assert best_explained(reports, 5) == reports  # only those with a measured score are shown
    assert best_explained([], 3) == []


@pytest.mark.slow
def test_demo_with_the_embedded_model_stays_bounded(index_dir: Path) -> None:
    started = time.perf_counter()
    result = demo_interpretation(index_dir, 3, pool=12)
    assert result.model == "smollm2-135m" and result.usage.calls == 3
    assert result.usage.prompt_tokens < 3 * 600 and result.usage.completion_tokens <= 3 * 48
    assert all(r.ok or r.messages for r in result.llm)
    assert time.perf_counter() - started < 300
