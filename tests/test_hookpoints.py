"""The MLP's input as a hookpoint (`mlp_in:L`, what a transcoder reads) and the output it pairs with."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import LlamaForCausalLM

from saescope.errors import SaescopeError
from saescope.hookpoints import Hookpoint, output_of, resolve_hookpoints
from saescope.hooks import collect_activations


def test_mlp_in_is_the_mlp_module_s_input(tiny_llama_model: LlamaForCausalLM) -> None:
    (short,) = resolve_hookpoints(tiny_llama_model, ["mlp_in:2"])
    assert short == Hookpoint("model.layers.2.mlp:input", "mlp_in:2", "model.layers.2.mlp", "input", 2)
    (long,) = resolve_hookpoints(tiny_llama_model, ["model.layers.2.mlp:input"])
    assert long == short
    (last,) = resolve_hookpoints(tiny_llama_model, ["mlp_in:-1"])
    assert last.alias == "mlp_in:3"


def test_every_layer_with_a_star(tiny_llama_model: LlamaForCausalLM) -> None:
    got = resolve_hookpoints(tiny_llama_model, ["mlp_in:*"])
    assert [h.alias for h in got] == [f"mlp_in:{i}" for i in range(4)]
    assert [h.layer for h in got] == [0, 1, 2, 3]


def test_output_of_pairs_an_input_with_its_module_s_output(tiny_llama_model: LlamaForCausalLM) -> None:
    pairs = [
        (h.alias, output_of(tiny_llama_model, h).alias)
        for h in resolve_hookpoints(tiny_llama_model, ["mlp_in:*"])
    ]
    assert pairs == [(f"mlp_in:{i}", f"mlp_out:{i}") for i in range(4)]
    (resid,) = resolve_hookpoints(tiny_llama_model, ["resid_post:1"])
    with pytest.raises(SaescopeError, match="a transcoder reads a module's input"):
        output_of(tiny_llama_model, resid)


def test_mlp_in_holds_the_post_attention_norm_s_output_and_mlp_out_the_mlp_of_it(
    tiny_llama_model: LlamaForCausalLM,
) -> None:
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    layer = tiny_llama_model.model.layers[1]
    normed: list[torch.Tensor] = []
    handle = layer.post_attention_layernorm.register_forward_hook(lambda _m, _a, out: normed.append(out))
    try:
        with collect_activations(tiny_llama_model, ["mlp_in:1", "mlp_out:1"]) as c, torch.no_grad():
            acts = c.run(input_ids=ids)
    finally:
        handle.remove()
    torch.testing.assert_close(acts["model.layers.1.mlp:input"], normed[0])
    with torch.no_grad():
        torch.testing.assert_close(acts["model.layers.1.mlp"], layer.mlp(acts["model.layers.1.mlp:input"]))


def test_gpt2_mlp_in(tiny_gpt2_model: nn.Module) -> None:
    (hp,) = resolve_hookpoints(tiny_gpt2_model, ["mlp_in:1"])
    assert hp.name == "transformer.h.1.mlp:input" and output_of(tiny_gpt2_model, hp).alias == "mlp_out:1"


def test_unknown_layer_lists_mlp_in(tiny_llama_model: LlamaForCausalLM) -> None:
    with pytest.raises(SaescopeError, match=r"unknown hookpoint 'mlp_in:9'.*mlp_in:0\.\.3"):
        resolve_hookpoints(tiny_llama_model, ["mlp_in:9"])
