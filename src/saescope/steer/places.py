"""Where each intervention applies in every forward pass of a left-padded, KV-cached generation.

A batch of prompts is left-padded to a common width P, so in every row the prompt ends at column
P and generated tokens occupy columns P, P+1, …; row r's prompt starts at column `pad[r]`.
`Places` holds, per intervention, a [B, P] mask of the prompt columns it covers (padding never)
and whether it covers generated columns. A forward pass covers columns [start, start + width):
the whole prompt first, then one new column per step through the KV cache — or, without the
cache, all columns every step. `Places.window(start, width)` is the mask of that pass, so the
same token gets the same edit whichever way it is computed (the bug users of hook-based steering
report most: edits that silently skip generated tokens, or differ with and without the cache).

This module knows nothing about SAEs, models or sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..data import spans_by_decoding
from ..errors import SaescopeError
from .interventions import Intervention


class PromptBatch(NamedTuple):
    """Prompts as one left-padded batch."""

    input_ids: Tensor
    """[B, P] token ids, left-padded (on the model's device)."""
    attention_mask: Tensor
    """[B, P] 1 for real tokens."""
    token_ids: list[list[int]]
    """Each prompt's own tokens, unpadded."""

    @property
    def pads(self) -> list[int]:
        """Padding columns at the start of each row."""
        width = self.input_ids.shape[1]
        return [width - len(ids) for ids in self.token_ids]


def left_pad(token_ids: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> PromptBatch:
    """Left-pad prompts (each non-empty) into one batch."""
    if not token_ids or any(len(ids) == 0 for ids in token_ids):
        raise SaescopeError("every prompt must have at least one token")
    width = max(len(ids) for ids in token_ids)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for r, row in enumerate(token_ids):
        ids[r, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
        mask[r, width - len(row) :] = 1
    return PromptBatch(ids.to(device), mask.to(device), [list(row) for row in token_ids])


class Places(NamedTuple):
    """Which columns each of m interventions covers (see the module docstring)."""

    prompt: Tensor
    """[m, B, P] bool: the prompt columns each intervention covers."""
    generated: Tensor
    """[m] bool: whether it covers generated columns."""

    def window(self, start: int, width: int) -> Tensor:
        """[m, B, width] bool: the columns [start, start + width) of one forward pass."""
        m, batch, prompt_width = self.prompt.shape
        inside = self.prompt[:, :, start : min(start + width, prompt_width)]
        after = width - inside.shape[-1]
        if after == 0:
            return inside
        gen = self.generated[:, None, None].expand(m, batch, after)
        return torch.cat([inside, gen], dim=-1)


def _prompt_columns(item: Intervention, ids: list[int], row: int, tokenizer: Any) -> list[int]:
    """Indices into one prompt's tokens that `item` covers."""
    n = len(ids)
    if item.where in ("all", "prompt"):
        return list(range(n))
    if item.where == "generated":
        return []
    if item.where == "positions":
        for p in item.positions:
            if not -n <= p < n:
                raise SaescopeError(f"position {p} is beyond prompt {row} ({n} tokens: 0 to {n - 1})")
        return sorted({p % n for p in item.positions})
    assert item.substring is not None
    spans = spans_by_decoding(ids, item.substring, tokenizer)
    if not spans:
        raise SaescopeError(f"substring {item.substring!r} does not occur in prompt {row}")
    return sorted({i for start, end in spans for i in range(start, end)})


def places_for(
    interventions: Sequence[Intervention], batch: PromptBatch, tokenizer: Any, first_row: int = 0
) -> Places:
    """The columns each intervention covers in `batch` (errors name a prompt, counting from
    `first_row`, and a position)."""
    m = len(interventions)
    rows, width = batch.input_ids.shape
    prompt = torch.zeros((m, rows, width), dtype=torch.bool)
    for j, item in enumerate(interventions):
        for r, (ids, pad) in enumerate(zip(batch.token_ids, batch.pads)):
            cols = _prompt_columns(item, ids, first_row + r, tokenizer)
            prompt[j, r, [pad + c for c in cols]] = True
    generated = torch.tensor([i.where in ("all", "generated") for i in interventions], dtype=torch.bool)
    device = batch.input_ids.device
    return Places(prompt.to(device), generated.to(device))


__all__ = ["Places", "PromptBatch", "left_pad", "places_for"]
