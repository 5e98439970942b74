"""The native SAE format: layout, exact round trips, atomic writes, and every kind of bad folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from saescope import files
from saescope.errors import SaescopeError
from saescope.sae.formats import FORMAT, load_sae, save_sae

from .builders import ARCHITECTURES, k_of, make_sae, random_inputs


def saved(tmp_path: Path, architecture: str = "topk") -> Path:
    sae = make_sae(architecture, k=k_of(architecture))
    return save_sae(sae, tmp_path / "sae")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_round_trip_is_exact_and_restores_latent_major_storage(tmp_path: Path, architecture: str) -> None:
    sae = make_sae(architecture, k=k_of(architecture))
    sae.cfg = sae.cfg.with_updates(training={"tokens": 123}, normalization={"method": "x", "scale": 0.5})
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert type(loaded) is type(sae) and not loaded.training
    assert loaded.cfg == sae.cfg
    assert loaded.W_enc.shape == (sae.d_in, sae.d_sae) and loaded.W_enc.t().is_contiguous()
    for name, tensor in sae.file_tensors().items():
        assert torch.equal(loaded.file_tensors()[name], tensor), name
    sae.eval()
    x = random_inputs(20, sae.d_in)
    assert torch.equal(loaded(x).recon, sae(x).recon)


def test_file_layout_follows_the_contract(tmp_path: Path) -> None:
    folder = saved(tmp_path, "jumprelu")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["format"] == FORMAT
    for key in ("architecture", "d_in", "d_sae", "model", "hookpoint", "k", "dtype", "normalization"):
        assert key in cfg
    assert (cfg["architecture"], cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == ("jumprelu", 8, 32, "float32")
    with safe_open(str(folder / "sae.safetensors"), framework="pt") as f:  # type: ignore[no-untyped-call]
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    assert shapes == {"W_enc": (8, 32), "b_enc": (32,), "W_dec": (32, 8), "b_dec": (8,), "threshold": (32,)}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_saving_keeps_other_files_and_overwrites_an_older_sae(tmp_path: Path) -> None:
    folder = tmp_path / "sae"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "step-10.safetensors").write_bytes(b"keep me")
    (folder / "metrics.csv").write_text("step,loss\n")
    save_sae(make_sae("topk", seed=1), folder)
    second = make_sae("topk", seed=2)
    save_sae(second, folder)
    assert (folder / "checkpoints" / "step-10.safetensors").read_bytes() == b"keep me"
    assert (folder / "metrics.csv").read_text() == "step,loss\n"
    assert torch.equal(load_sae(folder).W_dec, second.W_dec)


def test_a_failed_write_leaves_the_previous_sae_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = saved(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken_write(f: BinaryIO, data: memoryview) -> None:
        f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(files, "write_all", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_sae(make_sae("topk", seed=5), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    load_sae(folder)


def test_load_in_another_dtype(tmp_path: Path) -> None:
    folder = saved(tmp_path)
    half = load_sae(folder, dtype=torch.bfloat16)
    assert half.W_enc.dtype == torch.bfloat16 and half.cfg.dtype == "bfloat16"
    assert half.W_enc.t().is_contiguous()
    save_sae(half, tmp_path / "half")
    assert load_sae(tmp_path / "half").W_dec.dtype == torch.bfloat16


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(SaescopeError, match="SAE folder not found"):
        load_sae(tmp_path / "nope")
    folder = saved(tmp_path)
    (folder / "sae.safetensors").unlink()
    with pytest.raises(SaescopeError, match=r"missing sae\.safetensors"):
        load_sae(folder)
    (folder / "cfg.json").unlink()
    with pytest.raises(SaescopeError, match=r"missing cfg\.json"):
        load_sae(folder)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_safetensors_is_refused(tmp_path: Path, damage: str) -> None:
    folder = saved(tmp_path)
    path = folder / "sae.safetensors"
    data = path.read_bytes()
    path.write_bytes(
        {"garbage": b"\x00\xffnot a tensor file" * 10, "truncated": data[: len(data) // 2], "empty": b""}[
            damage
        ]
    )
    with pytest.raises(SaescopeError, match="corrupt or truncated"):
        load_sae(folder)


def test_shapes_that_contradict_cfg_json_are_refused(tmp_path: Path) -> None:
    folder = saved(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["d_sae"] = 40
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SaescopeError, match=r"W_enc has shape \[8, 32\] but .*d_sae=40 needs \[8, 40\]"):
        load_sae(folder)


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    folder = saved(tmp_path, "jumprelu")
    tensors = make_sae("topk").file_tensors()  # no threshold
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae.safetensors"))
    with pytest.raises(SaescopeError, match="no tensor 'threshold'"):
        load_sae(folder)


def test_a_transposed_w_enc_is_refused(tmp_path: Path) -> None:
    folder = saved(tmp_path)
    tensors = {k: v.contiguous() for k, v in make_sae("topk").file_tensors().items()}
    tensors["W_enc"] = tensors["W_enc"].t().contiguous()
    save_file(tensors, str(folder / "sae.safetensors"))
    with pytest.raises(SaescopeError, match="W_enc has shape"):
        load_sae(folder)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"architecture": "crosscoder"}, "unknown architecture 'crosscoder'"),
        ({"format": "something/2"}, "not a saescope SAE"),
        ({"format": None}, "saescope convert"),
        ({"d_in": "eight"}, "d_in must be an integer"),
        ({"k": 99}, "k must be in"),
        ({"d_sae": None}, "d_sae must be an integer"),
    ],
)
def test_bad_cfg_json_is_refused_naming_the_file(tmp_path: Path, change: dict, match: str) -> None:  # type: ignore[type-arg]
    folder = saved(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg.update(change)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SaescopeError, match=match) as info:
        load_sae(folder)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_cfg_json_that_is_not_json_is_refused(tmp_path: Path) -> None:
    folder = saved(tmp_path)
    (folder / "cfg.json").write_text("{ not json")
    with pytest.raises(SaescopeError, match="cannot read"):
        load_sae(folder)
    (folder / "cfg.json").write_text("[1, 2]")
    with pytest.raises(SaescopeError, match="JSON object"):
        load_sae(folder)


def test_unknown_cfg_keys_from_newer_versions_are_ignored(tmp_path: Path) -> None:
    folder = saved(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["some_future_field"] = 1
    (folder / "cfg.json").write_text(json.dumps(cfg))
    assert load_sae(folder).cfg.k == 4
