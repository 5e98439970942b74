"""Direct logit effects through the real final norm: RMSNorm's gain w, Gemma's (1 + w), GPT-2's
LayerNorm; and one maths for the index's logit tables and steering's target tokens."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GemmaConfig, GemmaForCausalLM

from saescope.index.decoder import logit_effects
from saescope.readout import direct_logit_blocks, direct_logits, final_norm
from saescope.steer.targets import top_logit_tokens
from tests.builders import random_topk_sae, tiny_gpt2, tiny_llama


def ranking(scores: torch.Tensor) -> list[int]:
    return scores.argsort(descending=True, stable=True)[:20].tolist()


def randomize_gain(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    norm = final_norm(model)
    assert norm is not None
    with torch.no_grad():
        norm.weight.copy_(torch.randn(norm.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return norm.weight.detach().double()


def test_rmsnorm_gain_scales_the_direction() -> None:
    model = tiny_llama()
    gain = randomize_gain(model)
    unembed = model.get_output_embeddings().weight.detach().double()
    d = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    got = direct_logits(model, d)
    for row in range(3):
        naive = unembed @ (gain * d[row].double())
        assert ranking(got[row]) == ranking(naive)
        ratio = got[row].double() / naive  # one positive factor per direction (1 / RMS of d)
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-3) and float(ratio[0]) > 0


def test_gemma_norm_applies_one_plus_its_weight() -> None:
    config = GemmaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
    )
    torch.manual_seed(0)
    model = GemmaForCausalLM(config).eval()
    w = randomize_gain(model, seed=2) * 0.5
    with torch.no_grad():
        final_norm(model).weight.copy_(w)  # type: ignore[union-attr]
    unembed = model.get_output_embeddings().weight.detach().double()
    d = torch.randn(32, generator=torch.Generator().manual_seed(3)).double()
    got = direct_logits(model, d[None].float())[0]
    assert ranking(got) == ranking(unembed @ ((1 + w) * d))
    assert ranking(got) != ranking(unembed @ (w * d))  # γ ⊙ d, the maths that missed Gemma's gain


def test_layernorm_centres_the_direction_and_drops_its_bias() -> None:
    model = tiny_gpt2()
    norm = final_norm(model)
    assert norm is not None
    with torch.no_grad():
        norm.bias.normal_()  # a bias must not shift the effect of a direction
    unembed = model.get_output_embeddings().weight.detach().double()
    d = torch.randn(32, generator=torch.Generator().manual_seed(4)).double()
    naive = unembed @ (norm.weight.detach().double() * (d - d.mean()))
    assert ranking(direct_logits(model, d[None].float())[0]) == ranking(naive)


def test_blocks_cover_every_direction_in_order() -> None:
    model = tiny_llama()
    d = torch.randn(7, 32, generator=torch.Generator().manual_seed(5))
    blocks = list(direct_logit_blocks(model, d, block=3))
    assert [len(b) for b in blocks] == [3, 3, 1]
    assert torch.allclose(torch.cat(blocks), direct_logits(model, d), atol=1e-6)


def test_steering_targets_are_the_tokens_the_index_names(tmp_path: Path) -> None:
    model = tiny_llama()
    randomize_gain(model)
    sae = random_topk_sae(tmp_path, 16, 4, seed=0)
    table = logit_effects(sae.W_dec.detach(), model, 5)  # what `saescope index` stores
    for latent in (0, 5):
        assert top_logit_tokens(model, sae, [latent], 5) == table.top_ids[latent].tolist()
