"""`saescope effects` against naive computations: every ablation rerun alone over the whole text,
attribution through dense latents spliced in as autograd leaves, the correlation by hand."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor

from saescope.bound import BoundSAE
from saescope.config.steer import EffectsConfig
from saescope.errors import ConfigError, SaescopeError
from saescope.hooks import patch_activations
from saescope.steer import effects as effects_module
from saescope.steer.effects import latent_effects

TEXT = "The cat is on the mat, and Paris is far"


def token_ids(bound: BoundSAE, text: str, target: str | None = None) -> Tensor:
    tok = bound.loaded_model.tokenizer
    ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    if target is not None:
        ids.append(tok(target, add_special_tokens=False)["input_ids"][0])
    return torch.tensor(ids)


def next_logprobs(bound: BoundSAE, seq: Tensor, fn=lambda a: a) -> Tensor:  # type: ignore[no-untyped-def]
    """log p(s_{q+1}) at every q, over the whole text, no cache."""
    model = bound.loaded_model.model
    with torch.no_grad(), patch_activations(model, bound.hookpoint, fn):
        logprobs = model(input_ids=seq[None, :-1], use_cache=False).logits[0].log_softmax(-1)
    return logprobs.gather(-1, seq[1:, None])[:, 0]


def naive_ablation(bound: BoundSAE, seq: Tensor, position: int, latent: int, value: float) -> Tensor:
    def ablate(act: Tensor) -> Tensor:
        out = act.clone()
        out[0, position] -= value * bound.sae.W_dec[latent]
        return out

    return next_logprobs(bound, seq) - next_logprobs(bound, seq, ablate)


def naive_attribution(bound: BoundSAE, seq: Tensor) -> Tensor:
    """[n, d_sae] f · ∂M/∂f with the dense latents f as the leaf, x = decode(f) + error."""
    sae, model = bound.sae, bound.loaded_model.model
    leaves: list[Tensor] = []

    def splice(act: Tensor) -> Tensor:
        x = act.detach()[0]
        f = sae.encode_dense(x).detach().requires_grad_(True)
        leaves.append(f)
        recon = f @ sae.W_dec + sae.b_dec
        return (recon + (x - recon).detach())[None]

    with torch.enable_grad(), patch_activations(model, bound.hookpoint, splice):
        logprobs = model(input_ids=seq[None, :-1], use_cache=False).logits[0].log_softmax(-1)
        logprobs[-1, seq[-1]].backward()
    f = leaves[0]
    assert f.grad is not None
    return (f * f.grad).detach()


@pytest.mark.parametrize("target", [None, " Paris"])
def test_batched_cached_ablations_and_attribution_match_naive_ones(
    bound: BoundSAE, target: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small logits budget forces batches of different sizes, each from its own first position
    monkeypatch.setattr(effects_module, "LOGITS_BUDGET", 275 * 12 * 7)
    result = latent_effects(bound, TEXT, target=target, batch_size=5)
    seq = token_ids(bound, TEXT, target)
    assert result.tokens == [bound.loaded_model.tokenizer.decode([t]) for t in seq.tolist()]
    assert len(result.pairs) > 20 and min(p.position for p in result.pairs) == 1  # BOS left out
    attribution = naive_attribution(bound, seq)
    for pair in result.pairs[::3]:
        expected = naive_ablation(bound, seq, pair.position, pair.latent, pair.activation)[pair.position :]
        torch.testing.assert_close(torch.tensor(pair.later), expected, rtol=0, atol=2e-5)
        assert pair.ablation == pair.later[-1]
    got = torch.tensor([p.attribution for p in result.pairs])
    want = torch.stack([attribution[p.position, p.latent] for p in result.pairs])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_correlation_ranking_and_json(bound: BoundSAE) -> None:
    result = latent_effects(bound, TEXT, top=4)
    pairs = torch.tensor([[p.ablation, p.attribution] for p in result.pairs], dtype=torch.float64)
    assert result.correlation == pytest.approx(float(torch.corrcoef(pairs.T)[0, 1]), abs=1e-9)
    assert result.correlation is not None and result.correlation > 0.5  # first order holds for small edits
    assert [abs(p.ablation) for p in result.top] == sorted(
        (abs(p.ablation) for p in result.pairs), reverse=True
    )[:4]
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["top"][0]["token"] == result.tokens[result.top[0].position]
    assert len(doc["pairs"]) == len(result.pairs) and "ablation" in doc["seconds"]
    assert "correlation of ablation and attribution" in result.render()
    # the columns say their unit and sign, in the terminal and the JSON
    assert "in nats (positive: the latent raises the target's probability)" in result.render()
    assert doc["units"] == result.render().splitlines()[3]
    lone = result._replace(correlation=None)
    assert "n/a" not in lone.render() and "not measured (fewer than two pairs" in lone.render()


def test_bad_texts_are_refused(bound: BoundSAE) -> None:
    with pytest.raises(SaescopeError, match="more than --max-tokens 5"):
        latent_effects(bound, TEXT, max_tokens=5)
    with pytest.raises(SaescopeError, match="one token long"):
        latent_effects(bound, "a", prepend_bos=False)
    with pytest.raises(ConfigError, match="non-empty --text"):
        EffectsConfig(sae=bound.path, text="  ")
