"""`saescope query`: ask a latent index about latents, texts, documents and proxies.

Each option asks for one section (`QueryResult` has a field per section, None when not asked);
`--json` prints the asked sections as one document, keyed as the contracts say:

    --text TEXT         {"tokens": [{"position", "token", "latents": [{"latent", "activation"}]}]}
                        (+ "ranked" with --rank N)
    --latent I --top N  {"latent": I, "examples": [{"doc_id", "position", "activation", "tokens",
                        "activations", "focus"}]} (+ "unit", "unit_label", "agg", and the latent's
                        "fires" of the indexed "tokens", for sentences and documents)
    --quantiles Q, --random N, --neighbours N (with --latent)
                        "quantiles", "random", "neighbours"
    --cooccurring N     "cooccurring": {"by", "min_shared", "kept_by", "tokens", "fires",
                        "latents": [{"latent", "shared", "jaccard", "lift", "dense"}]}
    --logits N          "logits": {"unit", "sign", "top": [...], "bottom": [...]}
    --stats (with --latent)  "stats": its row of latents.parquet and "tokens" (indexed)
    --search 12:1,40:.5 "search": {"weights", "unit", "unit_label", "agg", "results": [example, …]}
    --proxy P           "proxy": {"name", "by", "min_firings", "tokens", "matching", "latents":
                        [{"latent", "precision", "recall", "auroc", "correlation", "fires"}]}; with
                        --latent also "proxy_histogram"
    --stats             "stats": tokens, docs, latents, dead and dense latents (and the dense
                        threshold), density histogram

Every count says which tokens it covers: the indexed tokens (`tokens`) stand beside it in the
rendering and in the JSON. A question with no honest answer is an error (a proxy that matches no
token) or says why it is empty (a latent that fires, but never on a sentence's last token).
Latents, units and proxies are checked before anything is computed; only `--text` loads the model
(and warns when the text is longer than the SAE's training context). Everything else reads the
index and the tokenizer. This module knows nothing about how the index is built.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..config import ModelSettings, QueryConfig
from ..config.query import parse_search_spec
from ..example import Example
from .bulk import partner_minimum, partner_record
from .proxies import parse_proxy
from .reader import Index, check_unit
from .results import (
    LOGIT_SIGN,
    LOGIT_UNIT,
    Cooccurrence,
    LogitEffects,
    Neighbour,
    ProxyHistogram,
    ProxyRanking,
    QuantileExamples,
)
from .terminal import shade, table, use_colour, visible
from .text_latents import TextLatents, bind_index_sae, text_latents, training_context
from .units import unit_label

DENSITY_EDGES = np.arange(-8.0, 0.01, 0.5)
"""log10 firing-frequency bins of the density histogram (Anthropic's feature density plot)."""


class IndexOverview(NamedTuple):
    """The whole index at a glance."""

    tokens: int
    """Indexed tokens: every count below is over these."""
    docs: int
    """Model inputs they come from."""
    docs_label: str
    """What a model input is (e.g. a window of packed documents)."""
    d_sae: int
    dead: list[int]
    """Latents that never fire on the indexed tokens."""
    dense: list[int]
    """Latents firing on more than `dense_frequency` of the indexed tokens."""
    dense_frequency: float
    """The build's dense threshold (a fraction of the indexed tokens)."""
    density_edges: list[float]
    """log10 frequency bin edges."""
    density_counts: list[int]
    """Live latents per bin (frequencies below the first edge fall in the first bin)."""


class Search(NamedTuple):
    weights: dict[int, float]
    unit: str
    unit_label: str
    """What a unit is, in words (a window of packed documents, …)."""
    agg: str
    results: list[Example]


class Partners(NamedTuple):
    """A latent's co-occurring latents, and what they were measured on."""

    by: str
    """jaccard or lift (`cooccurrence`)."""
    min_shared: int
    """Partners share at least this many indexed tokens with the latent."""
    kept_by: list[str]
    """The rankings the index kept partners for (["count"]: an older index kept the most frequent
    partners only, so the ranking is among those)."""
    tokens: int
    """Indexed tokens."""
    fires: int
    """Indexed tokens where the latent fires."""
    latents: list[Cooccurrence]

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "latents": [c._asdict() for c in self.latents]}


class QueryResult(NamedTuple):
    """The sections a query asked for (None: not asked)."""

    text: TextLatents | None = None
    """--text: every active latent of every token (and the ranking, with --rank)."""
    latent: int | None = None
    """--latent: the latent the following sections describe."""
    tokens: int = 0
    """Indexed tokens (what every count covers)."""
    fires: int = 0
    """Indexed tokens where --latent fires."""
    examples: list[Example] | None = None
    """Its top examples (tokens with context, or whole sentences or documents)."""
    unit: str = "token"
    unit_label: str = "token"
    """What a unit is, in words (`units.unit_label`)."""
    agg: str = "max"
    quantiles: list[QuantileExamples] | None = None
    random: list[Example] | None = None
    cooccurring: Partners | None = None
    neighbours: list[Neighbour] | None = None
    logits: LogitEffects | None = None
    statistics: dict[str, Any] | None = None
    """Its row of `latents.parquet` (with --stats)."""
    proxy_histogram: ProxyHistogram | None = None
    search: Search | None = None
    proxy: ProxyRanking | None = None
    summary: IndexOverview | None = None
    """--stats without --latent: the whole index."""

    # ------------------------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.text is not None:
            out["tokens"] = [t.to_json() for t in self.text.tokens]
            if self.text.ranked:
                out["ranked"] = [r._asdict() for r in self.text.ranked]
        if self.latent is not None:
            out["latent"] = self.latent
        out.update(self._latent_json())
        if self.search is not None:
            s = self.search
            out["search"] = {**s._asdict(), "weights": {str(k): v for k, v in s.weights.items()}}
            out["search"]["results"] = [e.to_json() for e in s.results]
        if self.proxy is not None:
            out["proxy"] = self.proxy.to_json()
        if self.summary is not None:
            out["stats"] = self.summary._asdict()
        return out

    def _latent_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.examples is not None:
            out["examples"] = [e.to_json() for e in self.examples]
            if self.unit != "token":
                out.update(unit=self.unit, unit_label=self.unit_label, agg=self.agg)
                out.update(fires=self.fires, tokens=self.tokens)
        if self.quantiles is not None:
            out["quantiles"] = [q.to_json() for q in self.quantiles]
        if self.random is not None:
            out["random"] = [e.to_json() for e in self.random]
        if self.cooccurring is not None:
            out["cooccurring"] = self.cooccurring.to_json()
        if self.neighbours is not None:
            out["neighbours"] = [n._asdict() for n in self.neighbours]
        if self.logits is not None:
            top, bottom = self.logits
            out["logits"] = {
                "unit": LOGIT_UNIT,
                "sign": LOGIT_SIGN,
                "top": [t._asdict() for t in top],
                "bottom": [t._asdict() for t in bottom],
            }
        if self.statistics is not None:
            out["stats"] = {**self.statistics, "tokens": self.tokens}
        if self.proxy_histogram is not None:
            out["proxy_histogram"] = self.proxy_histogram._asdict()
        return out

    # ----------------------------------------------------------------------------------- render
    def render(self) -> str:
        colour = use_colour()
        parts = [
            render_text(self.text, colour) if self.text is not None else "",
            self._render_latent(colour),
            render_search(self.search, colour) if self.search is not None else "",
            render_proxy(self.proxy) if self.proxy is not None else "",
            render_summary(self.summary) if self.summary is not None else "",
        ]
        return "\n\n".join(p for p in parts if p)

    def _render_latent(self, colour: bool) -> str:
        if self.latent is None:
            return ""
        what = "tokens" if self.unit == "token" else f"{plural(self.unit_label)} by {self.agg}"
        parts = [
            render_stats(self.latent, self.statistics, self.tokens) if self.statistics is not None else "",
            render_examples(f"latent {self.latent}: top {what}", self.examples, colour)
            if self.examples
            else "",
            render_quantiles(self.quantiles, colour) if self.quantiles is not None else "",
            render_examples("where it does not fire", self.random, colour) if self.random is not None else "",
            render_partners(self.cooccurring) if self.cooccurring is not None else "",
            render_neighbours(self.neighbours) if self.neighbours is not None else "",
            render_logits(self.logits) if self.logits is not None else "",
            render_histogram(self.proxy_histogram) if self.proxy_histogram is not None else "",
        ]
        if self.examples is not None and not self.examples:
            parts.insert(1, self._no_examples())
        return "\n\n".join(p for p in parts if p)

    def _no_examples(self) -> str:
        """Why --latent has no top examples: it never fires, or never where `--agg last` looks."""
        if not self.fires:
            return f"latent {self.latent} never fires on the {self.tokens:,} indexed tokens"
        return (
            f"latent {self.latent} fires on {self.fires:,} of the {self.tokens:,} indexed tokens, but on no "
            f"{self.unit_label}'s last token (--agg last; --agg max ranks where it fires)"
        )


# ----------------------------------------------------------------------------------- rendering
def plural(label: str) -> str:
    """`window (256 tokens of packed documents)` → `windows (256 tokens of packed documents)`."""
    noun, space, rest = label.partition(" (")
    return f"{noun}s{space}{rest}" if space else f"{noun}s"


def render_examples(title: str, examples: list[Example] | None, colour: bool) -> str:
    lines = [title]
    top = max((e.activation for e in examples or []), default=0.0)
    for e in examples or []:
        where = f"doc {e.doc_id}:{e.position}"
        lines.append(
            f"  {e.activation:8.3f}  {where:>14}  {shade(e.tokens, e.activations, top or None, colour)}"
        )
    return "\n".join(lines)


def render_quantiles(quantiles: list[QuantileExamples], colour: bool) -> str:
    blocks = [
        render_examples(
            f"quantile {q.quantile + 1}/{len(quantiles)} ({q.low:.3g}–{q.high:.3g})", q.examples, colour
        )
        for q in reversed(quantiles)
    ]
    return "\n".join(blocks)


def render_text(text: TextLatents, colour: bool) -> str:
    lines = ["latents on each token (largest first)"]
    for t in text.tokens:
        found = ", ".join(f"{a.latent}:{a.activation:.3g}" for a in t.latents[:8])
        more = f" (+{len(t.latents) - 8})" if len(t.latents) > 8 else ""
        lines.append(f"  {t.position:4d} {visible(t.token)!r:>14}  {found}{more}")
    if text.ranked:
        rows = [(r.latent, f"{r.max:.3f}", r.position, r.tokens, f"{r.total:.3f}") for r in text.ranked]
        head = f"latents over the whole text ({len(text.tokens):,} tokens; `tokens`: those where it fires)"
        lines += ["", head, table(rows, ("latent", "max", "at", "tokens", "sum"))]
    return "\n".join(lines)


def render_stats(latent: int, s: dict[str, Any], tokens: int) -> str:
    state = "dead" if s["dead"] else ("dense" if s["dense"] else "")
    quantiles = ", ".join(f"{k} {v:.3g}" for k, v in s.items() if k.startswith("q"))
    return (
        f"latent {latent}{' (' + state + ')' if state else ''}: fires on {s['count']:,} of {tokens:,} "
        f"indexed tokens ({s['frequency']:.3%}), max {s['max']:.3g}, mean when active {s['mean']:.3g}; "
        f"{quantiles}"
    )


def render_partners(p: Partners) -> str:
    rows = [
        (f"{c.latent}{' (dense)' if c.dense else ''}", c.shared, f"{c.jaccard:.3f}", f"{c.lift:.3g}")
        for c in p.latents
    ]
    head = (
        f"co-occurring latents by {p.by} (of its {p.fires:,} firings on {p.tokens:,} indexed tokens; "
        f"partners sharing at least {p.min_shared:,} tokens)"
    )
    if p.kept_by == ["count"]:
        head += (
            "\n  (this index kept each latent's most frequent partners only: rebuild it for an exact ranking)"
        )
    if not rows:
        return head + f"\n  none: no latent fires on {p.min_shared:,} or more of the same tokens"
    return head + "\n" + table(rows, ("latent", "shared", "jaccard", "lift"))


def render_neighbours(neighbours: list[Neighbour]) -> str:
    rows = [(n.latent, f"{n.cosine:.3f}") for n in neighbours]
    return "decoder neighbours\n" + table(rows, ("latent", "cosine"))


def render_logits(logits: LogitEffects) -> str:
    def line(side: str, effects: list[Any]) -> str:
        return f"  {side:>6}: " + "  ".join(f"{visible(t.token)!r} {t.effect:+.3g}" for t in effects)

    head = f"logit effects ({LOGIT_UNIT}; {LOGIT_SIGN})"
    return head + "\n" + line("raises", logits.top) + "\n" + line("lowers", logits.bottom)


def render_histogram(h: ProxyHistogram) -> str:
    rows = [
        (f"{lo:.3g}–{hi:.3g}", m, o) for lo, hi, m, o in zip(h.edges[:-1], h.edges[1:], h.matching, h.other)
    ]
    head = (
        f"activation histogram by proxy match ({h.matching_tokens:,} of {h.tokens:,} indexed tokens match; "
        f"it does not fire on {h.inactive_matching:,} of them)"
    )
    return head + "\n" + table(rows, ("activation", "matching", "other"))


def render_search(s: Search, colour: bool) -> str:
    weights = " + ".join(f"{w:g}·{k}" for k, w in s.weights.items())
    return render_examples(f"{plural(s.unit_label)} ranked by {weights} ({s.agg})", s.results, colour)


def render_proxy(p: ProxyRanking) -> str:
    rows = [
        (s.latent, f"{s.auroc:.3f}", f"{s.correlation:.3f}", f"{s.precision:.3f}", f"{s.recall:.3f}", s.fires)
        for s in p.latents
    ]
    among = f", among latents firing on at least {p.min_firings:,} tokens" if p.by == "precision" else ""
    head = (
        f"latents detecting proxy {p.name!r} ({p.matching:,} of {p.tokens:,} indexed tokens match; "
        f"by {p.by}{among})"
    )
    if not rows:
        return head + f"\n  none: no latent fires on {p.min_firings:,} or more tokens; lower --min-firings"
    return head + "\n" + table(rows, ("latent", "auroc", "corr", "precision", "recall", "fires"))


def some(ids: list[int], limit: int = 50) -> str:
    """Ids as a list, cut after `limit`."""
    if not ids:
        return "none"
    return ", ".join(map(str, ids[:limit])) + (" …" if len(ids) > limit else "")


def render_summary(s: IndexOverview) -> str:
    live = s.d_sae - len(s.dead)
    lines = [
        f"{s.tokens:,} indexed tokens in {s.docs:,} {plural(s.docs_label)}",
        f"{len(s.dead):,} dead of {s.d_sae:,} latents on {s.tokens:,} indexed tokens (never fire on them); "
        f"{len(s.dense):,} dense (fire on more than {100 * s.dense_frequency:g}% of them)",
        f"dead: {some(s.dead)}",
        f"dense: {some(s.dense)}",
        f"log10 firing frequency of the {live:,} live latents on {s.tokens:,} indexed tokens:",
    ]
    top = max(s.density_counts, default=0)
    for lo, count in zip(s.density_edges, s.density_counts):
        if count:
            lines.append(f"  {lo:5.1f}  {count:6d}  " + "#" * max(1, round(40 * count / top)))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ computing
def index_summary(index: Index) -> IndexOverview:
    stats = index.stats()
    latents = stats.column("latent").to_numpy()
    dead = latents[stats.column("dead").to_numpy(zero_copy_only=False)].tolist()
    dense = latents[stats.column("dense").to_numpy(zero_copy_only=False)].tolist()
    frequency = stats.column("frequency").to_numpy()
    live = np.log10(frequency[frequency > 0])
    which = np.clip(np.searchsorted(DENSITY_EDGES, live, side="right") - 1, 0, len(DENSITY_EDGES) - 2)
    counts = np.bincount(which, minlength=len(DENSITY_EDGES) - 1)
    h = index.header
    return IndexOverview(
        h.tokens,
        h.docs,
        unit_label(h.corpus, "document"),
        h.d_sae,
        dead,
        dense,
        float(h.settings.get("dense_frequency", 0.0)),
        DENSITY_EDGES[:-1].tolist(),
        counts.tolist(),
    )


def partners(index: Index, latent: int, n: int, by: str) -> Partners:
    """The --cooccurring section: the ranking and what it covers."""
    kept_by = list(partner_record(index.header).get("by", []))
    found = index.cooccurring(latent, n, by)
    fires = int(index.stats_of(latent)["count"])
    return Partners(by, partner_minimum(index.header), kept_by, index.tokens, fires, found)


def latent_sections(index: Index, cfg: QueryConfig, latent: int) -> dict[str, Any]:
    """The --latent sections asked for."""
    context = {"before": cfg.before, "after": cfg.after}
    unit = cfg.unit or "token"
    out: dict[str, Any] = {"latent": latent, "unit": unit, "agg": cfg.agg}
    out.update(unit_label=unit_label(index.header.corpus, unit), fires=int(index.stats_of(latent)["count"]))
    if cfg.top:
        out["examples"] = index.top_units(latent, cfg.top, unit, cfg.agg, **context)
    if cfg.quantiles:
        out["quantiles"] = index.quantile_examples(
            latent, cfg.quantiles, cfg.per_quantile, cfg.seed, **context
        )
    if cfg.random:
        out["random"] = index.random_examples(latent, cfg.random, cfg.seed, **context)
    if cfg.cooccurring:
        out["cooccurring"] = partners(index, latent, cfg.cooccurring, cfg.cooccurring_by)
    if cfg.neighbours:
        out["neighbours"] = index.neighbours(latent, cfg.neighbours)
    if cfg.logits:
        out["logits"] = index.logit_effects(latent, cfg.logits)
    if cfg.stats:
        out["statistics"] = index.stats_of(latent)
    if cfg.proxy is not None:
        out["proxy_histogram"] = index.proxy_histogram(latent, cfg.proxy, cfg.bins)
    return out


class Request(NamedTuple):
    """What a query asks, checked against the index before anything is computed."""

    latent: int | None
    """--latent, in range."""
    weights: dict[int, float]
    """--search, every latent in range ({} when not asked)."""


def checked_request(index: Index, cfg: QueryConfig) -> Request:
    """Every latent, unit and proxy of `cfg` checked against the index (LatentIndexError or
    ConfigError naming the first bad one), before any answer is computed or a model loaded."""
    latent = index.check_latent(cfg.latent) if cfg.latent is not None else None
    weights = dict(parse_search_spec(s) for s in cfg.search)
    for k in weights:
        index.check_latent(k)
    check_unit(cfg.unit or "token", cfg.agg)
    if cfg.proxy is not None:
        parse_proxy(cfg.proxy)
    return Request(latent, weights)


def query(cfg: QueryConfig) -> QueryResult:
    """Answer the questions `cfg` asks of the index at `cfg.index` (module docstring)."""
    index = Index(cfg.index)
    asked = checked_request(index, cfg)
    sections: dict[str, Any] = {"tokens": index.tokens}
    if asked.latent is not None:
        sections.update(latent_sections(index, cfg, asked.latent))
    if asked.weights:
        unit = cfg.unit or "document"
        results = index.search(asked.weights, cfg.top, unit, cfg.agg, cfg.before, cfg.after)
        label = unit_label(index.header.corpus, unit)
        sections["search"] = Search(asked.weights, unit, label, cfg.agg, results)
    if cfg.proxy is not None and asked.latent is None:
        sections["proxy"] = index.proxy_ranking(cfg.proxy, cfg.top, cfg.rank_by, cfg.min_firings)
    if cfg.stats and asked.latent is None:
        sections["summary"] = index_summary(index)
    if cfg.text is not None:
        settings = ModelSettings(
            model_dtype=cfg.model_dtype, device=cfg.device, device_map=cfg.device_map, threads=cfg.threads
        )
        bound = bind_index_sae(index.header, cfg.sae, settings, cfg.model or None, cfg.force)
        sections["text"] = text_latents(bound, cfg.text, cfg.rank, training_context(index.header))
    return QueryResult(**sections)


__all__ = ["IndexOverview", "Partners", "ProxyRanking", "QueryResult", "Search", "query"]
