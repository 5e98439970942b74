"""Latent explanations from a latent index, for effects and contrast to show beside latent ids.

The interpretation stage stores explanations in the index; this module asks `saescope.index`
for them through `read_explanations(index_dir) -> {latent: text}` and returns nothing when this
saescope has no such reader or the index holds no explanations (then results list bare ids).

This module knows nothing about models or SAEs.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def explanations_for(index: Path) -> dict[int, str]:
    """Latent → explanation from the index at `index` ({} when there are none to read)."""
    try:
        reader = importlib.import_module("saescope.index").read_explanations
    except (ImportError, AttributeError):
        log.info("no explanation reader in this saescope; latents are shown without explanations")
        return {}
    found = reader(index)
    return {int(latent): str(text) for latent, text in dict(found).items() if text}


__all__ = ["explanations_for"]
