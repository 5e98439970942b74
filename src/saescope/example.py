"""One example window: tokens around one place in a corpus, with a latent's activation on each.

The latent index cuts them (top, quantile and random examples, sentences, documents), the
interpreter shows them to explainers and scorers, dashboards and the server draw them, and the JSON
of `saescope query --latent I --json` and of the server's API is `Example.to_json()`:

    {"doc_id": 3, "position": 41, "activation": 1.7,
     "tokens": [" the", " cat", " sat"], "activations": [0.0, 1.7, 0.2], "focus": 1}

`focus` marks the example's own token explicitly — the firing token of a top example, the best
(or, with `--agg last`, the last) token of a sentence or document, the random token a
non-activating window is centred on — as an index into `tokens` (-1 when there is none), so no
reader has to guess it from the window's shape.

This module knows nothing about where examples come from or how they are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple


class Example(NamedTuple):
    """A window of tokens with one latent's (or a weighted set of latents') activation on each."""

    tokens: Sequence[str]
    """The window's tokens, each decoded on its own, in order (leading spaces kept: `" def"`)."""
    activations: Sequence[float]
    """The activation on each token (same length as `tokens`; 0 where it does not fire)."""
    doc_id: int = -1
    """The model input (document or window of the corpus) it comes from (-1 when unknown)."""
    position: int = -1
    """Position of the focus token in that model input (-1 when unknown)."""
    activation: float = 0.0
    """The example's value: the activation at the focus token, or a sentence's or document's score
    (its maximum, mean or last activation)."""
    focus: int = -1
    """Index in `tokens` of the example's own token (-1 when it has none)."""

    @property
    def max_activation(self) -> float:
        """The largest activation in the window (0 for an empty window)."""
        return max(self.activations, default=0.0)

    @property
    def fires(self) -> bool:
        """Whether anything fires (activation > 0) in the window."""
        return self.max_activation > 0

    @property
    def focus_token(self) -> str | None:
        """The focus token's text (None when the example has no focus)."""
        return self.tokens[self.focus] if 0 <= self.focus < len(self.tokens) else None

    def text(self) -> str:
        """The window as plain text (its tokens joined)."""
        return "".join(self.tokens)

    def to_json(self) -> dict[str, Any]:
        """The example as JSON values (the `query --latent --json` contract, `focus` included)."""
        return {
            "doc_id": int(self.doc_id),
            "position": int(self.position),
            "activation": float(self.activation),
            "tokens": [str(t) for t in self.tokens],
            "activations": [float(a) for a in self.activations],
            "focus": int(self.focus),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Example:
        """An example from its JSON (`to_json`); `activation` defaults to the window's maximum and
        `doc_id`, `position` and `focus` to -1. ValueError when the lengths disagree or `focus` is
        outside the window."""
        tokens = tuple(str(t) for t in d["tokens"])
        acts = tuple(float(a) for a in d["activations"])
        if len(tokens) != len(acts):
            raise ValueError(f"an example has {len(tokens)} tokens but {len(acts)} activations")
        focus = int(d.get("focus", -1))
        if not -1 <= focus < len(tokens):
            raise ValueError(f"an example's focus {focus} is outside its {len(tokens)} tokens")
        activation = float(d.get("activation", max(acts, default=0.0)))
        return cls(tokens, acts, int(d.get("doc_id", -1)), int(d.get("position", -1)), activation, focus)


__all__ = ["Example"]
