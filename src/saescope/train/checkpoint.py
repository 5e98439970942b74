"""Training checkpoints: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is a folder `checkpoints/step-NNNNNNNN/` with `state.safetensors` (SAE parameters,
optimiser moments, dead-latent counters, RNG states) and `state.json` (step, tokens, data position,
the settings that must match to resume, and the non-tensor parts of each state dict). Nested state
dicts (e.g. `torch.optim.Adam.state_dict()`) are flattened: tensors under dotted keys, the rest as
JSON. A checkpoint becomes visible only once complete (temporary folder, fsync, rename); the last
`keep` are kept. Files are written by `saescope.files` (durable, the usual permissions). Knows
nothing about what the state means.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import CheckpointError
from ..files import fsync_dir, write_json, write_safetensors

log = logging.getLogger(__name__)

FORMAT = "saescope.checkpoint/1"
_TENSOR = "__tensor__"


def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested dict/list into `tensors`; return the JSON-able rest."""
    if isinstance(obj, torch.Tensor):
        key = prefix
        tensors[key] = obj.detach().contiguous().cpu()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        return {str(k): flatten_state(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state` (dict keys that were ints come back as ints)."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            key = obj[_TENSOR]
            if key not in tensors:
                raise CheckpointError(f"checkpoint is missing tensor {key!r}")
            return tensors[key]
        return {
            (int(k) if k.lstrip("-").isdigit() else k): unflatten_state(v, tensors) for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write `state` (nested dicts of tensors and JSON values) as checkpoint `step` under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": FORMAT, "step": step, "state": flatten_state(state, "s", tensors)}
    write_safetensors(tmp / "state.safetensors", tensors)
    write_json(tmp / "state.json", meta)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(root)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint folder under `root`, if any."""
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path) -> tuple[int, dict[str, Any]]:
    """(step, state) of a checkpoint folder; CheckpointError if it is corrupt or not ours."""
    try:
        meta = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e.__class__.__name__})") from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT or not isinstance(meta.get("step"), int) or "state" not in meta:
        raise CheckpointError(f"{path} is not a saescope checkpoint (format {fmt!r})")
    try:
        tensors = load_file(str(path / "state.safetensors"))
    except (OSError, SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt ({str(e).splitlines()[0][:120]})") from None
    try:
        return meta["step"], unflatten_state(meta["state"], tensors)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {path} is corrupt ({e})") from None
