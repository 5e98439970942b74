"""`saescope query`: ask a latent index about latents, texts, documents and proxies.

Each option asks for one section (`QueryResult` has a field per section, None when not asked);
`--json` prints the asked sections as one document, keyed as the contracts say:

    --text TEXT         {"tokens": [{"position", "token", "latents": [{"latent", "activation"}]}]}
                        (+ "ranked" with --rank N)
    --latent I --top N  {"latent": I, "examples": [{"doc_id", "position", "activation", "tokens",
                        "activations"}]} (+ "unit", "agg" for sentences and documents)
    --quantiles Q, --random N, --cooccurring N, --neighbours N, --logits N, --stats (with --latent)
                        "quantiles", "random", "cooccurring", "neighbours", "logits", "stats"
    --search 12:1,40:.5 "search": {"weights", "unit", "agg", "results": [example, …]}
    --proxy P           "proxy": {"name", "by", "latents": [{"latent", "precision", "recall", "auroc",
                        "correlation", "fires"}]}; with --latent also "proxy_histogram"
    --stats             "stats": tokens, docs, latents, dead and dense latents, density histogram

Only `--text` loads the model; everything else reads the index and the tokenizer.
This module knows nothing about how the index is built.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..config import ModelSettings, QueryConfig
from ..config.query import parse_search_spec
from .proxies import parse_proxy
from .reader import Index
from .results import (
    Cooccurrence,
    Example,
    LogitEffects,
    Neighbour,
    ProxyHistogram,
    ProxyScore,
    QuantileExamples,
)
from .terminal import shade, table, use_colour, visible
from .text_latents import TextLatents, bind_index_sae, text_latents

DENSITY_EDGES = np.arange(-8.0, 0.01, 0.5)
"""log10 firing-frequency bins of the density histogram (Anthropic's feature density plot)."""


class IndexOverview(NamedTuple):
    """The whole index at a glance."""

    tokens: int
    docs: int
    d_sae: int
    dead: list[int]
    """Latents that never fire on the indexed text."""
    dense: list[int]
    """Latents firing on more than the build's dense threshold of tokens."""
    density_edges: list[float]
    """log10 frequency bin edges."""
    density_counts: list[int]
    """Live latents per bin (frequencies below the first edge fall in the first bin)."""


class Search(NamedTuple):
    weights: dict[int, float]
    unit: str
    agg: str
    results: list[Example]


class ProxyRanking(NamedTuple):
    name: str
    by: str
    latents: list[ProxyScore]


class QueryResult(NamedTuple):
    """The sections a query asked for (None: not asked)."""

    text: TextLatents | None = None
    """--text: every active latent of every token (and the ranking, with --rank)."""
    latent: int | None = None
    """--latent: the latent the following sections describe."""
    examples: list[Example] | None = None
    """Its top examples (tokens with context, or whole sentences or documents)."""
    unit: str = "token"
    agg: str = "max"
    quantiles: list[QuantileExamples] | None = None
    random: list[Example] | None = None
    cooccurring: list[Cooccurrence] | None = None
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
            out["search"] = {
                "weights": {str(k): v for k, v in s.weights.items()},
                "unit": s.unit,
                "agg": s.agg,
                "results": [e.to_json() for e in s.results],
            }
        if self.proxy is not None:
            p = self.proxy
            out["proxy"] = {"name": p.name, "by": p.by, "latents": [s._asdict() for s in p.latents]}
        if self.summary is not None:
            out["stats"] = self.summary._asdict()
        return out

    def _latent_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.examples is not None:
            out["examples"] = [e.to_json() for e in self.examples]
            if self.unit != "token":
                out.update(unit=self.unit, agg=self.agg)
        if self.quantiles is not None:
            out["quantiles"] = [q.to_json() for q in self.quantiles]
        if self.random is not None:
            out["random"] = [e.to_json() for e in self.random]
        if self.cooccurring is not None:
            out["cooccurring"] = [c._asdict() for c in self.cooccurring]
        if self.neighbours is not None:
            out["neighbours"] = [n._asdict() for n in self.neighbours]
        if self.logits is not None:
            top, bottom = self.logits
            out["logits"] = {"top": [t._asdict() for t in top], "bottom": [t._asdict() for t in bottom]}
        if self.statistics is not None:
            out["stats"] = self.statistics
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
        what = "tokens" if self.unit == "token" else f"{self.unit}s by {self.agg}"
        parts = [
            render_stats(self.latent, self.statistics) if self.statistics is not None else "",
            render_examples(f"latent {self.latent}: top {what}", self.examples, colour)
            if self.examples
            else "",
            render_quantiles(self.quantiles, colour) if self.quantiles is not None else "",
            render_examples("where it does not fire", self.random, colour) if self.random is not None else "",
            render_relations(self.cooccurring, self.neighbours),
            render_logits(self.logits) if self.logits is not None else "",
            render_histogram(self.proxy_histogram) if self.proxy_histogram is not None else "",
        ]
        if self.examples is not None and not self.examples:
            parts.insert(1, f"latent {self.latent} never fires on the indexed text")
        return "\n\n".join(p for p in parts if p)


# ----------------------------------------------------------------------------------- rendering
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
        lines += ["", "latents over the whole text", table(rows, ("latent", "max", "at", "tokens", "sum"))]
    return "\n".join(lines)


def render_stats(latent: int, s: dict[str, Any]) -> str:
    state = "dead" if s["dead"] else ("dense" if s["dense"] else "")
    quantiles = ", ".join(f"{k} {v:.3g}" for k, v in s.items() if k.startswith("q"))
    return (
        f"latent {latent}{' (' + state + ')' if state else ''}: fires on {s['count']:,} tokens "
        f"({s['frequency']:.3%}), max {s['max']:.3g}, mean when active {s['mean']:.3g}; {quantiles}"
    )


def render_relations(cooccurring: list[Cooccurrence] | None, neighbours: list[Neighbour] | None) -> str:
    parts = []
    if cooccurring is not None:
        rows = [(c.latent, c.shared, f"{c.jaccard:.3f}") for c in cooccurring]
        parts.append("co-occurring latents\n" + table(rows, ("latent", "shared", "jaccard")))
    if neighbours is not None:
        rows2 = [(n.latent, f"{n.cosine:.3f}") for n in neighbours]
        parts.append("decoder neighbours\n" + table(rows2, ("latent", "cosine")))
    return "\n\n".join(parts)


def render_logits(logits: LogitEffects) -> str:
    def line(side: str, effects: list[Any]) -> str:
        return f"  {side:>6}: " + "  ".join(f"{visible(t.token)!r} {t.effect:+.3g}" for t in effects)

    return "logit effects\n" + line("raises", logits.top) + "\n" + line("lowers", logits.bottom)


def render_histogram(h: ProxyHistogram) -> str:
    rows = [
        (f"{lo:.3g}–{hi:.3g}", m, o) for lo, hi, m, o in zip(h.edges[:-1], h.edges[1:], h.matching, h.other)
    ]
    head = (
        f"activation histogram by proxy match "
        f"({h.inactive_matching:,} matching tokens where it does not fire)"
    )
    return head + "\n" + table(rows, ("activation", "matching", "other"))


def render_search(s: Search, colour: bool) -> str:
    weights = " + ".join(f"{w:g}·{k}" for k, w in s.weights.items())
    return render_examples(f"{s.unit}s ranked by {weights} ({s.agg})", s.results, colour)


def render_proxy(p: ProxyRanking) -> str:
    rows = [
        (s.latent, f"{s.auroc:.3f}", f"{s.correlation:.3f}", f"{s.precision:.3f}", f"{s.recall:.3f}", s.fires)
        for s in p.latents
    ]
    head = f"latents detecting proxy {p.name!r} (by {p.by})"
    return head + "\n" + table(rows, ("latent", "auroc", "corr", "precision", "recall", "fires"))


def some(ids: list[int], limit: int = 50) -> str:
    """Ids as a list, cut after `limit`."""
    if not ids:
        return "none"
    return ", ".join(map(str, ids[:limit])) + (" …" if len(ids) > limit else "")


def render_summary(s: IndexOverview) -> str:
    lines = [
        f"{s.tokens:,} tokens of {s.docs:,} documents; {s.d_sae:,} latents: "
        f"{len(s.dead):,} dead, {len(s.dense):,} dense",
        f"dead: {some(s.dead)}",
        f"dense: {some(s.dense)}",
        "log10 firing frequency of live latents:",
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
    return IndexOverview(h.tokens, h.docs, h.d_sae, dead, dense, DENSITY_EDGES[:-1].tolist(), counts.tolist())


def latent_sections(index: Index, cfg: QueryConfig, latent: int) -> dict[str, Any]:
    """The --latent sections asked for."""
    context = {"before": cfg.before, "after": cfg.after}
    out: dict[str, Any] = {"latent": latent, "unit": cfg.unit or "token", "agg": cfg.agg}
    if cfg.top:
        out["examples"] = index.top_units(latent, cfg.top, cfg.unit or "token", cfg.agg, **context)
    if cfg.quantiles:
        out["quantiles"] = index.quantile_examples(
            latent, cfg.quantiles, cfg.per_quantile, cfg.seed, **context
        )
    if cfg.random:
        out["random"] = index.random_examples(latent, cfg.random, cfg.seed, **context)
    if cfg.cooccurring:
        out["cooccurring"] = index.cooccurring(latent, cfg.cooccurring)
    if cfg.neighbours:
        out["neighbours"] = index.neighbours(latent, cfg.neighbours)
    if cfg.logits:
        out["logits"] = index.logit_effects(latent, cfg.logits)
    if cfg.stats:
        out["statistics"] = index.stats_of(latent)
    if cfg.proxy is not None:
        out["proxy_histogram"] = index.proxy_histogram(latent, cfg.proxy, cfg.bins)
    return out


def query(cfg: QueryConfig) -> QueryResult:
    """Answer the questions `cfg` asks of the index at `cfg.index` (module docstring)."""
    index = Index(cfg.index)
    proxy = parse_proxy(cfg.proxy) if cfg.proxy is not None else None  # a bad regex fails first
    sections: dict[str, Any] = {}
    if cfg.latent is not None:
        sections.update(latent_sections(index, cfg, index.check_latent(cfg.latent)))
    if cfg.search:
        weights = dict(parse_search_spec(s) for s in cfg.search)
        unit = cfg.unit or "document"
        results = index.search(weights, cfg.top, unit, cfg.agg, cfg.before, cfg.after)
        sections["search"] = Search(weights, unit, cfg.agg, results)
    if proxy is not None and cfg.latent is None:
        sections["proxy"] = ProxyRanking(
            proxy.name, cfg.rank_by, index.proxy_scores(proxy, cfg.top, cfg.rank_by)
        )
    if cfg.stats and cfg.latent is None:
        sections["summary"] = index_summary(index)
    if cfg.text is not None:
        settings = ModelSettings(model_dtype=cfg.model_dtype, device=cfg.device, device_map=cfg.device_map)
        bound = bind_index_sae(index.header, cfg.sae, settings, cfg.model or None, cfg.force)
        sections["text"] = text_latents(bound, cfg.text, cfg.rank)
    return QueryResult(**sections)


__all__ = ["IndexOverview", "ProxyRanking", "QueryResult", "Search", "query"]
