"""Which latents fire on a text the user types: every active latent of every token, and a ranking.

The one query that needs the model: the index names its SAE, `bind_sae` loads it with its model,
and `bound.encode_text` runs the model up to the SAE's hookpoint only. An index answers only for
its own SAE: one given with `sae=` must have the same weights (`format.sae_fingerprint`). The text
is encoded as training saw it (BOS first when the tokenizer has one); BOS itself is not reported,
and positions count from the start of the model input (so the first text token is at 1 after BOS).
A text longer than the SAE's training context (`training_context`) is encoded whole, with one
warning: the positions beyond that context are out of the distribution the SAE was trained on.
This module knows nothing about the index's files beyond its header.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from ..bound import BoundSAE, bind_sae, encode_text
from ..config import ModelSettings
from ..errors import SaescopeError
from ..sae.hub import is_sae_name
from .format import IndexHeader, LatentIndexError, sae_fingerprint

log = logging.getLogger(__name__)


class ActiveLatent(NamedTuple):
    latent: int
    activation: float


class TokenLatents(NamedTuple):
    """One token of the text and every latent active on it, largest first."""

    position: int
    """Its position in the model input."""
    token: str
    """The token decoded on its own."""
    latents: list[ActiveLatent]

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "token": self.token,
            "latents": [a._asdict() for a in self.latents],
        }


class RankedLatent(NamedTuple):
    """A latent's activity over the whole text."""

    latent: int
    max: float
    """Its largest activation on the text."""
    position: int
    """Where that is."""
    tokens: int
    """Tokens of the text where it fires."""
    total: float
    """Sum of its activations over the text."""


class TextLatents(NamedTuple):
    """The latents of a text."""

    tokens: list[TokenLatents]
    """Every token of the text (BOS aside) with its active latents."""
    ranked: list[RankedLatent]
    """The latents firing anywhere in the text, by largest activation (as many as asked)."""


def bind_index_sae(
    header: IndexHeader, sae: Path | None, settings: ModelSettings, model: str | None, force: bool
) -> BoundSAE:
    """The index's SAE bound to its model; `LatentIndexError` when `sae` is another SAE."""
    path = Path(sae) if sae is not None else Path(header.sae)
    if not is_sae_name(path) and not path.exists():
        raise LatentIndexError(f"the index's SAE {path} is not there; pass --sae with its folder")
    bound = bind_sae(path, model, force=force, settings=settings)
    if sae_fingerprint(bound.sae.file_tensors()) != header.sae_sha256:
        raise LatentIndexError(f"the index was built with another SAE ({header.sae}) than {path}")
    return bound


def training_context(header: IndexHeader) -> int | None:
    """Tokens per model input the SAE was trained on: its training record's capture setting, else
    the context the index was built with (None when neither says)."""
    training = header.cfg.get("training")
    recorded = training.get("capture") if isinstance(training, dict) else None
    if isinstance(recorded, dict) and recorded.get("context_len"):
        return int(recorded["context_len"])
    if header.corpus and header.corpus.get("context_len"):
        return int(header.corpus["context_len"])
    return None


def rank_latents(tokens: list[TokenLatents], n: int) -> list[RankedLatent]:
    """The `n` latents with the largest activation on the text (ties: lower latent first)."""
    seen: dict[int, list[float]] = {}
    best: dict[int, tuple[float, int]] = {}
    for t in tokens:
        for a in t.latents:
            seen.setdefault(a.latent, []).append(a.activation)
            if a.latent not in best or a.activation > best[a.latent][0]:
                best[a.latent] = (a.activation, t.position)
    ranked = [RankedLatent(k, best[k][0], best[k][1], len(v), float(sum(v))) for k, v in seen.items()]
    return sorted(ranked, key=lambda r: (-r.max, r.latent))[:n]


def text_latents(bound: BoundSAE, text: str, rank: int = 0, context_len: int | None = None) -> TextLatents:
    """Every active latent of every token of `text`, and the `rank` top latents over it; warns when
    the text is longer than `context_len` (the SAE's training context)."""
    if not text.strip():
        raise SaescopeError("the query text is empty")
    codes = encode_text(bound, text)
    if context_len is not None and len(codes.token_ids) > context_len:
        log.warning(
            "the text is %d tokens, more than the %d the SAE was trained on: latents at positions %d "
            "and beyond are out of distribution",
            len(codes.token_ids),
            context_len,
            context_len,
        )
    tokens = []
    for position in codes.text_positions:
        pairs = codes.top(position, n=codes.latent_acts.shape[1])
        tokens.append(TokenLatents(position, codes.tokens[position], [ActiveLatent(i, a) for i, a in pairs]))
    return TextLatents(tokens, rank_latents(tokens, rank))


__all__ = [
    "ActiveLatent",
    "RankedLatent",
    "TextLatents",
    "TokenLatents",
    "bind_index_sae",
    "text_latents",
    "training_context",
]
