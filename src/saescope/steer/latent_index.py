"""The SAE's latent index, when it has one: where it is, and the explanations it holds.

An index answers for exactly one SAE: its `index.json` records the fingerprint of the SAE's
weights (`saescope.index.format.sae_fingerprint`), so an index is used only when that fingerprint is
this SAE's — `--index` when given (another SAE's index is an error), else `RUN/index` beside the
SAE folder `RUN/sae` (silently skipped when it indexes another SAE). Explanations are those
`saescope interpret` stored in the index (`saescope.index.read_explanations`).

This module knows nothing about models, interventions or generation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import SaescopeError
from ..index import read_explanations, read_header
from ..index.format import sae_fingerprint
from ..sae.base import SparseAutoencoder

log = logging.getLogger(__name__)


def find_index(sae: SparseAutoencoder, sae_path: Path, index: Path | None = None) -> Path | None:
    """The latent index of `sae` (saved at `sae_path`): `index` when given, else `RUN/index` when
    it indexes this SAE, else None (see the module docstring)."""
    fingerprint = sae_fingerprint(sae.file_tensors())
    if index is not None:
        header = read_header(index)
        if header.sae_sha256 != fingerprint:
            raise SaescopeError(f"{index} indexes another SAE ({header.sae}), not the one in {sae_path}")
        return Path(index)
    candidate = Path(sae_path).parent / "index"
    if not (candidate / "index.json").is_file():
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


def explanations_for(index: Path | None) -> dict[int, str]:
    """Latent → explanation from the index ({} without an index or explanations)."""
    return read_explanations(index) if index is not None else {}


__all__ = ["explanations_for", "find_index"]
