"""Feature splitting: a latent of a smaller SAE and the latents of a larger SAE it splits into.

Towards Monosemanticity (Bricken et al. 2023) compares dictionaries of several sizes: a feature of
the small one reappears in the large one as several finer features, each close to it in decoder
direction and firing on a subset of its tokens. Here a latent of the larger SAE is a *child* of
its best decoder-cosine match in the smaller SAE (the parent) when that cosine is at least
`min_cosine`; with latent indexes of both SAEs over the same tokens it must also fire with its
parent on at least `min_coactivation` of the tokens it fires on. A *family* is a parent with at
least two children — one child is a match, not a split. Every child belongs to at most one
family (its best match's), so families never overlap.

This module knows nothing about files, indexes or how the matches were found: it takes best
matches and, optionally, co-activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from torch import Tensor


class Child(NamedTuple):
    """A latent of the larger SAE in a family."""

    latent: int
    """Its id in the larger SAE."""
    cosine: float
    """Decoder cosine with the parent."""
    coactivation: float | None
    """Of the tokens it fires on, the fraction its parent fires on too (None: not measured)."""


class Family(NamedTuple):
    """A latent of the smaller SAE and the latents of the larger SAE it splits into."""

    parent: int
    """Its id in the smaller SAE."""
    children: tuple[Child, ...]
    """Best cosine first (at least two)."""


class Families(NamedTuple):
    """The families of a pair of SAEs of different widths."""

    families: tuple[Family, ...]
    """Largest family first (then by parent id)."""
    children_considered: int
    """Latents of the larger SAE whose best match reached `min_cosine`."""
    dropped_by_coactivation: int
    """Of those, children dropped because they rarely fire with their parent (0 without indexes)."""
    min_cosine: float
    """The cosine a child needs."""
    min_coactivation: float | None
    """The co-activation a child needs (None: no indexes, decoder cosine only)."""


Coactivation = Callable[[Sequence[int], Sequence[int]], np.ndarray]
"""(parents, children) → for each pair, the fraction of the child's firing tokens the parent fires on."""


def find_families(
    child_best: Tensor,
    child_cosine: Tensor,
    min_cosine: float = 0.5,
    coactivation: Coactivation | None = None,
    min_coactivation: float = 0.5,
) -> Families:
    """Families from the larger SAE's best matches in the smaller one (`child_best[j]`, its cosine
    `child_cosine[j]` for each latent j of the larger SAE); see the module docstring."""
    candidates = (child_cosine >= min_cosine).nonzero().flatten().tolist()
    parents = child_best[candidates].tolist()
    cosines = child_cosine[candidates].tolist()
    shared: list[float | None] = [None] * len(candidates)
    dropped = 0
    if coactivation is not None and candidates:
        fractions = coactivation(parents, candidates)
        keep = [bool(f >= min_coactivation) for f in np.nan_to_num(fractions, nan=0.0)]
        dropped = len(keep) - sum(keep)
        shared = [float(f) for f in fractions]
    else:
        keep = [True] * len(candidates)
    grouped: dict[int, list[Child]] = {}
    for child, parent, cosine, fraction, kept in zip(candidates, parents, cosines, shared, keep):
        if kept:
            grouped.setdefault(int(parent), []).append(Child(int(child), float(cosine), fraction))
    families = [
        Family(parent, tuple(sorted(children, key=lambda c: (-c.cosine, c.latent))))
        for parent, children in grouped.items()
        if len(children) >= 2
    ]
    families.sort(key=lambda f: (-len(f.children), f.parent))
    return Families(
        tuple(families),
        len(candidates),
        dropped,
        min_cosine,
        min_coactivation if coactivation is not None else None,
    )


__all__ = ["Child", "Coactivation", "Families", "Family", "find_families"]
