"""The latent index of an SAE: the one given, or the one beside it in its run, if it indexes that SAE.

An index answers for exactly one SAE: its `index.json` records the fingerprint of the SAE's weights
(`format.sae_fingerprint`), the same whichever file format holds them. `index_of_sae` uses an
index only when that fingerprint is the SAE's: a given one (`--index`) for another SAE is an
error; the run's own (`runs.index_beside`: `RUN/index` beside `RUN/sae`) is skipped quietly when it
indexes another SAE or is unfinished.

This module knows nothing about queries, models or what the caller does with the index.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import SaescopeError
from ..runs import index_beside, is_index_folder
from .format import read_header, sae_fingerprint

log = logging.getLogger(__name__)


def index_of_sae(
    tensors: dict[str, Any], sae_path: Path | str, index: Path | str | None = None
) -> Path | None:
    """The latent index of the SAE whose weights are `tensors` (`SparseAutoencoder.file_tensors()`),
    saved at `sae_path`: `index` when given, else its run's index when that indexes this SAE, else
    None (see the module docstring)."""
    fingerprint = sae_fingerprint(tensors)
    if index is not None:
        header = read_header(index)
        if header.sae_sha256 != fingerprint:
            raise SaescopeError(f"{index} indexes another SAE ({header.sae}), not the one in {sae_path}")
        return Path(index)
    candidate = index_beside(sae_path)
    if not is_index_folder(candidate):
        return None
    try:
        header = read_header(candidate)
    except SaescopeError as e:
        log.info("not using %s: %s", candidate, e)
        return None
    if header.sae_sha256 != fingerprint:
        log.info("%s indexes another SAE (%s); not using it", candidate, header.sae)
        return None
    return candidate


__all__ = ["index_of_sae"]
