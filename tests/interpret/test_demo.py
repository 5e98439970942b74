"""The demo's interpretation: a few latents explained by statistics and a local model, stored, rendered."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from saescope.index.reader import Index
from saescope.interpret.demo import FREQUENCY, demo_interpretation, demo_latents
from saescope.interpret.tables import read_interpretations


def test_demo_latents_are_neither_rare_nor_dense_and_seeded(built_index: Path) -> None:
    index = Index(built_index)
    frequency = index.stats().column("frequency").to_numpy()
    chosen = demo_latents(index, 3)
    assert len(chosen) == 3 and chosen == demo_latents(index, 3)
    low, high = FREQUENCY
    eligible = [i for i, f in enumerate(frequency) if low <= f <= high] or [
        i for i, f in enumerate(frequency) if f
    ]
    assert set(chosen) <= set(eligible)


def test_demo_on_the_tiny_model(index_dir: Path, tiny_model_dir: Path) -> None:
    result = demo_interpretation(index_dir, 3, model=str(tiny_model_dir))
    assert [r.latent for r in result.stats] == [r.latent for r in result.llm] and len(result.stats) == 3
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
    again = demo_interpretation(index_dir, 3, model=str(tiny_model_dir))
    assert again.usage.calls == 0 and all(r.status == "stored" for r in again.stats if r.ok)


@pytest.mark.slow
def test_demo_with_the_embedded_model_stays_bounded(index_dir: Path) -> None:
    started = time.perf_counter()
    result = demo_interpretation(index_dir, 3)
    assert result.model == "smollm2-135m" and result.usage.calls == 3
    assert result.usage.prompt_tokens < 3 * 600 and result.usage.completion_tokens <= 3 * 48
    assert all(r.ok or r.messages for r in result.llm)
    assert time.perf_counter() - started < 300
