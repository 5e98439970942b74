"""What steer, effects and contrast refuse before the model loads: a mistake costs a second, not a
model load.

From the SAE's `cfg.json` alone (its weights are not read): latent ids out of range. From the
model's tokenizer alone (`saescope.models.load_tokenizer`, no weights): prompts that are empty,
positions beyond a prompt, substrings absent from one, targets that are not exactly one token, a
text longer than `--max-tokens`, a contrast side where no text holds its substring.

This module knows nothing about generation or what the stages compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import ModelSettings, model_of
from ..errors import SaescopeError
from ..models import load_tokenizer
from ..sae import SAEConfig
from ..sae.source import read_sae_config
from .interventions import Intervention, check_interventions
from .places import left_pad, places_for
from .targets import named_targets
from .texts import encode_all


def sae_config(path: Path) -> SAEConfig:
    """The settings of the SAE at `path` (a folder or a published name), read from its cfg.json
    when it has saescope's (its weights are not loaded then)."""
    return read_sae_config(path)


def tokenizer_for(sae: SAEConfig, path: Path, cfg: ModelSettings, model: str) -> Any:
    """The tokenizer of the model the SAE will run in (`model`, else the one it records)."""
    chosen = model or sae.model
    if not chosen:
        raise SaescopeError(f"{path} does not record its model; pass --model")
    return load_tokenizer(model_of(cfg, model=chosen))


def check_steering(
    tokenizer: Any,
    d_sae: int,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    targets: Sequence[str],
    chat: bool,
    prepend_bos: bool,
) -> None:
    """Latent ids, prompts, places and targets of a steering request (see the module docstring)."""
    check_interventions(interventions, d_sae)
    ids = encode_all(tokenizer, list(prompts), chat, prepend_bos)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    places_for(interventions, left_pad(ids, int(pad), torch.device("cpu")), tokenizer)
    if targets:
        named_targets(tokenizer, targets)


def checked_steer_request(
    path: Path,
    cfg: ModelSettings,
    model: str,
    prompts: Sequence[str],
    interventions: Sequence[Intervention],
    targets: Sequence[str],
    chat: bool,
    prepend_bos: bool,
) -> None:
    """`saescope steer`'s input, checked before its model loads."""
    sae = sae_config(path)
    check_interventions(interventions, sae.d_sae)  # before the tokenizer: no import, no file read
    tokenizer = tokenizer_for(sae, path, cfg, model)
    check_steering(tokenizer, sae.d_sae, prompts, interventions, targets, chat, prepend_bos)


__all__ = ["check_steering", "checked_steer_request", "sae_config", "tokenizer_for"]
