"""A 2-D map of an SAE's decoder directions, with clusters, for browsing (`map.parquet`).

Directions are unit-normalised first (a latent's norm says nothing about what it means). The layout
is UMAP on cosine distance (`umap-learn`, the optional extra `map`) or, without it, the first two
principal components (eigenvectors of the covariance, signs fixed so the largest coordinate is
positive: the same map on every machine). Clusters come from spherical k-means (k-means++ seeding,
then Lloyd steps on cosine similarity) on the full directions, not on the 2-D layout, so that
latents far apart in a flattened map can still share a cluster.

`map.parquet`: `latent` int32, `x` float32, `y` float32, `cluster` int32.
This module knows nothing about the index's other files or about models.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from ..errors import ConfigError

log = logging.getLogger(__name__)

KMEANS_STEPS = 50


class LatentMap(NamedTuple):
    """Where each latent sits on the map."""

    xy: np.ndarray
    """[d_sae, 2] float32 coordinates."""
    cluster: np.ndarray
    """[d_sae] int32 cluster of each latent."""
    method: str
    """`umap` or `pca`."""

    def table(self) -> pa.Table:
        return pa.table(
            {
                "latent": pa.array(np.arange(len(self.cluster), dtype=np.int32)),
                "x": pa.array(self.xy[:, 0].astype(np.float32)),
                "y": pa.array(self.xy[:, 1].astype(np.float32)),
                "cluster": pa.array(self.cluster.astype(np.int32)),
            }
        )


def has_umap() -> bool:
    return importlib.util.find_spec("umap") is not None


def choose_method(method: str) -> str:
    """`umap` or `pca` for a `--map` setting (`auto`: UMAP when installed)."""
    if method == "umap" and not has_umap():
        raise ConfigError("--map umap needs umap-learn: pip install 'saescope[map]' (or use --map pca)")
    if method == "auto":
        return "umap" if has_umap() else "pca"
    return method


def unit_rows(w: Tensor) -> Tensor:
    w = w.detach().float().cpu()
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def pca_2d(w: Tensor) -> np.ndarray:
    """The rows of `w` on their first two principal components (deterministic signs)."""
    centred = w - w.mean(dim=0, keepdim=True)
    cov = centred.T.double() @ centred.double()
    _, vectors = torch.linalg.eigh(cov)
    top = vectors[:, -2:].flip(1)
    xy = (centred.double() @ top).numpy()
    flip = np.sign(xy[np.abs(xy).argmax(axis=0), [0, 1]])
    return (xy * np.where(flip == 0, 1, flip)).astype(np.float32)


def umap_2d(w: Tensor, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed)
    return np.asarray(reducer.fit_transform(w.numpy()), dtype=np.float32)


def kmeans_plus_plus(w: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeds among the unit rows of `w` (distance: 1 − cosine)."""
    first = int(torch.randint(len(w), (1,), generator=gen))
    centres = [w[first]]
    distance = (1 - w @ w[first]).clamp_min(0)
    for _ in range(1, k):
        weights = distance if float(distance.sum()) > 0 else torch.ones_like(distance)
        pick = int(torch.multinomial(weights, 1, generator=gen))
        centres.append(w[pick])
        distance = torch.minimum(distance, (1 - w @ w[pick]).clamp_min(0))
    return torch.stack(centres)


def spherical_kmeans(w: Tensor, k: int, seed: int) -> np.ndarray:
    """Cluster of each unit row of `w` (k clusters, cosine similarity)."""
    gen = torch.Generator().manual_seed(seed)
    centres = kmeans_plus_plus(w, k, gen)
    labels = torch.full((len(w),), -1, dtype=torch.long)
    for _ in range(KMEANS_STEPS):
        new = (w @ centres.T).argmax(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centres).index_add_(0, labels, w)
        empty = sums.norm(dim=1) == 0
        sums[empty] = centres[empty]  # an emptied cluster keeps its centre
        centres = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return labels.numpy().astype(np.int32)


def default_clusters(d_sae: int) -> int:
    return max(1, min(d_sae, round(math.sqrt(d_sae / 2))))


def latent_map(w_dec: Tensor, method: str, clusters: int = 0, seed: int = 0) -> LatentMap:
    """The map of the decoder rows `w_dec` [d_sae, d] (`method`: umap or pca)."""
    w = unit_rows(w_dec)
    xy = umap_2d(w, seed) if method == "umap" else pca_2d(w)
    k = clusters or default_clusters(len(w))
    log.info("latent map: %s layout, %d clusters", method, k)
    return LatentMap(xy, spherical_kmeans(w, min(k, len(w)), seed), method)


__all__ = [
    "LatentMap",
    "choose_method",
    "default_clusters",
    "has_umap",
    "latent_map",
    "pca_2d",
    "spherical_kmeans",
]
