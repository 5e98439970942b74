"""`saescope serve` settings: where to listen, who may connect, and the limits of one request.

The limits' defaults are sized for a laptop CPU running the embedded 135M-parameter model: a
request at every limit finishes in seconds, not minutes.

This module knows nothing about the web server.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require
from .base import GenerationSettings, check_choices

LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""Hosts that only this machine can reach: serving there needs no token."""
TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._~-")
"""What a token may hold: it travels in a URL, a header and a cookie unchanged."""


@dataclass(frozen=True)
class ServeConfig(GenerationSettings):
    """`saescope serve`: a browser UI and a JSON API over one run (latents, text inspector, steering)."""

    run: Path = field(default=Path(), metadata={"positional": True, "metavar": "RUN", "required": True})
    """The run folder (e.g. runs/demo, holding acts/, sae/, index/), or a published SAE's name
    (`hf:…`, `saelens:…`): its run folder."""

    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback (127.0.0.1, localhost, ::1) needs --token."""

    port: int = 8000
    """Port to listen on (0 picks a free one)."""

    token: str | None = None
    """Access token: every request must carry it (a `?token=` login sets a cookie). Required to
    listen beyond loopback."""

    max_prompt_tokens: int = 256
    """Longest prompt (tokens) a steering request may give."""

    max_prompts: int = 4
    """Prompts per steering request."""

    max_new_tokens: int = 64
    """Tokens a steering request may generate per prompt."""

    max_latents: int = 8
    """Latents one steering request may edit."""

    max_text_tokens: int = 256
    """Longest text (tokens) the text inspector takes."""

    max_effects_tokens: int = 64
    """Longest text (tokens) of an effects request (each active latent costs an ablation)."""

    max_examples: int = 200
    """Examples one latent query may return."""

    queue: int = 4
    """Generations that may wait while one runs; more get "busy, retry" (HTTP 503, Retry-After)."""

    model: str = ""
    """Model to run the SAE in. Default: the one the SAE records."""

    force: bool = False
    """Use --model even if the SAE was trained on another model."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(str(self.run) not in ("", "."), "give the run folder (e.g. runs/demo)")
        require(0 <= self.port <= 65535, f"--port must be in [0, 65535], got {self.port}")
        require(
            self.token is None or (len(self.token) >= 8 and set(self.token) <= TOKEN_CHARACTERS),
            "--token must be at least 8 characters among letters, digits and . _ ~ -",
        )
        require(
            self.host in LOOPBACK or self.token is not None,
            f"listening on {self.host} lets other machines connect: give --token (or use 127.0.0.1)",
        )
        for name in (
            "max_prompt_tokens",
            "max_prompts",
            "max_new_tokens",
            "max_latents",
            "max_text_tokens",
            "max_effects_tokens",
            "max_examples",
        ):
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
        require(self.queue >= 0, f"--queue must be >= 0, got {self.queue}")
        require(self.threads >= 0, f"--threads must be 0 (torch's default) or positive, got {self.threads}")
