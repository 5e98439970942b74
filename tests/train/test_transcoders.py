"""`saescope train --arch transcoder`: every layer's transcoder from ONE forward pass per batch (on
the fly) or from a capture's sibling stores of MLP inputs and outputs; each saved transcoder takes
the raw MLP input and gives the raw MLP output, and the folder is a transcoder set."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from saescope import positions
from saescope.capture import capture
from saescope.config import CaptureConfig, EvalConfig, TrainConfig
from saescope.errors import ConfigError
from saescope.evals import evaluate
from saescope.hooks import collect_activations
from saescope.sae.base import fvu
from saescope.sae.transcoder import load_transcoder_set
from saescope.train import trainer
from tests.builders import tiny_tokenizer

SETTINGS: dict[str, Any] = {
    "architecture": "transcoder",
    "context_len": 32,
    "latents": (64,),
    "k": (8,),
    "batch_size": 64,
    "tokens": 64 * 40,
    "lr": 1e-2,
    "warmup_steps": 2,
    "device": "cpu",
    "kernel": "torch",
    "checkpoint_every": 0,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tc_corpus") / "corpus.txt"
    path.write_text(
        "\n".join(f"The cat {i} is on the mat, and Paris is the capital number {i * 7}." for i in range(300))
    )
    return path


def mlp_pairs(model_dir: Path, corpus: Path, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's input and output at `layer` on the corpus's first lines, computed independently."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lines = corpus.read_text().splitlines()[:8]
    ids = torch.tensor([tiny_tokenizer()(line)["input_ids"][:16] for line in lines])
    with collect_activations(model, [f"mlp_in:{layer}", f"mlp_out:{layer}"]) as c, torch.no_grad():
        acts = c.run(input_ids=ids)
    x = acts[f"model.layers.{layer}.mlp:input"].reshape(-1, 32)
    return x, acts[f"model.layers.{layer}.mlp"].reshape(-1, 32)


def test_every_layer_trains_from_one_forward_pass_and_is_a_set(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real = positions.iter_positions

    def spy(loaded: Any, hookpoints: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        calls.append([h.alias for h in hookpoints])
        return real(loaded, hookpoints, *args, **kwargs)

    monkeypatch.setattr(positions, "iter_positions", spy)
    cfg = TrainConfig(model=str(tiny_model_dir), dataset=str(corpus), out=tmp_path / "tc", **SETTINGS)
    assert cfg.hookpoint == "mlp_in:*"  # a transcoder's default: every layer
    result = trainer.train(cfg)
    # One pass over the model feeds all four layers' transcoders: every read asked for all eight
    # hookpoints at once, in firing order.
    expected = [a for i in range(4) for a in (f"mlp_in:{i}", f"mlp_out:{i}")]
    assert calls and all(c == expected for c in calls)
    assert [r.path.name for r in result.saes] == [f"mlp_in_{i}" for i in range(4)]

    tcs = load_transcoder_set(tmp_path / "tc")
    assert tcs.layers == (0, 1, 2, 3) and tcs.model == str(tiny_model_dir)
    tc = tcs.at(2)
    assert (tc.cfg.hookpoint, tc.cfg.output_hookpoint) == ("model.layers.2.mlp:input", "model.layers.2.mlp")
    assert tc.cfg.output_hookpoint_alias == "mlp_out:2" and tc.d_out == 32
    norm = tc.cfg.normalization
    assert norm["folded"] and norm["scale"] != pytest.approx(norm["output_scale"])
    # The saved transcoder takes the raw MLP input and predicts the raw MLP output, better than its mean.
    x, y = mlp_pairs(tiny_model_dir, corpus, 2)
    with torch.no_grad():
        assert float(fvu(y, tc(x).recon)) < 0.9


def test_a_capture_s_sibling_stores_train_the_same_pairs(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    acts = tmp_path / "run" / "acts"
    capture(
        CaptureConfig(
            model=str(tiny_model_dir),
            dataset=str(corpus),
            hookpoints=("mlp_in:1", "mlp_out:1", "resid_post:1"),
            context_len=32,
            tokens=2000,
            store_dtype="float32",
            device="cpu",
            out=acts,
        )
    )
    cfg = TrainConfig(acts=acts, **{**SETTINGS, "tokens": 64 * 20})
    assert cfg.output == tmp_path / "run" / "transcoders"
    (run,) = trainer.train(cfg).saes
    tc = load_transcoder_set(cfg.output).at(1)
    assert run.path == cfg.output / "mlp_in_1" and tc.cfg.output_hookpoint_alias == "mlp_out:1"
    x, y = mlp_pairs(tiny_model_dir, corpus, 1)
    with torch.no_grad():
        assert float(fvu(y, tc(x).recon)) < 0.9
    # The same sibling stores as SAEs: one per store.
    saes = trainer.train(dataclasses.replace(cfg, architecture="topk", out=tmp_path / "saes")).saes
    assert sorted(r.path.name for r in saes) == ["mlp_in_1", "mlp_out_1", "resid_post_1"]


def test_skip_path_is_trained_and_saved(tiny_model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        dataset=str(corpus),
        hookpoint="mlp_in:0",
        out=tmp_path / "tc",
        arch_params={"transcoder_skip": True},
        **{**SETTINGS, "tokens": 64 * 10},
    )
    trainer.train(cfg)
    tc = load_transcoder_set(tmp_path / "tc").at(0)
    assert tc.W_skip is not None and float(tc.W_skip.detach().abs().sum()) > 0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"hookpoint": "resid_post:1"}, "reads a module's input"),
        ({"hookpoint": "mlp_out:*"}, "reads a module's input"),
    ],
)
def test_a_transcoder_of_a_module_s_output_is_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{**SETTINGS, **changes})


def test_a_store_without_the_outputs_is_refused(tiny_model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    acts = tmp_path / "acts"
    capture(
        CaptureConfig(
            model=str(tiny_model_dir),
            dataset=str(corpus),
            hookpoints=("mlp_in:1",),
            context_len=32,
            tokens=300,
            device="cpu",
            out=acts,
        )
    )
    with pytest.raises(ConfigError, match=r"no activations of model\.layers\.1\.mlp to pair with mlp_in:1"):
        trainer.train(TrainConfig(acts=acts, **SETTINGS))


def test_eval_scores_the_mlp_output_one_layer_and_every_layer_replaced(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        dataset=str(corpus),
        hookpoint="mlp_in:*",
        out=tmp_path / "tc",
        **{**SETTINGS, "tokens": 64 * 20},
    )
    trainer.train(cfg)
    result = evaluate(EvalConfig(saes=(tmp_path / "tc",), tokens=200, device="cpu", batch_size=4))
    *layers, every = result.evals
    assert [e.path.name for e in layers] == [f"mlp_in_{i}" for i in range(4)]
    one = layers[1].metrics
    assert one["settings"]["reconstructs"] == "mlp_out:1"
    # FVU is of the MLP's output: recomputed here from the model's own MLP output on the same text.
    assert 0 < one["reconstruction"]["fvu"] < 1.5
    d = one["downstream"]
    assert d["ce_spliced"] != d["ce_clean"] and d["kl_spliced"] > 0
    assert d["ce_zero_ablation"] != d["ce_clean"]  # the MLP's output zeroed, not the residual
    all_d = every.metrics["downstream"]
    assert every.metrics["sae"]["layers"] == [f"mlp_in:{i}" for i in range(4)]
    # Every MLP replaced at once moves the logits more than one does.
    assert all_d["kl_spliced"] > max(e.metrics["downstream"]["kl_spliced"] for e in layers) * 0.999
    assert all_d["ce_clean"] == pytest.approx(d["ce_clean"], rel=0.2)
    assert math.isnan(all_d["ce_mean_ablation"])  # not measured for every MLP, and said so
    assert (tmp_path / "tc" / "eval.json").is_file()
    assert "every MLP (4 layers)" in result.render()
