from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn
from transformers import LlamaForCausalLM

from saescope.errors import SaescopeError
from saescope.hookpoints import resolve_hookpoints
from saescope.hooks import collect_activations, patch_activations

IDS = torch.tensor([[272, 83, 257, 261, 263, 265, 258, 13], [272, 76, 260, 13, 271, 220, 127, 102]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]])


def hook_counts(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def manual_output(model: nn.Module, path: str, **inputs: Any) -> Tensor:
    """What a plain forward hook on `path` sees (first element of a tuple), in a full forward pass."""
    seen: list[Tensor] = []

    def hook(_m: nn.Module, _a: Any, out: Any) -> None:
        seen.append(out[0] if isinstance(out, tuple) else out)

    handle = model.get_submodule(path).register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return seen[0]


def count_calls(model: nn.Module, path: str) -> list[int]:
    calls = [0]
    model.get_submodule(path).register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_matches_output_hidden_states(tiny_llama_model: LlamaForCausalLM) -> None:
    model = tiny_llama_model
    with torch.no_grad():
        hidden = model(input_ids=IDS, attention_mask=MASK, output_hidden_states=True).hidden_states
    specs = [f"resid_pre:{i}" for i in range(4)] + [f"resid_post:{i}" for i in range(4)]
    with torch.no_grad(), collect_activations(model, specs, stop_early=True) as collector:
        acts = collector.run(input_ids=IDS, attention_mask=MASK)
    for layer in range(4):
        assert torch.equal(acts[f"model.layers.{layer}:input"], hidden[layer])
    for layer in range(3):
        assert torch.equal(acts[f"model.layers.{layer}"], hidden[layer + 1])
    # transformers hands back the last layer's output after the final norm.
    with torch.no_grad():
        assert torch.equal(model.model.norm(acts["model.layers.3"]), hidden[4])
    assert acts["model.layers.1"].shape == (2, 8, 32) and acts["model.layers.1"].dtype == torch.float32


def test_inference_mode_and_detached(tiny_llama_model: LlamaForCausalLM) -> None:
    with torch.inference_mode(), collect_activations(tiny_llama_model, ["resid_post:0"]) as collector:
        first = collector.run(input_ids=IDS)["model.layers.0"]
    with collect_activations(tiny_llama_model, ["resid_post:0"]) as collector:
        second = collector.run(input_ids=IDS)["model.layers.0"]
    assert not second.requires_grad
    assert torch.equal(first, second)


def test_activations_keep_the_model_dtype(tiny_llama_model: LlamaForCausalLM) -> None:
    model: nn.Module = tiny_llama_model
    model.to(torch.bfloat16)
    with torch.no_grad(), collect_activations(model, ["resid_pre:1", "attn_out:1"]) as collector:
        acts = collector.run(input_ids=IDS)
    assert {a.dtype for a in acts.values()} == {torch.bfloat16}


def test_early_stop_skips_later_layers(tiny_llama_model: LlamaForCausalLM) -> None:
    model = tiny_llama_model
    later = count_calls(model, "model.layers.2")
    head = count_calls(model, "lm_head")
    with torch.no_grad(), collect_activations(model, ["resid_post:1", "resid_pre:0"]) as collector:
        early = collector.run(input_ids=IDS)
        assert later[0] == 0 and head[0] == 0
    with torch.no_grad(), collect_activations(model, ["resid_post:1", "resid_pre:0"], stop_early=False) as c:
        full = c.run(input_ids=IDS)
    assert later[0] == 1 and head[0] == 1
    assert early.keys() == full.keys()
    for name in early:
        assert torch.equal(early[name], full[name])


def test_several_hookpoints_in_one_pass(tiny_llama_model: LlamaForCausalLM) -> None:
    model = tiny_llama_model
    specs = ["resid_pre:1", "mlp_out:2", "attn_out:0", "resid_post:2", "model.layers.1.mlp.down_proj"]
    hookpoints = resolve_hookpoints(model, specs)
    last_layer = count_calls(model, "model.layers.3")
    with torch.no_grad(), collect_activations(model, hookpoints) as collector:
        acts = collector.run(input_ids=IDS, attention_mask=MASK)
    assert last_layer[0] == 0
    assert list(acts) != [] and set(acts) == {h.name for h in hookpoints}
    for h in hookpoints:
        if h.kind == "output":
            expected = manual_output(model, h.module_path, input_ids=IDS, attention_mask=MASK)
        else:
            expected = manual_output(model, "model.layers.0", input_ids=IDS, attention_mask=MASK)
        assert torch.equal(acts[h.name], expected), h.alias


def test_attn_and_mlp_out_equal_manual_hooks_gpt2(tiny_gpt2_model: nn.Module) -> None:
    model = tiny_gpt2_model
    with torch.no_grad():
        hidden = model(input_ids=IDS, output_hidden_states=True).hidden_states
    with (
        torch.no_grad(),
        collect_activations(model, ["attn_out:1", "mlp_out:1", "resid_post:1"]) as collector,
    ):
        acts = collector.run(input_ids=IDS)
    assert torch.equal(
        acts["transformer.h.1.attn"], manual_output(model, "transformer.h.1.attn", input_ids=IDS)
    )
    assert torch.equal(
        acts["transformer.h.1.mlp"], manual_output(model, "transformer.h.1.mlp", input_ids=IDS)
    )
    assert torch.equal(acts["transformer.h.1"], hidden[2])
    # The residual stream really is input + attention + MLP: the pieces fit together.
    torch.testing.assert_close(
        hidden[1] + acts["transformer.h.1.attn"] + acts["transformer.h.1.mlp"], hidden[2]
    )


def test_hooks_removed_after_errors(tiny_llama_model: LlamaForCausalLM) -> None:
    model = tiny_llama_model
    before = hook_counts(model)
    with collect_activations(model, ["resid_post:1", "resid_pre:2"]) as collector:
        assert hook_counts(model) == before + 2
        with pytest.raises(ValueError):
            collector.run(input_ids=None)  # the model itself raises
    assert hook_counts(model) == before
    with pytest.raises(RuntimeError, match="boom"), collect_activations(model, ["resid_post:1"]):
        raise RuntimeError("boom")
    assert hook_counts(model) == before
    with pytest.raises(SaescopeError, match="outside"):
        collector.run(input_ids=IDS)


def test_unfired_hookpoint_is_an_error(tiny_llama_model: LlamaForCausalLM) -> None:
    # Llama runs only the first `num_hidden_layers` layers, so a hook on layer 3 never fires.
    tiny_llama_model.config.num_hidden_layers = 2
    with (
        collect_activations(tiny_llama_model, ["resid_post:3"], stop_early=False) as collector,
        pytest.raises(SaescopeError, match="resid_post:3 did not run"),
    ):
        collector.run(input_ids=IDS)


def test_patch_identity_and_zeros(tiny_llama_model: LlamaForCausalLM) -> None:
    model = tiny_llama_model
    before = hook_counts(model)
    with torch.no_grad():
        clean = model(input_ids=IDS).logits
        with patch_activations(model, "resid_post:1", lambda x: x) as hp:
            assert hp.name == "model.layers.1"
            same = model(input_ids=IDS).logits
        with patch_activations(model, "resid_post:1", torch.zeros_like):
            zeroed_out = model(input_ids=IDS).logits
        with patch_activations(model, "resid_pre:2", torch.zeros_like):
            zeroed_in = model(input_ids=IDS).logits
        after = model(input_ids=IDS).logits
    assert torch.equal(same, clean) and torch.equal(after, clean)
    assert not torch.allclose(zeroed_out, clean)
    # Zeroing layer 1's output and layer 2's input are the same intervention.
    assert torch.equal(zeroed_out, zeroed_in)
    assert hook_counts(model) == before


def test_patch_tuple_output_keeps_structure(tiny_llama_model: LlamaForCausalLM) -> None:
    model = tiny_llama_model
    seen: list[Any] = []
    handle = model.model.layers[1].self_attn.register_forward_hook(lambda _m, _a, out: seen.append(out))
    with torch.no_grad():
        clean = model(input_ids=IDS).logits
        with patch_activations(model, "attn_out:1", lambda x: x):
            same = model(input_ids=IDS).logits
        with patch_activations(model, "attn_out:1", lambda x: 2 * x):
            doubled = model(input_ids=IDS).logits
    handle.remove()
    assert isinstance(seen[0], tuple) and type(seen[1]) is type(seen[0]) and len(seen[1]) == len(seen[0])
    assert torch.equal(same, clean) and not torch.allclose(doubled, clean)


def test_patch_kwarg_input() -> None:
    class Inner(nn.Module):
        def forward(self, hidden_states: Tensor) -> Tensor:
            return hidden_states + 1

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([Inner(), Inner()])

        def forward(self, x: Tensor) -> Tensor:
            for layer in self.layers:
                x = layer(hidden_states=x)
            return x

    model = Outer()
    x = torch.zeros(1, 2, 3)
    with patch_activations(model, "resid_pre:1", lambda h: 10 * h):
        assert torch.equal(model(x), torch.full((1, 2, 3), 11.0))
    with collect_activations(model, ["resid_pre:1"]) as collector:
        assert torch.equal(collector.run(x=x)["layers.1:input"], torch.ones(1, 2, 3))


def test_patch_removed_after_exception(tiny_llama_model: LlamaForCausalLM) -> None:
    before = hook_counts(tiny_llama_model)
    with pytest.raises(RuntimeError, match="in fn"), patch_activations(tiny_llama_model, "mlp_out:0", _raise):
        tiny_llama_model(input_ids=IDS)
    assert hook_counts(tiny_llama_model) == before
    with (
        pytest.raises(SaescopeError, match="one hookpoint at a time"),
        patch_activations(tiny_llama_model, "model.layers.*", lambda x: x),
    ):
        pass


def _raise(x: Tensor) -> Tensor:
    raise RuntimeError("in fn")


def test_patch_works_with_kv_cached_generation(tiny_llama_model: LlamaForCausalLM) -> None:
    model: Any = tiny_llama_model  # transformers' generate() is typed too loosely for mypy
    direction = torch.randn(32, generator=torch.Generator().manual_seed(1))
    prompt = IDS[:1, :5]
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 274}
    with torch.no_grad():
        plain = model.generate(prompt, **kwargs)
        with patch_activations(model, "resid_post:1", lambda x: x + 3 * direction):
            cached = model.generate(prompt, use_cache=True, **kwargs)
            uncached = model.generate(prompt, use_cache=False, **kwargs)
    # Steering changes the completion, and the hook sees the same thing with or without the KV cache.
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, plain)
