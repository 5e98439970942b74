"""Choosing latents: the `--latents` spec, dead and rare latents set aside, a seeded `--sample`."""

from __future__ import annotations

from pathlib import Path

import pytest

from saescope.config.interpret import InterpretConfig, parse_latent_spec
from saescope.errors import ConfigError
from saescope.interpret.selection import select_latents


def test_latent_specs() -> None:
    assert parse_latent_spec("0-4") == (0, 1, 2, 3, 4)
    assert parse_latent_spec("3,17,40-42") == (3, 17, 40, 41, 42)
    assert parse_latent_spec(" 7 , 5-6,5 ") == (5, 6, 7)  # sorted, each once
    for bad in ("", "a", "3-", "-3", "5-2", "1,,2", "1.5"):
        with pytest.raises(ConfigError, match="--latents"):
            parse_latent_spec(bad)
    with pytest.raises(ConfigError, match="runs backwards"):
        InterpretConfig(index=Path("x"), latents="9-3")


COUNTS = [0, 5, 50, 0, 12, 9, 100, 10]


def test_dead_and_rare_latents_are_set_aside_with_a_note() -> None:
    chosen = select_latents(COUNTS, min_count=10)
    assert chosen.latents == (2, 4, 6, 7)  # 10 firings is enough
    assert [(s.latent, s.reason) for s in chosen.skipped] == [
        (0, "dead (never fires in the index)"),
        (1, "fires 5 times (--min-count 10)"),
        (3, "dead (never fires in the index)"),
        (5, "fires 9 times (--min-count 10)"),
    ]
    assert select_latents(COUNTS, [1, 6], min_count=1).latents == (1, 6)


def test_sample_draws_among_the_eligible_only_and_is_seeded() -> None:
    counts = [i % 7 * 10 for i in range(200)]  # every 7th latent dead
    first = select_latents(counts, sample=20, min_count=10, seed=3)
    assert len(first.latents) == 20 and all(counts[i] >= 10 for i in first.latents)
    assert list(first.latents) == sorted(first.latents)
    assert select_latents(counts, sample=20, min_count=10, seed=3) == first
    assert select_latents(counts, sample=20, min_count=10, seed=4).latents != first.latents
    eligible = sum(1 for c in counts if c >= 10)
    assert len(select_latents(counts, sample=10_000, min_count=10).latents) == eligible
    within = select_latents(counts, range(50, 60), sample=3, min_count=10)
    assert set(within.latents) <= set(range(50, 60)) and len(within.latents) == 3


def test_latent_out_of_range_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"latent 8 is out of range: this SAE has 8 latents \(0-7\)"):
        select_latents(COUNTS, [2, 8])


def test_config_refuses_absurd_settings() -> None:
    with pytest.raises(ConfigError, match="--scorers: unknown judge"):
        InterpretConfig(index=Path("x"), scorers=("stats", "judge"))
    with pytest.raises(ConfigError, match="--sample must be positive"):
        InterpretConfig(index=Path("x"), sample=0)
    with pytest.raises(ConfigError, match="--min-count must be at least 1"):
        InterpretConfig(index=Path("x"), min_count=0)
    with pytest.raises(ConfigError, match="--base-url does not apply to --backend local"):
        InterpretConfig(index=Path("x"), base_url="http://x")
    with pytest.raises(ConfigError, match="give the index folder"):
        InterpretConfig()


def test_default_scorers_follow_the_explainer_and_backend() -> None:
    assert InterpretConfig(index=Path("x")).chosen_scorers == ("stats",)
    local = InterpretConfig(index=Path("x"), explainer="llm")
    assert local.chosen_scorers == ("stats",) and local.llm_model == "smollm2-135m"
    online = InterpretConfig(index=Path("x"), explainer="llm", backend="openai")
    assert online.chosen_scorers == ("detection", "stats") and online.llm_model == "gpt-4o-mini"
    assert not InterpretConfig(index=Path("x")).needs_llm
    assert InterpretConfig(index=Path("x"), scorers=("fuzzing", "fuzzing")).chosen_scorers == ("fuzzing",)
