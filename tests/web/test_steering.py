"""The playground's streamed generations equal the steering package's own, variant by variant, and
its effects are those `saescope steer` computes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from saescope.bound import BoundSAE, bind_sae
from saescope.errors import SaescopeError
from saescope.steer import Intervention, Sampling, firing_stats, generate_steered
from saescope.steer.experiment import run_steering
from saescope.steer.generate import generate
from saescope.steer.steering import patch_for, prompt_batch
from saescope.steer.variants import SteerOptions
from saescope.web.steering import SteerPlan, close_variants, start_variants, stream_events
from saescope.web.worker import ModelWorker
from tests.builders import one_thread

PROMPTS = ("The cat is", "Paris <b>&</b>")
EDITS = (Intervention(3, "add", 6.0), Intervention(7, "clamp", 2.0, where="prompt"))
SAMPLING = Sampling(max_new_tokens=7, temperature=0.8, top_p=0.9, seed=3)


@pytest.fixture(scope="module")
def bound(run: Path) -> BoundSAE:
    return bind_sae(run / "sae")


def streamed(bound: BoundSAE, plan: SteerPlan, stats: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    worker = ModelWorker(lambda: bound, queue=0)
    session = start_variants(bound, plan, stats)

    async def collect() -> list[dict[str, Any]]:
        return [e async for e in stream_events(worker, session)]

    try:
        return asyncio.run(collect()), session
    finally:
        close_variants(bound, session)
        worker.close()


def test_streamed_variants_equal_the_steering_package(bound: BoundSAE, run: Path) -> None:
    stats = firing_stats(bound, run / "index")
    plan = SteerPlan(PROMPTS, EDITS, SAMPLING, controls=True, chat=False, targets=(" cat",))
    with one_thread():
        events, session = streamed(bound, plan, stats)
        expected = {
            "unsteered": generate_steered(bound, list(PROMPTS), [], SAMPLING),
            "steered": generate_steered(bound, list(PROMPTS), list(EDITS), SAMPLING),
        }
        batch = prompt_batch(bound, list(PROMPTS))
        for name in ("random latent", "random direction"):
            steering = session.plan.spec(name).steering
            assert steering is not None
            expected[name] = generate(bound.loaded_model, batch, SAMPLING, patch_for(bound, steering, batch))
        options = SteerOptions(sampling=SAMPLING, controls=True, target=(" cat",))
        direct = run_steering(bound, list(PROMPTS), list(EDITS), options, stats).to_json()
    done = events[-1]
    assert done["event"] == "done" and [v["variant"] for v in done["variants"]] == list(expected)
    for variant in done["variants"]:
        want = [c.text for c in expected[variant["variant"]].completions]
        assert variant["completions"] == want, variant["variant"]
        pieces = ["", ""]
        for e in events[:-1]:
            if e["variant"] == variant["variant"]:
                pieces[e["row"]] += e["text"]
        assert pieces == want  # the token events add up to the completions
    others = direct["controls"]["random_latent"]["interventions"]
    assert done["variants"][2]["interventions"] == others
    # the effects are the command line's, computed by the same code
    assert done["targets"] == direct["targets"] and done["measures"] == direct["measures"]
    assert done["effects"] == direct["effects"]


def test_variants_take_turns(bound: BoundSAE) -> None:
    plan = SteerPlan(
        ("The cat",), (Intervention(1, "ablate"),), Sampling(max_new_tokens=3), controls=False, chat=False
    )
    events, _ = streamed(bound, plan, None)
    order = [(e["step"], e["variant"]) for e in events[:-1]]
    assert events[-1]["effects"]["steered"]["next_token"]["unit"] == "positions"
    assert order == sorted(order, key=lambda se: (se[0], se[1] != "unsteered"))


def test_bad_plans_fail_before_anything_is_streamed(bound: BoundSAE) -> None:
    far = SteerPlan(("The cat",), (Intervention(999, "add", 1.0),), Sampling(), controls=False, chat=False)
    with pytest.raises(SaescopeError, match="latent 999 is out of range"):
        start_variants(bound, far, None)
    long = SteerPlan(
        ("The cat",),
        (Intervention(1, "add", 1.0),),
        Sampling(max_new_tokens=10_000),
        controls=False,
        chat=False,
    )
    with pytest.raises(SaescopeError, match="exceeds the model's context"):
        start_variants(bound, long, None)
