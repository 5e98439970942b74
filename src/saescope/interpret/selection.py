"""Which latents to interpret: a `--latents` spec, firing counts, `--min-count` and `--sample`.

Dead latents (no firing in the index) and latents firing fewer than `min_count` times are set
aside with a note each; `sample` then draws that many of the rest at random (seeded), so that
`--sample 200` reports on 200 latents that can be explained.

This module knows nothing about the index's files, language models or scores.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import ConfigError


class Skipped(NamedTuple):
    """A latent set aside before any work, and why."""

    latent: int
    """The latent's index."""
    reason: str
    """E.g. `dead (never fires in the index)` or `fires 3 times (--min-count 10)`."""

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


class Selection(NamedTuple):
    """The latents to interpret and those set aside."""

    latents: tuple[int, ...]
    """To interpret, ascending."""
    skipped: tuple[Skipped, ...]
    """Dead or too rare, ascending."""


def select_latents(
    counts: Sequence[int],
    wanted: Sequence[int] | None = None,
    *,
    sample: int | None = None,
    min_count: int = 1,
    seed: int = 0,
) -> Selection:
    """The latents of `wanted` (default: all) that fire at least `min_count` times (`counts[i]`:
    firings of latent i), `sample` of them at random when given; `ConfigError` for a latent out of
    range."""
    d_sae = len(counts)
    chosen = range(d_sae) if wanted is None else sorted(set(wanted))
    outside = [i for i in chosen if not 0 <= i < d_sae]
    if outside:
        raise ConfigError(
            f"--latents: latent {outside[0]} is out of range: this SAE has {d_sae} latents (0-{d_sae - 1})"
        )
    keep: list[int] = []
    skipped: list[Skipped] = []
    for i in chosen:
        n = int(counts[i])
        if n == 0:
            skipped.append(Skipped(i, "dead (never fires in the index)"))
        elif n < min_count:
            skipped.append(Skipped(i, f"fires {n} time{'s' * (n != 1)} (--min-count {min_count})"))
        else:
            keep.append(i)
    if sample is not None and sample < len(keep):
        keep = sorted(random.Random(seed).sample(keep, sample))
    return Selection(tuple(keep), tuple(skipped))


__all__ = ["Selection", "Skipped", "select_latents"]
