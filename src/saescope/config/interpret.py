"""`saescope interpret` settings, and the `--latents` spec (`0-99`, `3,17,40-45`) they accept.

The choices of `--backend` and `--scorers`, a backend's default model and whether it runs on this
machine, and whether a scorer asks a language model come from the declarations in `backends` and
`scorers` (which the interpret stage's registries extend when a backend or scorer is registered).
This module knows nothing about language models, scorers or how the index is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, require
from .backends import backend_names, backend_settings
from .base import check_choices
from .scorers import scorer_names, scorer_settings

ExplainerName = Literal["stats", "llm"]
ExampleStrategy = Literal["top", "quantiles", "mixed"]


class Names(list[str]):
    """Registered names offered as choices; it also holds a list of them, which is how argparse and
    `--config` check an option taking several (`--scorers detection,stats`)."""

    def __contains__(self, value: object) -> bool:
        if isinstance(value, (list, tuple)):
            return all(super(Names, self).__contains__(v) for v in value)
        return super().__contains__(value)


def _scorers() -> Names:
    return Names(scorer_names())


NO_KEY = "none"
"""`--api-key-env none`: an OpenAI-compatible server that needs no key (vLLM, Ollama, llama.cpp)."""


def parse_latent_spec(spec: str) -> tuple[int, ...]:
    """`0-99`, `3,17,40-45` → the latents named (ascending, each once); ranges include both ends."""
    latents: set[int] = set()
    for piece in spec.split(","):
        text = piece.strip()
        low, dash, high = text.partition("-")
        require(
            low.strip().isdigit() and (not dash or high.strip().isdigit()),
            f"--latents {spec!r}: {text!r} is not a latent or a range (e.g. 0-99 or 3,17,40-45)",
        )
        first, last = int(low), int(high) if dash else int(low)
        require(first <= last, f"--latents {spec!r}: the range {text} runs backwards")
        latents.update(range(first, last + 1))
    return tuple(sorted(latents))


@dataclass(frozen=True)
class InterpretConfig:
    """`saescope interpret`: explain latents of a latent index and score the explanations."""

    index: Path = field(default=Path(), metadata={"positional": True, "metavar": "INDEX", "required": True})
    """The latent index folder (e.g. runs/demo/index), or a published SAE's name (`hf:…`, `saelens:…`):
    the index `saescope index NAME` made; explanations and scores are stored in it."""

    explainer: ExplainerName = "stats"
    """`stats`: the tokens, n-grams and preceding tokens over-represented where a latent fires (no
    language model, instant); `llm`: a language model reads marked examples and writes a phrase."""

    backend: str = field(default="local", metadata={"choices": backend_names})
    """Language model for --explainer llm and the model-based scorers: `local` (a transformers
    model on this machine), `openai` (any OpenAI-compatible endpoint), `anthropic`, or their batch
    APIs (half price, answers within hours; a killed run resumes its batches): the backend
    registry's names. Cost is estimated only at a provider's own endpoint (a custom --base-url is
    reported unpriced)."""

    model: str = ""
    """Model name as the backend knows it. Default: smollm2-135m (local), gpt-4o-mini (openai),
    claude-haiku-4-5 (anthropic)."""

    base_url: str | None = None
    """Endpoint of an OpenAI-compatible or Anthropic server. Default: the provider's own."""

    api_key_env: str | None = None
    """Environment variable holding the API key (the key itself is never written anywhere).
    Default: OPENAI_API_KEY or ANTHROPIC_API_KEY; `none` for a server that needs no key."""

    scorers: tuple[str, ...] = field(default=(), metadata={"choices": _scorers})
    """How explanations are scored on held-out examples: detection, fuzzing, simulation (each
    asks the language model), stats (no model: the quoted tokens or statistics rules of the
    explanation predict firing). Default: detection,stats for --explainer llm with an online
    backend; stats otherwise (a small local model cannot label excerpts reliably)."""

    latents: str | None = None
    """Which latents: `0-99`, `3,17,40-45`. Default: every latent of the index."""

    sample: int | None = None
    """Explain this many latents drawn at random (seeded) among the chosen ones."""

    min_count: int = 10
    """Skip latents firing on fewer indexed tokens than this (dead latents are always skipped);
    latents with fewer than 20 firings are explained and marked few_examples."""

    train_examples: int = 40
    """Activating windows an explainer may read per latent: half the strongest, half spread over
    activation quantiles. Scoring windows are drawn from the other firings."""

    examples: int = 20
    """Windows shown to the language model, chosen among the train windows by --strategy."""

    strategy: ExampleStrategy = "mixed"
    """How the shown windows are chosen: `top` (strongest), `quantiles` (spread over activation
    quantiles) or `mixed` (half each)."""

    score_bins: int = 4
    """Activation quantiles the held-out scoring windows are drawn from."""

    score_per_bin: int = 5
    """Held-out activating windows per quantile; as many non-activating windows are added."""

    before: int = 12
    """Tokens of context before a window's activating token."""

    after: int = 4
    """Tokens of context after it."""

    chain_of_thought: bool = False
    """Ask the language model to reason before its answer (more tokens, often better phrases)."""

    concurrency: int = 8
    """Latents, and requests to an online endpoint, in flight at once (a local model answers one
    request at a time)."""

    timeout: float = 120.0
    """Seconds before a request is given up (and retried)."""

    retries: int = 5
    """Retries of a request after a rate limit, a server error, a timeout or a dropped connection."""

    device: str = "cpu"
    """Where a local model runs (`cpu`, `cuda`, `cuda:N`)."""

    cache: bool = True
    """Keep every answer in INDEX/interpret/responses.jsonl, so that a rerun asks nothing twice."""

    seed: int = 0
    """Seed of the latent sample, the examples drawn and the chance baselines."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(str(self.index) not in ("", "."), "give the index folder (e.g. runs/demo/index)")
        self._check_registered()
        if self.latents is not None:
            parse_latent_spec(self.latents)
        require(self.sample is None or self.sample > 0, f"--sample must be positive, got {self.sample}")
        require(self.min_count >= 1, f"--min-count must be at least 1, got {self.min_count}")
        for name in ("train_examples", "examples", "score_bins", "score_per_bin", "concurrency"):
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
        require(self.before >= 0 and self.after >= 0, "--before and --after must be >= 0")
        require(self.retries >= 0, f"--retries must be >= 0, got {self.retries}")
        require(
            math.isfinite(self.timeout) and self.timeout > 0,
            f"--timeout must be positive, got {self.timeout}",
        )
        if backend_settings(self.backend).local:
            for name in ("base_url", "api_key_env"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"--{name.replace('_', '-')} does not apply to --backend {self.backend}"
                    )

    def _check_registered(self) -> None:
        """`backend` and `scorers` name registered ones (the CLI checks this too, the Python API
        only here)."""
        backends, scorers = backend_names(), scorer_names()
        require(
            self.backend in backends,
            f"--backend must be one of {', '.join(backends)}, got {self.backend!r}",
        )
        unknown = [s for s in self.scorers if s not in scorers]
        require(not unknown, f"--scorers: unknown {', '.join(unknown)}; choose from {', '.join(scorers)}")

    @property
    def chosen_scorers(self) -> tuple[str, ...]:
        """The scorers to run (`scorers`, or the default for the explainer), each once."""
        online = self.explainer == "llm" and not backend_settings(self.backend).local
        default = ("detection", "stats") if online else ("stats",)
        return tuple(dict.fromkeys(self.scorers or default))

    @property
    def llm_model(self) -> str:
        """The model to ask (`model`, or the backend's default)."""
        return self.model or backend_settings(self.backend).default_model

    @property
    def needs_llm(self) -> bool:
        """Whether the explainer or a scorer asks a language model."""
        return self.explainer == "llm" or any(scorer_settings(s).asks_llm for s in self.chosen_scorers)
