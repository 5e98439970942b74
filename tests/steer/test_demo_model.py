"""On the real embedded model and the demo's trained SAE (slow; skipped without `make demo`):
steering a token-like latent beats both controls on its token, and cached and uncached greedy
generation agree token for token, steered, in fp32.

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

SAE = Path(os.environ.get("SAESCOPE_DEMO_SAE", "runs/demo/sae"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SAE / "sae.safetensors").exists(), reason=f"no trained demo SAE at {SAE}"),
]


@pytest.fixture(scope="module")
def demo() -> BoundSAE:
    torch.set_num_threads(2)
    return bind_sae(SAE, settings=ModelSettings(device="cpu", model_dtype="float32"))


def test_a_token_latent_beats_both_controls(demo: BoundSAE) -> None:
    result = demo_steering(SAE, demo.loaded_model)
    steered = result.effect(result.steered)
    controls = [result.effect(v) for v in result.controls]
    assert steered is not None and None not in controls
    assert all(steered > c for c in controls if c is not None), result.render()
    assert steered > 1.0, result.render()


def test_cached_and_uncached_greedy_tokens_agree_when_steered(demo: BoundSAE) -> None:
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]
    items = [Intervention(11, "clamp", 20.0, where="prompt"), Intervention(500, "add", 6.0)]
    sampling = Sampling(max_new_tokens=12)
    cached = generate_steered(demo, prompts, items, sampling)
    uncached = generate_steered(demo, prompts, items, sampling, use_cache=False)
    assert [c.token_ids for c in cached.completions] == [c.token_ids for c in uncached.completions]
