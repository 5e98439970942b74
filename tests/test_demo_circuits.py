"""`saescope demo --circuits`: its settings (which plain-demo options apply, the defaults' prompt and
target), and its stages chained on a tiny random model — transcoders trained at every layer, their
evaluation, the graph with its check, files where the closing lines say — run twice (the second
run reuses the transcoders). The real run on SmolLM2-135M takes minutes and is not a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saescope import cli
from saescope.config import DemoConfig
from saescope.demo_circuits import CIRCUITS, CIRCUITS_QUICK, circuits_demo, circuits_plan_of
from saescope.errors import ConfigError
from tests.builders import one_thread, save_tiny_model


def test_the_circuits_plan_takes_the_settings_given_and_refuses_the_plain_demo_s() -> None:
    assert circuits_plan_of(DemoConfig(circuits=True)) == CIRCUITS
    assert circuits_plan_of(DemoConfig(circuits=True, quick=True)) == CIRCUITS_QUICK
    plan = circuits_plan_of(DemoConfig(circuits=True, latents=96, k=4, prompt="a(b", target=")"))
    assert (plan.latents, plan.k, plan.prompt, plan.target) == (96, 4, "a(b", ")")
    with pytest.raises(ConfigError, match="--index-tokens, --explain do"):
        circuits_plan_of(DemoConfig(circuits=True, index_tokens=4096, explain=3))
    with pytest.raises(ConfigError, match=r"--k 600 is larger than the transcoder width \(576"):
        circuits_plan_of(DemoConfig(circuits=True, quick=True, k=600))


def test_a_graph_prompt_without_circuits_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--prompt", "x = f(g(y"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "add --circuits or drop them" in err


@pytest.mark.slow
def test_the_stages_chain_on_a_tiny_model_and_a_rerun_reuses_the_transcoders(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"The cat {i} is on the mat, and Paris is the capital number {i * 7}." for i in range(400))
    )
    plan = CIRCUITS_QUICK._replace(
        out=tmp_path / "run",
        model=str(model),
        dataset=str(corpus),
        tokens=2048,
        epochs=2.0,
        latents=64,
        k=4,
        batch_size=256,
        eval_tokens=128,
        prompt="the cat is on the mat in",
        target=" the",
        max_feature_nodes=30,
    )
    with one_thread():
        first = circuits_demo(plan)
    assert first.trained is not None and len(first.trained) == len(first.layers) == 4
    summary = first.render()
    assert "4 transcoders (mlp_in:L → mlp_out:L), 64 latents, k=4, trained together (2 epochs)" in summary
    assert "every MLP replaced at once: CE " in summary and "CE-loss recovered" in summary
    assert "replacement score" in summary and "validation against the real model" in summary
    assert f"serve {plan.out}" in summary and "/graphs/demo" in summary
    graph = json.loads((plan.out / "circuits" / "demo.json").read_text())
    assert graph["prompt"] == plan.prompt and len(graph["validation"]["checks"]) == 20
    assert json.loads(json.dumps(first.to_json()))["graph"]["prompt"] == plan.prompt
    weights = {p: p.read_bytes() for p in sorted((plan.out / "transcoders").glob("*/sae.safetensors"))}
    assert len(weights) == 4

    with one_thread():
        again = circuits_demo(plan)
    assert again.trained is None and "already held them; reused them" in again.render()
    assert {p: p.read_bytes() for p in weights} == weights
    with pytest.raises(ConfigError, match="k=4, not --latents 64 --k 8"):
        circuits_demo(plan._replace(k=8))
