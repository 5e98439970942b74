"""On the real embedded model and the demo's trained SAE (slow; skipped without `make demo`):
the demo's showcase steers a word-like latent at a readable strength and beats both controls on its
word's next-token effect, and cached and uncached greedy generation agree token for token, steered,
in fp32.

`SAESCOPE_DEMO_SAE` may name another trained demo SAE than runs/demo/sae.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from saescope.bound import BoundSAE, bind_sae
from saescope.config import ModelSettings
from saescope.steer.generate import Sampling
from saescope.steer.interventions import Intervention
from saescope.steer.showcase import demo_steering
from saescope.steer.steering import generate_steered
from saescope.tokens import is_whole_word

SAE = Path(os.environ.get("SAESCOPE_DEMO_SAE", "runs/demo/sae"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SAE / "sae.safetensors").exists(), reason=f"no trained demo SAE at {SAE}"),
]


@pytest.fixture(scope="module")
def demo() -> BoundSAE:
    torch.set_num_threads(2)
    return bind_sae(SAE, settings=ModelSettings(device="cpu", model_dtype="float32"))


def test_the_showcase_latent_beats_both_controls_and_stays_readable(demo: BoundSAE) -> None:
    result = demo_steering(SAE, demo.loaded_model)
    effects = [v.effects for v in (result.steered, *result.controls)]
    assert all(e is not None and e.next_token.value is not None for e in effects), result.render()
    steered, *controls = [
        e.next_token.value for e in effects if e is not None and e.next_token.value is not None
    ]
    assert all(steered > c for c in controls) and steered > 0.5, result.render()
    assert result.sweep is not None and result.sweep.unsteered.perplexity.value is not None
    assert all(is_whole_word(demo.loaded_model.tokenizer, t) for t in result.targets.ids)


def test_cached_and_uncached_greedy_tokens_agree_when_steered(demo: BoundSAE) -> None:
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]
    items = [Intervention(11, "clamp", 20.0, where="prompt"), Intervention(500, "add", 6.0)]
    sampling = Sampling(max_new_tokens=12)
    cached = generate_steered(demo, prompts, items, sampling)
    uncached = generate_steered(demo, prompts, items, sampling, use_cache=False)
    assert [c.token_ids for c in cached.completions] == [c.token_ids for c in uncached.completions]
