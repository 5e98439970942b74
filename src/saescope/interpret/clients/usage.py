"""Counting what a run asked for and estimating what it cost.

`UsageMeter` counts calls, prompt and completion tokens, cache hits and failures per model, and
prices tokens from `PRICES` (US dollars per million input / output tokens, matched by the longest
prefix of the model name after any `provider/` part; batch calls at the backend's discount). The
table is a rough guide written at one point in time: pass your own prices to override it. It holds
the providers' own prices, so a call is priced only when its client says it went to the provider's
own endpoint (`priced`); the same model name at a proxy or a local server is counted but not
priced, as are models the table does not know. A model on this machine is free (discount 0). The
summary never shows a cost it could not estimate: it names what is unpriced, and why.

This module knows nothing about providers or requests beyond a model name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .base import ChatResponse

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}
"""Default prices, US dollars per million (input, output) tokens."""

NOT_IN_TABLE = "not in the price table"
NOT_OWN_ENDPOINT = "no price at this endpoint (the table holds the providers' own prices)"


def price_of(model: str, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The (input, output) price of `model` by longest matching prefix, or None."""
    name = model.rsplit("/", 1)[-1].lower()
    matches = [p for p in prices if name.startswith(p.lower())]
    return prices[max(matches, key=len)] if matches else None


@dataclass
class ModelUsage:
    """Counts for one model."""

    calls: int = 0
    """Answers received from the backend (cache hits not included)."""
    cached: int = 0
    """Answers served from the cache."""
    failed: int = 0
    """Requests that ended in an error."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    """Estimated US dollars of its priced calls."""
    priced: bool = True
    """Whether every call sent was priced (or free)."""
    unpriced_because: str = ""
    """Why its calls are not priced ("" when they are)."""


@dataclass
class UsageMeter:
    """Calls, tokens, cache hits and estimated cost, per model."""

    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(PRICES))
    """US dollars per million (input, output) tokens by model-name prefix."""
    models: dict[str, ModelUsage] = field(default_factory=dict)

    def record(self, model: str, response: ChatResponse, discount: float = 1.0, priced: bool = True) -> None:
        """Count one answer (`discount`: price factor, e.g. 0.5 for batch calls, 0 for local models;
        `priced`: whether it came from the provider's own endpoint, where the table's prices apply)."""
        usage = self.models.setdefault(model, ModelUsage())
        if response.cached:
            usage.cached += 1
            return
        if not response.ok:
            usage.failed += 1
        usage.calls += 1
        usage.prompt_tokens += response.prompt_tokens
        usage.completion_tokens += response.completion_tokens
        if discount == 0:  # free (a local model)
            return
        price = price_of(model, self.prices) if priced else None
        if price is None:
            usage.priced = False
            usage.unpriced_because = NOT_OWN_ENDPOINT if not priced else NOT_IN_TABLE
            return
        usage.cost += (
            discount * (response.prompt_tokens * price[0] + response.completion_tokens * price[1]) / 1e6
        )

    def total(self) -> ModelUsage:
        """Counts over every model."""
        out = ModelUsage()
        for u in self.models.values():
            out.calls += u.calls
            out.cached += u.cached
            out.failed += u.failed
            out.prompt_tokens += u.prompt_tokens
            out.completion_tokens += u.completion_tokens
            out.cost += u.cost
            out.priced = out.priced and (u.priced or u.calls == 0)
        return out

    def unpriced(self) -> dict[str, str]:
        """Model → why its calls are not priced, for every model with calls that are not."""
        return {m: u.unpriced_because for m, u in sorted(self.models.items()) if not u.priced and u.calls}

    def cost(self) -> float | None:
        """Estimated US dollars of the priced calls; None when calls were sent and none could be priced."""
        unpriced = self.unpriced()
        if unpriced and all(not u.calls or m in unpriced for m, u in self.models.items()):
            return None
        return self.total().cost

    def summary(self) -> str:
        """One line: `12 calls (3 cached, 1 failed), 10,234 prompt + 1,020 completion tokens, ≈$0.0021`;
        what is not priced is named instead (`…, cost unpriced (m: why)`) or beside the priced part."""
        t = self.total()
        line = (
            f"{t.calls} calls ({t.cached} cached, {t.failed} failed), "
            f"{t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion tokens"
        )
        unpriced = self.unpriced()
        why = "; ".join(f"{m}: {reason}" for m, reason in unpriced.items())
        cost = self.cost()
        if cost is None:
            return f"{line}, cost unpriced ({why})"
        return f"{line}, ≈${cost:.4f}" + (f" + unpriced calls ({why})" if unpriced else "")
