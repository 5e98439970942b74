"""What a latent's page and the list of latents show, gathered from a latent index as render views.

The static dashboard and the web server both build their pages here, so a latent looks the same
in both: `latent_view` asks the index about one latent (the server, per request); `latent_views`
asks about many at once, each index table and postings bucket read once for a few buckets of
latents (a dashboard, ~11 index calls a page otherwise); `latent_rows` gives every latent's row of
the list (statistics, explanation, top tokens), one bucket of postings at a time. Explanations are
read through the interpretation stage's reader (`saescope.interpret.tables.best_explanations`).

The index is read through its Python API (`saescope.index.Index`) only. This module knows nothing
about HTML, HTTP, files of a dashboard or models.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any, NamedTuple

from ..config.dashboard import PageSettings
from ..example import Example
from ..index.format import EXPLANATIONS, LatentIndexError
from ..index.reader import Index
from ..index.results import QuantileExamples
from ..interpret.best import Interpretation
from ..interpret.tables import best_explanations
from .views import (
    ExplanationView,
    Histogram,
    LatentRow,
    LatentStatsView,
    LatentView,
    LogitEffect,
    QuantileGroup,
    Related,
    Scored,
)


# ----- single answers to views ------------------------------------------------------------------
def stats_view(row: Mapping[str, Any], tokens: int = 0) -> LatentStatsView:
    """A row of the index's per-latent statistics as a render view (histogram bins evenly split
    (0, max], as the index builds them); `tokens`: the indexed tokens its counts are of."""
    top = float(row["max"])
    counts = tuple(int(c) for c in row.get("histogram") or ())
    histogram = None
    if counts and top > 0:
        edges = tuple(top * i / len(counts) for i in range(len(counts) + 1))
        histogram = Histogram(edges, counts)
    quantiles = tuple(
        (name, float(value)) for name, value in row.items() if name[:1] == "q" and name[1:].isdigit()
    )
    return LatentStatsView(
        fires=int(row["count"]),
        frequency=float(row["frequency"]),
        max=top,
        mean=float(row["mean"]),
        quantiles=quantiles,
        histogram=histogram,
        dead=bool(row["dead"]),
        dense=bool(row["dense"]),
        tokens=tokens,
    )


def quantile_group(group: QuantileExamples, of: int) -> QuantileGroup:
    """A quantile's examples as a render view, labelled with its rank and activation range."""
    label = f"quantile {group.quantile + 1} of {of} ({group.low:.3g}–{group.high:.3g})"
    return QuantileGroup(label, tuple(group.examples))


def finite_or_none(value: float | None) -> float | None:
    """A number, or None for a missing or NaN one."""
    return value if value is not None and math.isfinite(value) else None


def explanation_view(chosen: Interpretation) -> ExplanationView:
    """A stored explanation and its measured scores (headline first) as a render view."""
    e = chosen.explanation
    top = chosen.headline
    measured = [s for s in chosen.scores if finite_or_none(s.value) is not None]
    ordered = ([top] if top is not None else []) + [s for s in measured if s is not top]
    scores = tuple(
        Scored(
            f"{s.scorer} {s.metric}",
            s.value,
            finite_or_none(s.ci_low),
            finite_or_none(s.ci_high),
            finite_or_none(s.baseline),
        )
        for s in ordered
    )
    return ExplanationView(e.text, e.explainer, e.model, finite_or_none(e.confidence), scores, e.few_examples)


def explanation_views(index: Index) -> dict[int, ExplanationView]:
    """Latent → the explanation shown for it: each latent's best stored explanation with its scores
    (`best_explanations`), else, for an index whose explanations table has texts only, those texts
    (`Index.explanations`)."""
    chosen = best_explanations(index.path) if (index.path / EXPLANATIONS).is_file() else {}
    if chosen:
        return {latent: explanation_view(i) for latent, i in chosen.items()}
    return {latent: ExplanationView(text, "", "", None, ()) for latent, text in index.explanations().items()}


def explanation_text(explanations: Mapping[int, ExplanationView], latent: int) -> str:
    """A latent's explanation ("" when it has none)."""
    found = explanations.get(latent)
    return found.text if found is not None else ""


def related(
    found: Iterable[Any], value: str, explanations: Mapping[int, ExplanationView]
) -> tuple[Related, ...]:
    """Neighbours (`value` "cosine") or co-occurring latents (`value` "jaccard") as render views."""
    return tuple(
        Related(r.latent, getattr(r, value), explanation_text(explanations, r.latent)) for r in found
    )


def related_of(
    index: Index, latent: int, kind: str, n: int, explanations: Mapping[int, ExplanationView]
) -> tuple[Related, ...]:
    """A latent's `n` co-occurring latents (`kind` "cooccurring", by Jaccard index) or decoder
    neighbours (`kind` "neighbours", by cosine); empty when the index lacks that table."""
    if n <= 0:
        return ()
    try:
        if kind == "cooccurring":
            return related(index.cooccurring(latent, n), "jaccard", explanations)
        return related(index.neighbours(latent, n), "cosine", explanations)
    except LatentIndexError:
        return ()


def logit_views(effects: Any) -> tuple[tuple[LogitEffect, ...], tuple[LogitEffect, ...]]:
    """(raised, lowered) tokens of a latent's logit effects (`index.results.LogitEffects`)."""
    if effects is None:
        return (), ()
    up = tuple(LogitEffect(t.token, t.effect) for t in effects.top)
    down = tuple(LogitEffect(t.token, t.effect) for t in effects.bottom)
    return up, down


def logits_of(index: Index, latent: int, n: int) -> tuple[tuple[LogitEffect, ...], tuple[LogitEffect, ...]]:
    """(raised, lowered) tokens of its logit effect (empty when the index has none)."""
    if n <= 0:
        return (), ()
    try:
        return logit_views(index.logit_effects(latent, n))
    except LatentIndexError:
        return (), ()


# ----- a latent's page --------------------------------------------------------------------------
class Answers(NamedTuple):
    """What the index answers about one latent, before it becomes a view."""

    stats: LatentStatsView
    top: list[Example]
    quantiles: list[QuantileExamples]
    neighbours: tuple[Related, ...]
    cooccurring: tuple[Related, ...]
    logits: tuple[tuple[LogitEffect, ...], tuple[LogitEffect, ...]]


def view_of(
    latent: int, d_sae: int, answers: Answers, explanations: Mapping[int, ExplanationView]
) -> LatentView:
    """A latent's page view from the index's answers."""
    a = answers
    return LatentView(
        latent=latent,
        d_sae=d_sae,
        stats=a.stats,
        top=tuple(a.top),
        quantiles=tuple(quantile_group(g, len(a.quantiles)) for g in a.quantiles),
        neighbours=a.neighbours,
        cooccurring=a.cooccurring,
        logits_up=a.logits[0],
        logits_down=a.logits[1],
        explanation=explanations.get(latent),
    )


def latent_view(
    index: Index, latent: int, settings: PageSettings, explanations: Mapping[int, ExplanationView]
) -> LatentView:
    """Everything one latent's page shows, from the index (one latent's queries; `latent_views`
    asks for many latents at once)."""
    latent = index.check_latent(latent)
    s = settings
    stats = stats_view(index.stats_of(latent), index.tokens)
    fires = not stats.dead
    answers = Answers(
        stats,
        index.top_examples(latent, s.top, s.before, s.after) if fires and s.top else [],
        index.quantile_examples(latent, s.quantiles, s.per_quantile, 0, s.before, s.after)
        if fires and s.quantiles
        else [],
        related_of(index, latent, "neighbours", s.related, explanations),
        related_of(index, latent, "cooccurring", s.related, explanations) if fires else (),
        logits_of(index, latent, s.logits),
    )
    return view_of(latent, index.d_sae, answers, explanations)


def _asked(ask: Callable[[list[int], int], dict[int, Any]], latents: list[int], n: int) -> dict[int, Any]:
    """`ask(latents, n)`, or {} when nothing is asked or the index lacks that table."""
    if n <= 0 or not latents:
        return {}
    try:
        return ask(latents, n)
    except LatentIndexError:
        return {}


def buckets(index: Index, latents: Iterable[int]) -> Iterable[list[int]]:
    """Sorted `latents` in runs that share a postings bucket (each bucket is then read once)."""
    for _, run in groupby(sorted(latents), key=lambda k: k // index.header.bucket_latents):
        yield list(run)


def examples_many(
    index: Index, latents: list[int], s: PageSettings
) -> tuple[dict[int, list[Example]], dict[int, list[QuantileExamples]]]:
    """(top, quantile) examples of `latents`, asked one postings bucket at a time (a bucket's
    postings are read once for both, and only one bucket's are held)."""
    top: dict[int, list[Example]] = {}
    groups: dict[int, list[QuantileExamples]] = {}
    for part in buckets(index, latents):
        if s.top:
            top.update(index.top_examples_many(part, s.top, s.before, s.after))
        if s.quantiles:
            groups.update(
                index.quantile_examples_many(part, s.quantiles, s.per_quantile, 0, s.before, s.after)
            )
    return top, groups


def latent_views(
    index: Index, latents: Sequence[int], settings: PageSettings, explanations: Mapping[int, ExplanationView]
) -> list[LatentView]:
    """`latent_view` of each of `latents` (sorted, without repeats), each index table read once for
    all of them (`Index.*_many`): what a dashboard asks, a few buckets of latents at a time."""
    s = settings
    chosen = sorted(set(index.checked(latents)))
    rows = index.stats().take(chosen).to_pylist()
    stats = {k: stats_view(row, index.tokens) for k, row in zip(chosen, rows)}
    live = [k for k in chosen if not stats[k].dead]
    top, groups = examples_many(index, live, s)
    near = _asked(index.neighbours_many, chosen, s.related)
    often = _asked(index.cooccurring_many, live, s.related)
    logits = _asked(index.logit_effects_many, chosen, s.logits)
    views = []
    for k in chosen:
        answers = Answers(
            stats[k],
            top.get(k, []),
            groups.get(k, []),
            related(near.get(k, ()), "cosine", explanations),
            related(often.get(k, ()), "jaccard", explanations),
            logit_views(logits.get(k)),
        )
        views.append(view_of(k, index.d_sae, answers, explanations))
    return views


# ----- the list of latents ----------------------------------------------------------------------
def top_tokens(examples: Iterable[Example], n: int = 8) -> tuple[str, ...]:
    """The most frequent focus tokens of the examples (stripped, most frequent first)."""
    counts = Counter(token.strip() for e in examples if (token := e.focus_token) is not None)
    return tuple(token for token, _ in counts.most_common(n) if token)


def latent_row(
    latent: int,
    stats: LatentStatsView | None,
    top: Iterable[Example],
    explanations: Mapping[int, ExplanationView],
) -> LatentRow:
    """A latent's row in the list of latents: its statistics, explanation and top tokens."""
    found = explanations.get(latent)
    score = found.headline if found is not None else None
    return LatentRow(
        latent=latent,
        frequency=stats.frequency if stats else 0.0,
        max=stats.max if stats else 0.0,
        explanation=found.text if found is not None else "",
        score=score.value if score is not None else None,
        top_tokens=top_tokens(top),
    )


def row_of_view(view: LatentView, explanations: Mapping[int, ExplanationView]) -> LatentRow:
    """The row of a latent whose page view is built (a dashboard writes both)."""
    return latent_row(view.latent, view.stats, view.top, explanations)


def latent_rows(
    index: Index, explanations: Mapping[int, ExplanationView], settings: PageSettings | None = None
) -> list[LatentRow]:
    """Every latent's row, its top tokens from the same top examples its page shows (read one
    postings bucket at a time, without context)."""
    settings = settings or PageSettings()
    stats = {int(row["latent"]): stats_view(row, index.tokens) for row in index.stats().to_pylist()}
    live = [latent for latent, view in stats.items() if not view.dead]
    top: dict[int, list[Example]] = {}
    if settings.top:
        for part in buckets(index, live):
            top.update(index.top_examples_many(part, settings.top, 0, 0))
    return [latent_row(k, view, top.get(k, ()), explanations) for k, view in stats.items()]


def bare_rows(index: Index, explanations: Mapping[int, ExplanationView]) -> list[LatentRow]:
    """Every latent's row without top tokens (statistics and explanations only: no postings read),
    while `latent_rows` is still being gathered."""
    rows = index.stats().to_pylist()
    return [latent_row(int(row["latent"]), stats_view(row, index.tokens), (), explanations) for row in rows]


__all__ = [
    "Answers",
    "PageSettings",
    "bare_rows",
    "explanation_text",
    "explanation_view",
    "explanation_views",
    "latent_row",
    "latent_rows",
    "latent_view",
    "latent_views",
    "logits_of",
    "quantile_group",
    "related_of",
    "row_of_view",
    "stats_view",
    "top_tokens",
]
