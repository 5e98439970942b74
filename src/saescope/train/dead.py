"""Dead-latent tracking: how many tokens since each latent last fired.

A latent is dead once it has not fired for `dead_tokens` tokens (OpenAI: 10M). The aux-k loss
(losses.py) reads the mask; under DDP the "fired" mask is all-reduced every step so every rank
holds the same counters. Knows nothing about how latents are computed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import distributed


class DeadLatentTracker:
    def __init__(self, d_sae: int, dead_tokens: int, device: torch.device):
        self.dead_tokens = dead_tokens
        self.tokens_since_fired = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.tokens_seen = 0

    def update(self, latent_indices: Tensor, latent_acts: Tensor, tokens: int) -> None:
        """Record one step: `tokens` global tokens; latents with a positive activation fired."""
        # scatter_reduce instead of boolean indexing: no host-device synchronisation per step.
        fired = torch.zeros(self.tokens_since_fired.shape, dtype=torch.float32, device=latent_indices.device)
        fired.scatter_reduce_(
            0, latent_indices.reshape(-1), (latent_acts > 0).reshape(-1).float(), reduce="amax"
        )
        distributed.all_reduce_(fired, "max")
        self.tokens_since_fired += tokens
        self.tokens_since_fired.masked_fill_(fired > 0, 0)
        self.tokens_seen += tokens

    @property
    def dead_mask(self) -> Tensor:
        return self.tokens_since_fired >= self.dead_tokens

    def count_dead(self) -> int:
        """Number of dead latents (synchronises with the device; call now and then)."""
        return int(self.dead_mask.sum().item())

    def dead_fraction(self, window: int | None = None) -> float:
        """Share of latents silent for `window` tokens (default: dead_tokens, capped at what was seen)."""
        horizon = min(window or self.dead_tokens, self.tokens_seen)
        if horizon <= 0:
            return 0.0
        return float((self.tokens_since_fired >= horizon).float().mean().item())

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "tokens_since_fired": self.tokens_since_fired.clone(),
            "tokens_seen": torch.tensor(self.tokens_seen, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.tokens_since_fired.copy_(state["tokens_since_fired"])
        self.tokens_seen = int(state["tokens_seen"].item())
