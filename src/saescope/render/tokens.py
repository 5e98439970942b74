"""Tokens shaded by a latent's activation: the HTML of one example window or one text.

Each token is a `<span>` whose background is shaded by its activation relative to a scale (the
latent's maximum, so shades compare across examples), with the exact value in its `title`
(shown on hover). Whitespace is made visible, since a latent firing on a newline or a run of
spaces is common and invisible otherwise: a line break shows as ↵, a tab as →, a token made only
of spaces as middle dots. The example's own token is outlined.

Built with plain string formatting and `markupsafe.escape` rather than a template per token: a
dashboard of a large SAE renders millions of tokens. Every token text is escaped here.

This module knows nothing about latent indexes, models or pages.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from markupsafe import Markup, escape

VISIBLE = {"\n": "↵", "\r": "␍", "\t": "→"}
"""How invisible characters are shown."""
ALPHA_STEPS = 20
"""Shades are rounded to this many steps (fewer distinct style strings, same look)."""


def visible(token: str) -> str:
    """`token` with line breaks, carriage returns and tabs shown as symbols, and a token made only
    of spaces shown as middle dots (an empty token as ∅)."""
    if token == "":
        return "∅"
    if token.strip(" ") == "":
        return "·" * len(token)
    if not any(c in token for c in VISIBLE):
        return token
    return "".join(VISIBLE.get(c, c) for c in token)


def shade(activation: float, scale: float) -> float:
    """Opacity in [0, 1] of a token's background: activation / scale, clipped and rounded."""
    if scale <= 0 or activation <= 0:
        return 0.0
    return round(min(activation / scale, 1.0) * ALPHA_STEPS) / ALPHA_STEPS


@functools.lru_cache(maxsize=65536)
def _shown(token: str) -> tuple[str, str]:
    """(escaped visible text, CSS classes) of a token; cached: a corpus repeats its tokens."""
    shown = visible(token)
    return str(escape(shown)), ("tok ws" if shown != token else "tok")


_STYLES = [""] + [
    f' style="background:rgba(255,128,0,{i / ALPHA_STEPS:g})"' for i in range(1, ALPHA_STEPS + 1)
]
"""The style attribute of each shade step (none for step 0)."""


def token_span(token: str, activation: float, scale: float, focus: bool = False, index: int = -1) -> str:
    """One token's `<span>` (see the module docstring); `index` >= 0 adds `data-i` for scripts."""
    text, classes = _shown(token)
    if focus:
        classes += " focus"
    style = _STYLES[round(shade(activation, scale) * ALPHA_STEPS)]
    data = f' data-i="{index}"' if index >= 0 else ""
    title = f"{activation:.3f}" if activation != 0 else "0"
    return f'<span class="{classes}"{style}{data} title="{title}">{text}</span>'


def highlight(
    tokens: Sequence[str],
    activations: Sequence[float],
    scale: float,
    focus: int = -1,
    numbered: bool = False,
) -> Markup:
    """The tokens as shaded spans in one `<span class="tokens">` (the token at index `focus`
    outlined; `numbered` adds each token's index for scripts)."""
    if len(tokens) != len(activations):
        raise ValueError(f"{len(tokens)} tokens but {len(activations)} activations")
    spans = [
        token_span(t, a, scale, i == focus, i if numbered else -1)
        for i, (t, a) in enumerate(zip(tokens, activations))
    ]
    return Markup('<span class="tokens">' + "".join(spans) + "</span>")


__all__ = ["ALPHA_STEPS", "VISIBLE", "highlight", "shade", "token_span", "visible"]
