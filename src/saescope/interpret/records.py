"""What the interpreter knows about one SAE latent: its examples and its firing statistics.

An example is a window of decoded tokens around one place in the corpus with the latent's
activation on every token (`saescope.example.Example`, what the latent index answers). A
`LatentRecord` gathers, for one latent, the examples an explainer may
read (`train`, plus optional non-activating `background` text for contrast) and the examples only
scorers see (`held_out`: activating examples from several activation quantiles mixed with
non-activating ones), with the latent's firing frequency and maximum activation.

`mark_active` writes an example the way explainers and scorers show it to a language model: tokens
whose activation is above a fraction of the example's maximum (0.3 by default) are wrapped in
`<<` and `>>`, adjacent active tokens merged into one span (delphi's format).

This module knows nothing about language models, prompts, scoring or the latent index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..example import Example

DEFAULT_ACTIVE_FRACTION = 0.3
"""A token is *active* (marked) when its activation exceeds this fraction of the example's maximum."""

OPEN_MARK = "<<"
CLOSE_MARK = ">>"


class TokenStat(NamedTuple):
    """Corpus-wide counts for one token (optional; from the latent index)."""

    token: str
    """The decoded token."""
    firings: int
    """How many of the latent's firings are on this token."""
    occurrences: int
    """How often the token occurs in the indexed corpus."""


@dataclass(frozen=True)
class LatentRecord:
    """Everything the interpreter uses about one latent."""

    latent: int
    """The latent's index in its SAE."""
    train: tuple[Example, ...]
    """Activating examples explainers read (typically top and quantile-sampled windows)."""
    held_out: tuple[Example, ...] = ()
    """Examples only scorers see: activating ones from several quantiles and non-activating ones."""
    background: tuple[Example, ...] = ()
    """Non-activating text explainers may contrast against (never scored; may be empty)."""
    frequency: float = 0.0
    """Fraction of indexed tokens on which the latent fires."""
    count: int = 0
    """Number of indexed tokens on which the latent fires."""
    max_activation: float = 0.0
    """Largest activation seen in the index (0: take it from the examples)."""
    token_stats: tuple[TokenStat, ...] | None = None
    """Per-token firing and occurrence counts over the whole corpus, when the index has them."""

    @property
    def n_firings(self) -> int:
        """Firings known: `count` when set, else the firing tokens in the train examples."""
        if self.count:
            return self.count
        return sum(1 for ex in self.train for a in ex.activations if a > 0)

    @property
    def held_out_active(self) -> tuple[Example, ...]:
        """Held-out examples where the latent fires somewhere."""
        return tuple(ex for ex in self.held_out if ex.fires)

    @property
    def held_out_inactive(self) -> tuple[Example, ...]:
        """Held-out examples where the latent never fires."""
        return tuple(ex for ex in self.held_out if not ex.fires)


def active_mask(example: Example, fraction: float = DEFAULT_ACTIVE_FRACTION) -> list[bool]:
    """Which tokens are active: activation > 0 and above `fraction` × the example's maximum."""
    top = example.max_activation
    if top <= 0:
        return [False] * len(example.tokens)
    return [a > 0 and a >= fraction * top for a in example.activations]


def mark_tokens(tokens: Sequence[str], mask: Sequence[bool]) -> str:
    """Join `tokens`, wrapping each run of masked tokens in `<<` `>>`.

    Whitespace at the edges of a run stays outside the markers (`" the <<cat sat>> on"`), so a
    marked span reads as the words themselves.
    """
    parts: list[str] = []
    i = 0
    while i < len(tokens):
        if not mask[i]:
            parts.append(tokens[i])
            i += 1
            continue
        j = i
        while j < len(tokens) and mask[j]:
            j += 1
        span = "".join(tokens[i:j])
        body = span.strip()
        if not body:  # a run of pure whitespace: mark it as it is
            parts.append(f"{OPEN_MARK}{span}{CLOSE_MARK}")
        else:
            lead = span[: len(span) - len(span.lstrip())]
            trail = span[len(span.rstrip()) :]
            parts.append(f"{lead}{OPEN_MARK}{body}{CLOSE_MARK}{trail}")
        i = j
    return "".join(parts)


def mark_active(example: Example, fraction: float = DEFAULT_ACTIVE_FRACTION) -> str:
    """The example's text with its active tokens marked `<<like this>>` (adjacent ones merged)."""
    return mark_tokens(example.tokens, active_mask(example, fraction))


def active_tokens(example: Example, fraction: float = DEFAULT_ACTIVE_FRACTION) -> list[tuple[str, float]]:
    """The active tokens and their activations, in order."""
    mask = active_mask(example, fraction)
    return [(t, float(a)) for t, a, m in zip(example.tokens, example.activations, mask) if m]


def scale_0_10(values: Sequence[float], top: float) -> list[int]:
    """Activations rescaled to integers 0–10 against `top` (OpenAI's simulation scale); 0 when `top` ≤ 0."""
    if top <= 0:
        return [0] * len(values)
    return [max(0, min(10, round(10 * float(v) / top))) for v in values]
