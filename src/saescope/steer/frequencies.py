"""Per-latent firing frequency and maximum activation, from the best source at hand.

Steering needs them to clamp "to 10× the latent's maximum" (Scaling Monosemanticity's Golden
Gate demo) and to pick control latents of similar frequency; contrast needs frequencies to leave
out latents that fire on generic text. Sources, best first:

1. the SAE's latent index (`--index`, else `RUN/index` when it indexes this SAE:
   `saescope.index.locate`), through `saescope.index.read_latent_table`;
2. `eval_latents.safetensors` beside the SAE (`saescope eval`: frequencies only — used when no
   maximum is needed);
3. measured here on `tokens` held-out tokens (`bound.heldout_corpus`, the SAE's own positions).

`FiringStats.source` says which one was used; every result that depends on it reports it.
This module knows nothing about interventions or generation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..bound import BoundSAE, heldout_corpus
from ..data import iter_model_inputs
from ..errors import SaescopeError
from ..index import read_latent_table
from ..index.locate import index_of_sae
from ..positions import iter_positions

log = logging.getLogger(__name__)

EVAL_LATENTS = "eval_latents.safetensors"


class FiringStats(NamedTuple):
    """Per-latent statistics of one SAE."""

    frequency: Tensor
    """[d_sae] fraction of tokens where the latent fires (float64, CPU)."""
    maximum: Tensor | None
    """[d_sae] its largest activation seen (float64, CPU); None when the source has none."""
    source: str
    """Where they come from (an index folder, eval_latents.safetensors, or held-out text)."""


def index_stats(index: Path, d_sae: int) -> FiringStats:
    """Frequencies and maxima from a latent index (`saescope.index.read_latent_table`)."""
    table = read_latent_table(index)
    latents = table.column("latent").to_numpy().astype(np.int64)
    frequency = np.zeros(d_sae)
    maximum = np.zeros(d_sae)
    frequency[latents] = table.column("frequency").to_numpy()
    maximum[latents] = table.column("max").to_numpy()
    return FiringStats(torch.from_numpy(frequency), torch.from_numpy(maximum), f"latent index {index}")


def eval_stats(sae_path: Path, d_sae: int) -> FiringStats | None:
    """Frequencies from `eval_latents.safetensors` beside the SAE, if it is there and fits."""
    path = Path(sae_path) / EVAL_LATENTS
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    frequency = load_file(path).get("frequency")
    if frequency is None or frequency.shape != (d_sae,):
        log.warning("%s does not hold %d frequencies; ignoring it", path, d_sae)
        return None
    return FiringStats(frequency.double(), None, str(path))


@torch.inference_mode()
def measured_stats(bound: BoundSAE, tokens: int, batch_size: int = 8) -> FiringStats:
    """Frequencies and maxima measured on `tokens` held-out tokens at the SAE's own positions."""
    sae, loaded = bound.sae, bound.loaded_model
    corpus, start = heldout_corpus(sae)
    fired = torch.zeros(sae.d_sae, dtype=torch.float64)
    maximum = torch.zeros(sae.d_sae)
    seen = 0

    def inputs() -> Any:
        nonlocal seen
        for item in iter_model_inputs(corpus, loaded.tokenizer, start):
            if seen >= tokens:
                return
            seen += len(item.positions)
            yield item

    bar = tqdm(total=tokens, desc="latent statistics", unit="tok", dynamic_ncols=True)
    count = 0
    for pb in iter_positions(loaded, [bound.hookpoint], inputs(), batch_size):
        acts, idx, _ = sae.encode(pb.activations[bound.hookpoint.name].float())
        acts, idx = acts.flatten().cpu(), idx.flatten().cpu()
        on = acts > 0
        fired += torch.bincount(idx[on], minlength=sae.d_sae).double()
        maximum = maximum.scatter_reduce(0, idx[on], acts[on], reduce="amax")
        count += pb.token_ids.numel()
        bar.update(pb.token_ids.numel())
    bar.close()
    if count == 0:
        raise SaescopeError("no held-out text to measure latent statistics on")
    return FiringStats(fired / count, maximum.double(), f"measured on {count} held-out tokens")


def firing_stats(
    bound: BoundSAE, index: Path | None = None, tokens: int = 4096, need_maximum: bool = True
) -> FiringStats:
    """The SAE's per-latent statistics from the best source (see the module docstring)."""
    found = index_of_sae(bound.sae.file_tensors(), bound.path, index)
    if found is not None:
        return index_stats(found, bound.sae.d_sae)
    if not need_maximum:
        from_eval = eval_stats(bound.path, bound.sae.d_sae)
        if from_eval is not None:
            return from_eval
    log.info("no latent index for %s; measuring latent statistics on %d held-out tokens", bound.path, tokens)
    return measured_stats(bound, tokens)


__all__ = ["FiringStats", "eval_stats", "firing_stats", "index_stats", "measured_stats"]
