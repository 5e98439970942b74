"""The hand-written backward pass of the replacement model gives the same edges and constants as
torch's autograd through a forward run (the reference), on tiny random Llamas with grouped-query,
multi-query and multi-head attention, attention biases, the transcoders' skip path, and targets at
every layer and several positions."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from saescope.circuit.attribution import (
    Sources,
    Targets,
    attribution_rows,
    autograd_rows,
    logit_targets,
    prepare,
)
from saescope.circuit.frozen import LinearReplacement, freeze_prompt
from saescope.circuit.latents import active_transcoder_latents
from tests.builders import tiny_tokenizer
from tests.circuit.builders import random_transcoders


def llama(kv_heads: int, attention_bias: bool, layers: int = 3) -> LlamaForCausalLM:
    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        attention_bias=attention_bias,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(3)
    model = LlamaForCausalLM(config).eval()
    if attention_bias:  # random-init biases are zero: make them matter
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.v_proj.bias.normal_(0, 0.5)
                layer.self_attn.o_proj.bias.normal_(0, 0.5)
    return model


def replacement(model: Any, ids: list[int], skip: bool) -> tuple[LinearReplacement, Sources]:
    tcs = random_transcoders(len(model.model.layers), skip=skip, seed=1)
    with torch.no_grad():  # decoder rows and a skip path large enough that a wrong transpose would show
        for tc in tcs.values():
            tc.W_dec.normal_(0, 0.3)
            if skip:
                tc.W_skip.normal_(0, 0.2)
    frozen = freeze_prompt(model, ids)
    latents, errors = active_transcoder_latents(frozen, tcs)
    linear = LinearReplacement(frozen, model, [(t.b_dec, t.W_skip) for t in tcs.values()])
    return linear, Sources(latents, errors, frozen.embeddings)


@pytest.mark.parametrize(
    ("kv_heads", "attention_bias", "skip"),
    [(2, False, True), (2, True, False), (1, False, True), (4, True, True)],
)
def test_hand_backward_equals_autograd(kv_heads: int, attention_bias: bool, skip: bool) -> None:
    model = llama(kv_heads, attention_bias)
    ids = [1, 7, 12, 25, 31, 9, 44, 5]
    linear, sources = replacement(model, ids, skip)
    latents = sources.latents
    # latent targets at every layer and position, mixed with logits, in no particular order
    chosen = torch.randperm(latents.size, generator=torch.Generator().manual_seed(0))[:40]
    logits = logit_targets(linear.frozen.logits, linear.unembed, None, 5, 0.99)
    n_logits, n_layers = logits.token_ids.shape[0], len(model.model.layers)
    targets = Targets(
        torch.cat([latents.layers[chosen], torch.full((n_logits,), n_layers)]),
        torch.cat([latents.positions[chosen], torch.full((n_logits,), len(ids) - 1)]),
        torch.cat([latents.encoder[chosen], logits.vectors]),
    )
    assert set(targets.layers.tolist()) == set(range(n_layers + 1))
    assert len(set(targets.positions.tolist())) == len(ids)
    fast = attribution_rows(linear, sources, targets, prepare(linear, sources))
    naive = autograd_rows(linear, sources, targets)
    errors_end = latents.size + n_layers * len(ids)
    for part in (slice(0, latents.size), slice(latents.size, errors_end), slice(errors_end, None)):
        scale = float(naive.edges[:, part].abs().max())  # latents, errors, embeddings each on their scale
        torch.testing.assert_close(fast.edges[:, part], naive.edges[:, part], rtol=1e-5, atol=1e-5 * scale)
        assert int((naive.edges[:, part].abs() > 1e-2 * scale).sum()) > 20  # the comparison covers real edges
    torch.testing.assert_close(fast.constants, naive.constants, rtol=1e-5, atol=1e-5)
    assert float(naive.constants.abs().max()) > 1e-2
    # edges crossing positions (through attention) are among them: latents before the last position
    to_logits = naive.edges[-n_logits:, : latents.size]
    earlier = latents.positions < len(ids) - 1
    assert float(to_logits[:, earlier].abs().max()) > 1e-3 * float(to_logits.abs().max())
