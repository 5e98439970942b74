"""A joint 2-D map of several SAEs' decoder directions, each point coloured by its SAE.

The unit decoder rows of every SAE (a seeded sample of `points` per SAE when it has more) are laid
out together — UMAP on cosine distance or the first two principal components, as the latent index
lays out one SAE's map (`saescope.index.latent_map`) — so that directions the SAEs share land on
top of each other and directions only one SAE has stand apart.

This module knows nothing about files or how the map is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..index.latent_map import choose_method, pca_2d, umap_2d, unit_rows


class JointMap(NamedTuple):
    """Points of several SAEs on one map."""

    x: np.ndarray
    """[n] float32."""
    y: np.ndarray
    """[n] float32."""
    sae: np.ndarray
    """[n] int32: which SAE (its position in the comparison)."""
    latent: np.ndarray
    """[n] int64: the latent within its SAE."""
    method: str
    """`umap` or `pca`."""
    sampled: tuple[bool, ...]
    """Per SAE: whether only a sample of its latents is placed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "sampled": list(self.sampled),
            "x": [round(float(v), 5) for v in self.x],
            "y": [round(float(v), 5) for v in self.y],
            "sae": self.sae.tolist(),
            "latent": self.latent.tolist(),
        }


def sample_latents(d_sae: int, points: int, gen: torch.Generator) -> Tensor:
    """All latents when there are at most `points`, else a seeded sample of `points`, ascending."""
    if d_sae <= points:
        return torch.arange(d_sae)
    return torch.randperm(d_sae, generator=gen)[:points].sort().values


def joint_map(
    decoders: Sequence[Tensor], method: str = "auto", points: int = 4096, seed: int = 0
) -> JointMap:
    """The joint map of `decoders` (each `W_dec [d_sae, d_in]`, one input width)."""
    gen = torch.Generator().manual_seed(seed)
    chosen = [sample_latents(len(w), points, gen) for w in decoders]
    rows = torch.cat([unit_rows(w[ids]) for w, ids in zip(decoders, chosen)])
    layout = choose_method(method)
    xy = umap_2d(rows, seed) if layout == "umap" else pca_2d(rows)
    sae = np.concatenate([np.full(len(ids), i, dtype=np.int32) for i, ids in enumerate(chosen)])
    latent = torch.cat(chosen).numpy().astype(np.int64)
    sampled = tuple(len(ids) < len(w) for w, ids in zip(decoders, chosen))
    return JointMap(xy[:, 0], xy[:, 1], sae, latent, layout, sampled)


__all__ = ["JointMap", "joint_map", "sample_latents"]
