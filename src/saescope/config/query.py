"""`saescope query` settings.

A weighted search is written `LATENT[:WEIGHT]`, several comma-separated (`12:1,40:0.5`);
`parse_search_spec` reads one.

This module knows nothing about how the index is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, require
from .base import GenerationSettings, check_choices

Unit = Literal["token", "sentence", "document"]
Aggregation = Literal["max", "mean", "last"]
ProxyMetric = Literal["auroc", "correlation", "precision", "recall"]
PartnerMetric = Literal["jaccard", "lift"]


def parse_search_spec(spec: str) -> tuple[int, float]:
    """`LATENT[:WEIGHT]` → (latent, weight); weight 1 when omitted."""
    latent_text, _, weight_text = spec.strip().partition(":")
    where = f"--search {spec!r}"
    require(latent_text.strip().isdigit(), f"{where}: expected LATENT[:WEIGHT], e.g. 12 or 12:0.5")
    if not weight_text:
        return int(latent_text), 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        raise ConfigError(f"{where}: the weight {weight_text!r} is not a number") from None
    require(math.isfinite(weight) and weight != 0, f"{where}: the weight must be finite and not 0")
    return int(latent_text), weight


@dataclass(frozen=True)
class QueryConfig(GenerationSettings):
    """`saescope query`: examples, statistics and relations of latents in a latent index."""

    index: Path = field(default=Path(), metadata={"positional": True, "metavar": "INDEX", "required": True})
    """The index folder (e.g. runs/demo/index), or a published SAE's name (`hf:…`, `saelens:…`): the
    index `saescope index NAME` made."""

    text: str | None = None
    """Show every active latent of every token of this text (runs the model up to the SAE)."""

    rank: int = 0
    """With --text: also rank the latents over the whole text (this many, by largest activation)."""

    sae: Path | None = None
    """With --text: the SAE folder (or published name). Default: the one the index records (it must
    be the same SAE)."""

    latent: int | None = None
    """The latent to show (its top examples unless --top 0; other sections on request)."""

    top: int = 20
    """Top examples of --latent, or top documents of --search."""

    unit: Unit | None = None
    """What a top example or search result is: a `token` with its context, a `sentence` or a
    `document` (sentences end after tokens ending in . ! ? or holding a line break). A `document` is
    a model input: for a corpus packed into fixed-length windows it is a window of packed documents,
    and the output says so. Default: token for --latent, document for --search."""

    agg: Aggregation = "max"
    """How a sentence or document is scored from its tokens: `max`, `mean` (over all its indexed
    tokens) or `last` (its last token; a sentence cut off by the end of its window has none)."""

    before: int = 12
    """Tokens of context shown before an example's token."""

    after: int = 4
    """Tokens of context shown after an example's token."""

    quantiles: int = 0
    """Also show examples from this many activation quantiles of --latent (equal counts, delphi)."""

    per_quantile: int = 3
    """Examples drawn from each quantile."""

    random: int = 0
    """Also show this many random examples where --latent does not fire (in the whole window)."""

    cooccurring: int = 0
    """Also show this many latents firing on the same tokens as --latent (ranked by
    --cooccurring-by; dense partners are marked)."""

    cooccurring_by: PartnerMetric = "jaccard"
    """Rank co-occurring latents by `jaccard` (shared tokens / tokens where either fires: high only
    when the two fire together most of the time each fires) or `lift` (how many times more often
    they fire together than independent latents would: finds rare partners, is noisier). Jaccard
    is the default: bounded, and a dense latent, which fires with everything, scores low on it,
    where a raw count of shared tokens ranks dense latents first for every latent."""

    neighbours: int = 0
    """Also show this many latents with the most similar decoder directions (cosine)."""

    logits: int = 0
    """Also show this many tokens whose logits --latent raises most and lowers most."""

    search: tuple[str, ...] = ()
    """Rank documents by one latent or a weighted set: `LATENT[:WEIGHT]`, e.g. 12:1,40:0.5
    (--unit and --agg say what is ranked and how)."""

    proxy: str | None = None
    """Rank latents by how well they detect a proxy (precision, recall, AUROC, correlation): a named
    proxy (arabic, hebrew, cyrillic, cjk, dna, base64, python-keywords, digits, punctuation),
    `regex:PATTERN` or `script:NAME` (a Unicode script). With --latent: its activation histogram
    split by proxy match."""

    rank_by: ProxyMetric = "auroc"
    """With --proxy: rank latents by auroc, correlation, precision or recall."""

    min_firings: int = 10
    """With --proxy --rank-by precision: leave out latents firing on fewer indexed tokens (a latent
    firing once, on a matching token, has precision 1.0)."""

    bins: int = 20
    """Bins of activation histograms."""

    stats: bool = False
    """Show the index's statistics: dead and dense latents and the histogram of firing frequencies;
    with --latent, that latent's statistics."""

    seed: int = 0
    """Seed of random and quantile samples."""

    force: bool = False
    """With --text: run even if --model differs from the SAE's model."""

    model: str = ""
    """With --text: the model to run. Default: the one the SAE records."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(str(self.index) not in ("", "."), "give the index folder (e.g. runs/demo/index)")
        asked = (self.text, self.latent, self.proxy)
        require(
            any(a is not None for a in asked) or bool(self.search) or self.stats,
            "ask something: --text, --latent, --search, --proxy or --stats",
        )
        require(self.text is None or self.text.strip() != "", "the query text is empty")
        require(self.latent is None or self.latent >= 0, f"--latent must be >= 0, got {self.latent}")
        for name in ("rank", "top", "before", "after", "quantiles", "random", "cooccurring", "neighbours"):
            value = getattr(self, name)
            require(value >= 0, f"--{name} must be >= 0, got {value}")
        require(self.logits >= 0, f"--logits must be >= 0, got {self.logits}")
        require(self.per_quantile > 0, f"--per-quantile must be positive, got {self.per_quantile}")
        require(self.bins > 0, f"--bins must be positive, got {self.bins}")
        require(self.min_firings > 0, f"--min-firings must be positive, got {self.min_firings}")
        for spec in self.search:
            parse_search_spec(spec)
