"""Tokens shaded by activation, for the terminal.

On a TTY, a token's background is one of five ANSI 256-colour shades of orange by its activation
relative to a maximum (black text on top); elsewhere (a pipe, a file, a test) an active token is
written `[[token]]/value`. Line breaks inside tokens are shown as `↵` so an example stays on one line.
This module knows nothing about indexes or latents; `render/` builds HTML the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

SHADES = (230, 223, 216, 209, 202)
"""xterm-256 background colours from faint to strong."""
RESET = "\x1b[0m"


def use_colour() -> bool:
    """Whether stdout is a terminal (ANSI colours) rather than a pipe or a file."""
    return sys.stdout.isatty()


def visible(token: str) -> str:
    """A token as shown on one line."""
    return token.replace("\r", "").replace("\n", "↵")


def shade(
    tokens: Sequence[str], activations: Sequence[float], top: float | None = None, colour: bool = False
) -> str:
    """The tokens joined, each active one shaded by activation / `top` (default: the largest here)."""
    top = top if top is not None else max((a for a in activations), default=0.0)
    parts = []
    for token, a in zip(tokens, activations):
        text = visible(token)
        if a <= 0 or top <= 0:
            parts.append(text)
        elif colour:
            level = min(len(SHADES) - 1, int(len(SHADES) * a / top))
            parts.append(f"\x1b[48;5;{SHADES[level]}m\x1b[30m{text}{RESET}")
        else:
            parts.append(f"[[{text}]]/{a:.3g}")
    return "".join(parts)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


__all__ = ["shade", "table", "use_colour", "visible"]
