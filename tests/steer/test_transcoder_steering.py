"""Steering, effects, index and dashboard of a transcoder's latents on the tiny Llama: a transcoder
reads `mlp_in:1` and its decoder writes `mlp_out:1`, so an edit of its latents changes the MLP's
output by exactly the decoder rows (never its input), clamps read the latent from the input, a
splice is the whole reconstruction (skip path included), ablations in `effects` act on the output,
and `index`, `dashboard` and `steer` run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from saescope import cli
from saescope.bound import BoundSAE
from saescope.config.dashboard import DashboardConfig
from saescope.config.index import IndexConfig
from saescope.dashboard import dashboard
from saescope.hooks import collect_activations, patch_activations
from saescope.index.build import build_index
from saescope.index.reader import Index
from saescope.readout import direct_logits
from saescope.sae.formats import save_sae
from saescope.steer.edit import Steering, current_values
from saescope.steer.effects import latent_effects
from saescope.steer.generate import applying
from saescope.steer.interventions import Intervention
from saescope.steer.places import PromptBatch, places_for
from saescope.steer.steering import prompt_batch, steering_patch
from tests.builders import tiny_gpt2, tiny_tokenizer
from tests.web.builders import write_corpus

from .builders import bind, random_transcoder

PROMPTS = ["The cat is on the mat", "Paris is a city"]


@pytest.fixture(scope="module")
def tc_bound(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BoundSAE:
    """A random transcoder of the MLP of layer 1 (with a skip path), bound. Read-only."""
    return bind(random_transcoder(tiny_model_dir), tmp_path_factory.mktemp("tc") / "transcoder")


def run_sites(bound: BoundSAE, steering: Steering | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(activation at mlp_in:1, at mlp_out:1, [B, T] columns the steering covers) on PROMPTS, with
    `steering` applied as generation applies it."""
    batch: PromptBatch = prompt_batch(bound, PROMPTS)
    model, mask = bound.loaded_model.model, batch.attention_mask
    covered = torch.zeros_like(mask, dtype=torch.bool)
    patch = None
    if steering is not None:
        places = places_for(steering.interventions, batch, bound.loaded_model.tokenizer)
        covered = places.window(0, mask.shape[1]).any(0)
        patch = steering_patch(steering, places, bound)
    hookpoints = [bound.hookpoint, bound.writes]
    with torch.no_grad(), applying(model, patch, 0), collect_activations(model, hookpoints) as collector:
        acts = collector.run(
            input_ids=batch.input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0)
        )
    return acts[bound.hookpoint.name].float(), acts[bound.writes.name].float(), covered


def test_a_transcoder_is_bound_to_write_at_its_mlp_output(tc_bound: BoundSAE) -> None:
    assert tc_bound.hookpoint.alias == "mlp_in:1"
    assert tc_bound.writes.alias == "mlp_out:1" and tc_bound.writes.name == "model.layers.1.mlp"


def test_adding_a_latent_changes_the_mlp_output_by_its_decoder_row_not_the_input(tc_bound: BoundSAE) -> None:
    # Before the fix the decoder row was added at mlp_in:1 (where the transcoder reads): the input
    # changed and the output moved by MLP(x + d) - MLP(x), not by d.
    read, written, _ = run_sites(tc_bound)
    steering = Steering(tc_bound.sae, (Intervention(5, "add", 2.0),))
    read2, written2, covered = run_sites(tc_bound, steering)
    assert covered.any() and torch.equal(read2, read)
    expected = torch.where(covered[..., None], 2.0 * tc_bound.sae.W_dec[5].detach(), 0.0)
    torch.testing.assert_close(written2 - written, expected, atol=1e-8, rtol=1e-4)


def test_a_clamp_reads_the_latent_from_the_input_and_a_splice_is_the_whole_reconstruction(
    tc_bound: BoundSAE,
) -> None:
    sae = tc_bound.sae
    read, written, _ = run_sites(tc_bound)
    values, _, _ = current_values(sae, read.reshape(-1, sae.d_in), list(range(sae.d_sae)))
    latent = int(values.sum(0).argmax())  # the latent that fires most on the prompts
    clamp = Steering(sae, (Intervention(latent, "clamp", 0.0),))
    _, clamped, covered = run_sites(tc_bound, clamp)
    now = values[:, latent].reshape(covered.shape)
    expected = torch.where(covered, -now, 0.0)[..., None] * sae.W_dec[latent].detach()
    assert bool((now[covered] > 0).any())
    torch.testing.assert_close(clamped - written, expected, atol=1e-8, rtol=1e-4)
    spliced = Steering(sae, (Intervention(latent, "add", 0.0),), splice=True)
    _, replaced, covered = run_sites(tc_bound, spliced)
    with torch.no_grad():
        recon = sae(read).recon
    torch.testing.assert_close(replaced[covered], recon[covered], atol=1e-8, rtol=1e-4)
    assert not torch.allclose(replaced[covered], written[covered], atol=1e-6)


def test_effects_ablate_a_transcoder_latent_at_the_mlp_output(tc_bound: BoundSAE) -> None:
    result = latent_effects(tc_bound, "The cat is on the mat", top=3)
    pair = max(result.pairs, key=lambda p: abs(p.ablation))
    model, tokenizer = tc_bound.loaded_model.model, tc_bound.loaded_model.tokenizer
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer("The cat is on the mat")["input_ids"]]])
    assert len(result.tokens) == ids.shape[1]
    change = -pair.activation * tc_bound.sae.W_dec[pair.latent].detach()

    def ablate(act: Tensor) -> Tensor:
        out = act.clone()
        out[0, pair.position] += change.to(act.dtype)
        return out

    with torch.no_grad():
        clean = model(input_ids=ids[:, :-1]).logits[0, -1].float().log_softmax(-1)
        with patch_activations(model, "mlp_out:1", ablate):
            ablated = model(input_ids=ids[:, :-1]).logits[0, -1].float().log_softmax(-1)
    target = int(ids[0, -1])
    assert pair.ablation == pytest.approx(float(clean[target] - ablated[target]), abs=1e-5)


def test_index_dashboard_and_steer_run_end_to_end_on_a_transcoder(
    tc_bound: BoundSAE, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    index = tmp_path / "run" / "index"
    settings = {"dataset": str(corpus), "device": "cpu", "tokens": 300, "context_len": 24}
    build_index(IndexConfig(saes=(tc_bound.path,), out=(index,), batch_size=4, map="pca", **settings))
    opened = Index(index)
    assert opened.d_sae == tc_bound.sae.d_sae and opened.header.hookpoint == tc_bound.hookpoint.name
    fired = [i for i in range(opened.d_sae) if opened.stats_of(i).get("count", 0)]
    assert fired, "no transcoder latent fired on the indexed text"
    # logit columns: the decoder row read out where it is written (mlp_out feeds the residual stream)
    effects = opened.logit_effects(fired[0], n=3)
    own = direct_logits(tc_bound.loaded_model.model, tc_bound.sae.W_dec[fired[:1]].detach())[0]
    assert [t.token_id for t in effects.top] == own.topk(3).indices.tolist()
    pages = dashboard(
        DashboardConfig(index=index, out=tmp_path / "pages", workers=1, latents=tuple(fired[:2]))
    )
    assert pages.pages == 2 and all((tmp_path / "pages").rglob("*.html"))
    argv = ["steer", str(tc_bound.path), "--steer", f"{fired[0]}:add:2", "--prompt", "The cat"]
    assert cli.main([*argv, "--max-new-tokens", "4", "--stats-tokens", "200", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (
        len(document["steered"]) == 1 and document["effects"]["steered"]["next_token"]["unit"] == "positions"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"hookpoint": "model.layers.9.mlp:input", "hookpoint_alias": "mlp_in:9"},
            "its hookpoint 'mlp_in:9' is not in",
        ),
        (
            {"output_hookpoint": "model.layers.1.nowhere", "output_hookpoint_alias": ""},
            "its output hookpoint 'model.layers.1.nowhere' is not one module of",
        ),
        ({"d_out": 16}, "writes width 16, but mlp_out:1"),
    ],
)
def test_a_transcoder_that_does_not_fit_its_model_is_one_line(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    message: str,
) -> None:
    tc = random_transcoder(tiny_model_dir)
    if "d_out" in changes:
        wide = random_transcoder(tiny_model_dir)
        tc = type(wide)(wide.cfg.with_updates(**changes))
    else:
        tc.cfg = tc.cfg.with_updates(**changes)
    save_sae(tc, tmp_path / "tc")
    argv = ["steer", str(tmp_path / "tc"), "--steer", "0:add:1", "--prompt", "The cat"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_transcoder_of_another_width_or_model_is_refused(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    narrow = random_transcoder(tiny_model_dir)
    narrow = type(narrow)(narrow.cfg.with_updates(d_in=16))
    save_sae(narrow, tmp_path / "narrow")
    assert cli.main(["steer", str(tmp_path / "narrow"), "--steer", "0:add:1", "--prompt", "The cat"]) == 2
    err = capsys.readouterr().err.strip()
    assert "reads width 16, but mlp_in:1" in err and len(err.splitlines()) == 1
    save_sae(random_transcoder(tiny_model_dir), tmp_path / "tc")
    other = tmp_path / "tiny-gpt2"
    tiny_gpt2().save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    argv = [
        "steer",
        str(tmp_path / "tc"),
        "--model",
        str(other),
        "--steer",
        "0:add:1",
        "--prompt",
        "x",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "was trained on" in err and "--force" in err and len(err.splitlines()) == 1
