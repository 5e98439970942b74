from __future__ import annotations

import random
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from torch import nn

from saescope.config import ModelSettings
from saescope.errors import SaescopeError
from saescope.hookpoints import Hookpoint, hookpoint_order, num_layers, resolve_hookpoints
from saescope.models import cache_root, load_model, resolve_device, resolve_dtype, smollm2_gguf_path
from tests.builders import tiny_llama

# --------------------------------------------------------------------------- device / dtype


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(SaescopeError, match="unknown device 'banana'"):
        resolve_device("banana")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_resolve_device_cuda_missing() -> None:
    with pytest.raises(SaescopeError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(SaescopeError, match="unknown model dtype 'int8'"):
        resolve_dtype("int8", torch.device("cpu"))


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SAESCOPE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "saescope"
    monkeypatch.setenv("SAESCOPE_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


# --------------------------------------------------------------------------- loading


def test_load_local_folder(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelSettings(model=str(tiny_model_dir), device="cpu"))
    assert loaded.name == str(tiny_model_dir.resolve())
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.tokenizer.bos_token == "<bos>" and loaded.tokenizer.pad_token == "<pad>"
    # The same weights as the builder made: identical logits.
    ids = torch.tensor([[272, 83, 257, 261, 263]])
    with torch.no_grad():
        expected = tiny_llama()(input_ids=ids).logits
        got = loaded.model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_load_in_bfloat16(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelSettings(model=str(tiny_model_dir), model_dtype="bfloat16", device="cpu"))
    assert loaded.dtype == torch.bfloat16
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


def test_load_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SaescopeError, match=r"cannot load model \./no-such-folder"):
        load_model(ModelSettings(model="./no-such-folder"))
    with pytest.raises(SaescopeError, match=r"cannot load model .*missing\.gguf: no such file"):
        load_model(ModelSettings(model=str(tmp_path / "missing.gguf")))
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(SaescopeError, match="cannot load model"):
        load_model(ModelSettings(model=str(broken)))
    # A hub id that is not cached (offline here): one line, no network wait.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SaescopeError, match="cannot load model no-such-org/no-such-model: "):
        load_model(ModelSettings(model="no-such-org/no-such-model"))


def test_smollm2_file_is_found_without_importing_the_package() -> None:
    path = smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


@pytest.mark.slow
def test_smollm2_alias_end_to_end() -> None:
    """The embedded model through the conversion cache: a real Llama that knows where Paris is."""
    loaded = load_model(ModelSettings(model="smollm2-135m", device="cpu"))
    assert loaded.name == "smollm2-135m"
    assert loaded.revision is not None and loaded.revision.startswith("gguf-sha256:")
    assert len(loaded.revision) == len("gguf-sha256:") + 16
    assert num_layers(loaded.model) == 30 and loaded.model.config.hidden_size == 576
    tok = loaded.tokenizer
    inputs = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, inputs.input_ids.shape[1] :]).startswith(" Paris")
    (hookpoint,) = resolve_hookpoints(loaded.model, ["resid_post:15"])
    assert hookpoint.module_path == "model.layers.15" and hookpoint.layer == 15
    # The second load reads the cache, not the GGUF file.
    again = load_model(ModelSettings(model="smollm2-135m", device="cpu"))
    assert again.revision == loaded.revision


# --------------------------------------------------------------------------- hookpoints


def test_short_forms_llama(tiny_llama_model: nn.Module) -> None:
    got = resolve_hookpoints(tiny_llama_model, ["resid_post:1", "resid_pre:2", "mlp_out:0", "attn_out:-1"])
    assert got == [
        Hookpoint("model.layers.1", "resid_post:1", "model.layers.1", "output", 1),
        Hookpoint("model.layers.2:input", "resid_pre:2", "model.layers.2", "input", 2),
        Hookpoint("model.layers.0.mlp", "mlp_out:0", "model.layers.0.mlp", "output", 0),
        Hookpoint("model.layers.3.self_attn", "attn_out:3", "model.layers.3.self_attn", "output", 3),
    ]


def test_module_paths_get_short_aliases_and_dedupe(tiny_llama_model: nn.Module) -> None:
    got = resolve_hookpoints(
        tiny_llama_model,
        [
            "model.layers.1",
            "resid_post:1",
            "model.layers.2:input",
            "model.norm",
            "model.layers.0.mlp.down_proj",
        ],
    )
    assert [(h.name, h.alias, h.layer) for h in got] == [
        ("model.layers.1", "resid_post:1", 1),
        ("model.layers.2:input", "resid_pre:2", 2),
        ("model.norm", "model.norm", None),
        ("model.layers.0.mlp.down_proj", "model.layers.0.mlp.down_proj", 0),
    ]


def test_globs(tiny_llama_model: nn.Module) -> None:
    mlps = resolve_hookpoints(tiny_llama_model, ["model.layers.*.mlp"])
    assert [h.alias for h in mlps] == ["mlp_out:0", "mlp_out:1", "mlp_out:2", "mlp_out:3"]
    # `*` stays within one path component: the layers, not their submodules.
    assert [h.name for h in resolve_hookpoints(tiny_llama_model, ["model.layers.*"])] == [
        f"model.layers.{i}" for i in range(4)
    ]
    assert [h.name for h in resolve_hookpoints(tiny_llama_model, ["model.layers.[12].self_attn"])] == [
        "model.layers.1.self_attn",
        "model.layers.2.self_attn",
    ]
    deep = resolve_hookpoints(tiny_llama_model, ["model.**.down_proj"])
    assert [h.name for h in deep] == [f"model.layers.{i}.mlp.down_proj" for i in range(4)]
    assert [h.alias for h in resolve_hookpoints(tiny_llama_model, ["resid_pre:*"])] == [
        f"resid_pre:{i}" for i in range(4)
    ]


@pytest.mark.parametrize(
    "spec",
    [
        "resid_post:4",
        "resid_post:-5",
        "resid_post:x",
        "mlp_inn:1",
        "foo",
        "model.layers.*.nope",
        "model.norm:out",
    ],
)
def test_unknown_hookpoints_list_valid_ones(tiny_llama_model: nn.Module, spec: str) -> None:
    with pytest.raises(SaescopeError) as info:
        resolve_hookpoints(tiny_llama_model, [spec])
    message = str(info.value)
    assert "\n" not in message
    assert f"unknown hookpoint {spec!r}" in message
    for valid in (
        "resid_pre:0..3",
        "resid_post:0..3",
        "mlp_out:0..3",
        "attn_out:0..3",
        "model.layers.{0..3}",
    ):
        assert valid in message


def test_gpt2_hookpoints(tiny_gpt2_model: nn.Module) -> None:
    got = resolve_hookpoints(tiny_gpt2_model, ["resid_post:0", "resid_pre:-1", "mlp_out:1", "attn_out:2"])
    assert [h.name for h in got] == [
        "transformer.h.0",
        "transformer.h.2:input",
        "transformer.h.1.mlp",
        "transformer.h.2.attn",
    ]
    assert [h.alias for h in resolve_hookpoints(tiny_gpt2_model, ["transformer.h.*.attn"])] == [
        "attn_out:0",
        "attn_out:1",
        "attn_out:2",
    ]
    with pytest.raises(SaescopeError, match=r"valid: resid_pre:0\.\.2, .*transformer\.h\.\{0\.\.2\}"):
        resolve_hookpoints(tiny_gpt2_model, ["resid_post:3"])


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ff = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(x)


class _Unusual(nn.Module):
    """A model whose layer stack has no name we know: found as the longest list of like blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.stack = nn.ModuleList([_Block() for _ in range(5)])


def test_layer_list_fallback() -> None:
    model = _Unusual()
    assert num_layers(model) == 5
    (hp,) = resolve_hookpoints(model, ["resid_post:-1"])
    assert hp.module_path == "stack.4" and hp.layer == 4
    with pytest.raises(
        SaescopeError, match=r"unknown hookpoint 'mlp_out:0'; valid: resid_pre:0\.\.4, resid_post:0\.\.4,"
    ):
        resolve_hookpoints(model, ["mlp_out:0"])


def test_hookpoint_order_matches_firing_order(tiny_llama_model: nn.Module) -> None:
    specs = ["resid_post:3", "mlp_out:1", "resid_pre:1", "attn_out:1", "resid_post:1", "model.norm",
             "model.embed_tokens", "lm_head", "model.layers.1.mlp.down_proj", "resid_pre:0"]  # fmt: skip
    hookpoints = resolve_hookpoints(tiny_llama_model, specs)
    random.Random(0).shuffle(hookpoints)
    fired: list[str] = []
    handles = []
    for h in hookpoints:
        module = tiny_llama_model.get_submodule(h.module_path)
        if h.kind == "input":
            handles.append(module.register_forward_pre_hook(lambda *_, n=h.name: fired.append(n)))
        else:
            handles.append(module.register_forward_hook(lambda *_, n=h.name: fired.append(n)))
    with torch.no_grad():
        tiny_llama_model(input_ids=torch.tensor([[1, 2, 3]]))
    for handle in handles:
        handle.remove()
    assert [h.name for h in hookpoint_order(tiny_llama_model, hookpoints)] == fired
    assert len(fired) == len(specs)
