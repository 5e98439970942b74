"""Training checkpoints: nested state round trips exactly, writes are atomic, bad folders are refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from saescope.errors import CheckpointError
from saescope.train.checkpoint import (
    FORMAT,
    flatten_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from saescope.train.optim import SAEOptimizer
from tests.sae.builders import make_sae, random_inputs


def stepped_optimizer(seed: int = 0) -> tuple[torch.nn.Module, SAEOptimizer]:
    sae = make_sae("topk", d_in=8, d_sae=32, k=4, seed=seed)
    opt = SAEOptimizer(sae, kind="adamw", betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01, grad_clip=1.0)
    for i in range(3):
        sae(random_inputs(16, 8, seed=i)).recon.pow(2).sum().backward()
        opt.step(1e-3)
        opt.zero_grad()
    return sae, opt


def assert_same(a: object, b: object) -> None:
    """Equal nested structures, tensors bitwise (tuples may come back as lists)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (a, b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_flatten_round_trip_of_nested_state_with_optimizer_state_dicts() -> None:
    sae, opt = stepped_optimizer()
    state = {
        "step": 7,
        "scale": 0.125,
        "note": None,
        "flags": [True, "x", 1.5],
        "rng": torch.get_rng_state(),
        "torch_optimizer": opt.opt.state_dict(),  # int keys, tuples, 0-d step tensors
        "runs": [{"sae": dict(sae.state_dict()), "optimizer": opt.opt.state_tensors()}],
    }
    tensors: dict[str, torch.Tensor] = {}
    meta = flatten_state(state, "s", tensors)
    json.dumps(meta)  # what is left is plain JSON
    assert all(t.is_contiguous() for t in tensors.values())
    assert_same(state, unflatten_state(json.loads(json.dumps(meta)), tensors))


def test_save_load_keeps_the_last_two_and_loaded_state_continues_identically(tmp_path: Path) -> None:
    sae, opt = stepped_optimizer()
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        path = save_checkpoint(root, step, {"sae": dict(sae.state_dict()), "opt": opt.opt.state_tensors()})
    assert sorted(p.name for p in root.iterdir()) == ["step-00000020", "step-00000030"]
    assert latest_checkpoint(root) == path == root / "step-00000030"
    step, state = load_checkpoint(path)
    assert step == 30

    twin, twin_opt = stepped_optimizer(seed=5)  # other weights and moments, overwritten below
    twin.load_state_dict(state["sae"])
    twin_opt.opt.load_state_tensors(state["opt"])
    for s, o in ((sae, opt), (twin, twin_opt)):
        s(random_inputs(16, 8, seed=9)).recon.pow(2).sum().backward()
        o.step(1e-3)
    for (name, p), q in zip(sae.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), name


def test_incomplete_checkpoints_are_invisible(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    assert latest_checkpoint(root) is None
    save_checkpoint(root, 5, {"x": torch.ones(2)})
    (root / ".tmp-step-00000010").mkdir()  # a write killed before its rename
    (root / "step-00000020").mkdir()  # no state.json: never completed
    assert latest_checkpoint(root) == root / "step-00000005"
    save_checkpoint(root, 10, {"x": torch.zeros(2)})  # clears the leftover temporary folder
    assert not (root / ".tmp-step-00000010").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate-tensors", "is corrupt"),
        ("truncate-json", "is unreadable"),
        ("foreign-format", "is not a saescope checkpoint"),
        ("json-list", "is not a saescope checkpoint"),
        ("missing-tensor", "is missing tensor"),
        ("no-step", "is not a saescope checkpoint"),
    ],
)
def test_damaged_or_foreign_checkpoints_raise_checkpoint_error(
    tmp_path: Path, damage: str, message: str
) -> None:
    path = save_checkpoint(tmp_path, 1, {"a": torch.arange(100.0), "b": {"c": torch.ones(3)}})
    meta = json.loads((path / "state.json").read_text())
    if damage == "truncate-tensors":
        data = (path / "state.safetensors").read_bytes()
        (path / "state.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "truncate-json":
        text = (path / "state.json").read_text()
        (path / "state.json").write_text(text[: len(text) // 2])
    elif damage == "foreign-format":
        (path / "state.json").write_text(json.dumps({**meta, "format": "other.checkpoint/3"}))
    elif damage == "json-list":
        (path / "state.json").write_text("[1, 2, 3]")
    elif damage == "missing-tensor":
        meta["state"]["b"]["d"] = {"__tensor__": "s.b.d"}
        (path / "state.json").write_text(json.dumps(meta))
    else:
        del meta["step"]
        (path / "state.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_checkpoint_files_are_safetensors_and_json(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 3, {"w": torch.ones(2, 2).t(), "n": 4})
    assert sorted(p.name for p in path.iterdir()) == ["state.json", "state.safetensors"]
    meta = json.loads((path / "state.json").read_text())
    assert meta["format"] == FORMAT and meta["step"] == 3 and meta["state"]["n"] == 4


def test_checkpoint_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Weights were once written `-rw-------` (safetensors' own writer) beside `-rw-r--r--` files."""
    sae, opt = stepped_optimizer()
    path = save_checkpoint(tmp_path / "ckpt", 3, {"sae": dict(sae.state_dict()), "opt": opt.state_tensors()})
    umask = os.umask(0)
    os.umask(umask)
    for name in ("state.safetensors", "state.json"):
        assert stat.S_IMODE((path / name).stat().st_mode) == 0o666 & ~umask, name
