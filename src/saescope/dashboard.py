"""`saescope dashboard`: one static HTML page per latent of a latent index, and an index page.

    saescope dashboard runs/demo/index            # → runs/demo/dashboard/index.html

The pages open from disk (`file://`) with no server and no network: CSS and scripts sit beside
them in `assets/`, the index page carries its rows as embedded JSON for sorting and searching,
histograms are inline SVG. Each latent page shows its statistics and activation histogram, its
logit effect, top examples with highlighted tokens, examples across its activation quantiles,
its decoder neighbours and co-occurring latents, and its explanation with its scores once
`saescope interpret` has stored one.

This module also gathers what a page shows from the index (`latent_view` for one latent, as the
web server asks; `latent_views` for many, as a dashboard does: each index table read once for a
few buckets of latents, not ~11 queries a page) and renders it with the same `saescope.render`
functions as the server. The index is read through its Python API (`saescope.index.Index`) only,
the explanations through the interpretation stage's reader
(`saescope.interpret.tables.best_explanations`).

A dashboard is built whole in a hidden folder beside `--out`, by one process per core, its pages
written plainly and synced to disk once; it then replaces the previous dashboard in one rename
(`swap_in`): an interrupted build never replaces a complete dashboard, and rerunning rebuilds it
from scratch.

This module knows nothing about HTTP, models or how the index is built.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from .config.dashboard import DashboardConfig
from .errors import SaescopeError
from .files import fsync_dir, write_atomic
from .index.format import EXPLANATIONS, LatentIndexError
from .index.reader import Index
from .index.results import Example, QuantileExamples
from .interpret.best import Interpretation
from .interpret.tables import best_explanations
from .render import (
    STATIC,
    STATIC_INDEX_LINKS,
    ExplanationView,
    Histogram,
    LatentRow,
    LatentStatsView,
    LatentView,
    LogitEffect,
    QuantileGroup,
    Related,
    Scored,
    TokenExample,
    latent_page,
    latents_page,
)

log = logging.getLogger(__name__)

ASSETS = ("saescope.css", "latents.js")
"""Files of `saescope.render`'s static folder a dashboard needs."""
CHUNK = 256
"""Latents per unit of work handed to a page-writing process (whole postings buckets)."""


class PageSettings(NamedTuple):
    """How much a latent page shows."""

    top: int = 20
    """Top examples."""
    quantiles: int = 5
    """Activation quantiles."""
    per_quantile: int = 3
    """Examples per quantile."""
    before: int = 12
    """Tokens of context before an example's token."""
    after: int = 4
    """Tokens of context after it."""
    related: int = 10
    """Neighbours and co-occurring latents."""
    logits: int = 10
    """Tokens raised and lowered."""


# ----- from the index's answers to the render views ---------------------------------------
def example_view(example: Example, before: int) -> TokenExample:
    """A query's example as a render view; its own token is the `before`-th of its window, or
    earlier when the window meets the start of its model input."""
    focus = min(example.position, before) if example.position >= 0 else -1
    return TokenExample(
        example.doc_id,
        example.position,
        example.activation,
        tuple(example.tokens),
        tuple(example.activations),
        focus,
    )


def stats_view(row: Mapping[str, Any]) -> LatentStatsView:
    """A row of the index's per-latent statistics as a render view (histogram bins evenly split
    (0, max], as the index builds them)."""
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
    )


def quantile_group(group: QuantileExamples, of: int, before: int) -> QuantileGroup:
    """A quantile's examples as a render view, labelled with its rank and activation range."""
    label = f"quantile {group.quantile + 1} of {of} ({group.low:.3g}–{group.high:.3g})"
    return QuantileGroup(label, tuple(example_view(e, before) for e in group.examples))


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
    (`saescope.interpret.tables.best_explanations`), else, for an index whose explanations table has
    texts only, those texts (`Index.explanations`)."""
    chosen = best_explanations(index.path) if (index.path / EXPLANATIONS).is_file() else {}
    if chosen:
        return {latent: explanation_view(i) for latent, i in chosen.items()}
    return {latent: ExplanationView(text, "", "", None, ()) for latent, text in index.explanations().items()}


def _text(explanations: Mapping[int, ExplanationView], latent: int) -> str:
    found = explanations.get(latent)
    return found.text if found is not None else ""


def neighbours_of(
    index: Index, latent: int, n: int, explanations: Mapping[int, ExplanationView]
) -> tuple[Related, ...]:
    """The latent's closest decoder directions (empty when the index has none)."""
    if n <= 0:
        return ()
    try:
        found = index.neighbours(latent, n)
    except LatentIndexError:
        return ()
    return tuple(Related(r.latent, r.cosine, _text(explanations, r.latent)) for r in found)


def cooccurring_of(
    index: Index, latent: int, n: int, explanations: Mapping[int, ExplanationView]
) -> tuple[Related, ...]:
    """The latents most often firing with it, valued by Jaccard index (empty when none)."""
    if n <= 0:
        return ()
    try:
        found = index.cooccurring(latent, n)
    except LatentIndexError:
        return ()
    return tuple(Related(r.latent, r.jaccard, _text(explanations, r.latent)) for r in found)


def logits_of(index: Index, latent: int, n: int) -> tuple[tuple[LogitEffect, ...], tuple[LogitEffect, ...]]:
    """(raised, lowered) tokens of its logit effect (empty when the index has none)."""
    if n <= 0:
        return (), ()
    try:
        found = index.logit_effects(latent, n)
    except LatentIndexError:
        return (), ()
    up = tuple(LogitEffect(t.token, t.effect) for t in found.top)
    down = tuple(LogitEffect(t.token, t.effect) for t in found.bottom)
    return up, down


class Answers(NamedTuple):
    """What the index answers about one latent, before it becomes a view."""

    stats: LatentStatsView
    top: list[Example]
    quantiles: list[QuantileExamples]
    neighbours: tuple[Related, ...]
    cooccurring: tuple[Related, ...]
    logits: tuple[tuple[LogitEffect, ...], tuple[LogitEffect, ...]]


def view_of(
    latent: int, d_sae: int, answers: Answers, before: int, explanations: Mapping[int, ExplanationView]
) -> LatentView:
    """A latent's page view from the index's answers (`before`: context tokens before an example's)."""
    a = answers
    return LatentView(
        latent=latent,
        d_sae=d_sae,
        stats=a.stats,
        top=tuple(example_view(e, before) for e in a.top),
        quantiles=tuple(quantile_group(g, len(a.quantiles), before) for g in a.quantiles),
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
    stats = stats_view(index.stats_of(latent))
    fires = not stats.dead
    answers = Answers(
        stats,
        index.top_examples(latent, s.top, s.before, s.after) if fires and s.top else [],
        index.quantile_examples(latent, s.quantiles, s.per_quantile, 0, s.before, s.after)
        if fires and s.quantiles
        else [],
        neighbours_of(index, latent, s.related, explanations),
        cooccurring_of(index, latent, s.related, explanations) if fires else (),
        logits_of(index, latent, s.logits),
    )
    return view_of(latent, index.d_sae, answers, s.before, explanations)


def _asked(ask: Callable[[list[int], int], dict[int, Any]], latents: list[int], n: int) -> dict[int, Any]:
    """`ask(latents, n)`, or {} when nothing is asked or the index lacks that table."""
    if n <= 0 or not latents:
        return {}
    try:
        return ask(latents, n)
    except LatentIndexError:
        return {}


def examples_many(
    index: Index, latents: list[int], s: PageSettings
) -> tuple[dict[int, list[Example]], dict[int, list[QuantileExamples]]]:
    """(top, quantile) examples of `latents`, asked one postings bucket at a time (a bucket's
    postings are read once for both, and only one bucket's are held)."""
    top: dict[int, list[Example]] = {}
    groups: dict[int, list[QuantileExamples]] = {}
    for _, bucket in groupby(latents, key=lambda k: k // index.header.bucket_latents):
        part = list(bucket)
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
    stats = {k: stats_view(row) for k, row in zip(chosen, index.stats().take(chosen).to_pylist())}
    live = [k for k in chosen if not stats[k].dead]
    top, groups = examples_many(index, live, s)
    near = _asked(index.neighbours_many, chosen, s.related)
    often = _asked(index.cooccurring_many, live, s.related)
    logits = _asked(index.logit_effects_many, chosen, s.logits)

    def related(found: Iterable[Any], value: str) -> tuple[Related, ...]:
        return tuple(Related(r.latent, getattr(r, value), _text(explanations, r.latent)) for r in found)

    views = []
    for k in chosen:
        effects = logits.get(k)
        answers = Answers(
            stats[k],
            top.get(k, []),
            groups.get(k, []),
            related(near.get(k, ()), "cosine"),
            related(often.get(k, ()), "jaccard"),
            (
                tuple(LogitEffect(t.token, t.effect) for t in effects.top),
                tuple(LogitEffect(t.token, t.effect) for t in effects.bottom),
            )
            if effects is not None
            else ((), ()),
        )
        views.append(view_of(k, index.d_sae, answers, s.before, explanations))
    return views


def top_tokens(examples: Iterable[TokenExample], n: int = 8) -> tuple[str, ...]:
    """The most frequent tokens at the examples' own positions (stripped, most frequent first)."""
    counts = Counter(e.tokens[e.focus].strip() for e in examples if 0 <= e.focus < len(e.tokens))
    return tuple(token for token, _ in counts.most_common(n) if token)


def latent_row(view: LatentView) -> LatentRow:
    """A latent's row in the list of latents."""
    stats = view.stats
    score = view.explanation.headline if view.explanation is not None else None
    return LatentRow(
        latent=view.latent,
        frequency=stats.frequency if stats else 0.0,
        max=stats.max if stats else 0.0,
        explanation=view.explanation.text if view.explanation else "",
        score=score.value if score is not None else None,
        top_tokens=top_tokens(view.top),
    )


# ----- the stage -------------------------------------------------------------------------
class DashboardResult(NamedTuple):
    """What `saescope dashboard` wrote."""

    folder: Path
    """The dashboard folder (open its `index.html`)."""
    pages: int
    """Latent pages written."""
    seconds: float
    """Wall time."""

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "index_page": str(self.folder / "index.html"),
            "pages": self.pages,
            "seconds": self.seconds,
        }

    def render(self) -> str:
        return (
            f"{self.pages:,} latent pages in {self.seconds:.1f} s; open {self.folder / 'index.html'} "
            "in a browser (no server needed)"
        )


def out_folder(cfg: DashboardConfig) -> Path:
    """Where the pages go: `--out`, else `dashboard` beside the index."""
    return cfg.out if cfg.out is not None else Path(cfg.index).parent / "dashboard"


def chosen_latents(cfg: DashboardConfig, d_sae: int) -> list[int]:
    """The latents to write pages for (every latent by default); ids out of range are refused."""
    if not cfg.latents:
        return list(range(d_sae))
    wrong = [i for i in cfg.latents if i >= d_sae]
    if wrong:
        raise SaescopeError(
            f"--latents {wrong[0]} is out of range: the index has {d_sae} latents (0-{d_sae - 1})"
        )
    return sorted(set(cfg.latents))


def copy_assets(folder: Path) -> None:
    """The CSS and scripts every page links, into `folder/assets`."""
    assets = folder / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        write_atomic(assets / name, (STATIC / name).read_bytes())


def workers_of(cfg: DashboardConfig) -> int:
    """Processes writing pages: `--workers`, else one per CPU core."""
    return cfg.workers or os.cpu_count() or 1


def settings_of(cfg: DashboardConfig) -> PageSettings:
    """The page settings of a dashboard config."""
    return PageSettings(
        cfg.top, cfg.quantiles, cfg.per_quantile, cfg.before, cfg.after, cfg.related, cfg.logits
    )


def render_pages(
    index: Index,
    latents: Sequence[int],
    settings: PageSettings,
    folder: Path,
    explanations: Mapping[int, ExplanationView],
) -> list[LatentRow]:
    """Write the pages of `latents` into `folder/latents` (one process, the index asked for all of
    them at once: `latent_views`); returns their rows. Plain writes: the folder is a staging folder
    that becomes visible whole (`swap_in`), so each page needs no fsync of its own."""
    rows = []
    for view in latent_views(index, latents, settings, explanations):
        (folder / "latents" / f"{view.latent}.html").write_bytes(latent_page(view).encode("utf-8"))
        rows.append(latent_row(view))
    return rows


class _Worker(NamedTuple):
    reader: Index
    explanations: dict[int, ExplanationView]


_worker: _Worker | None = None
"""The index and explanations a page-writing process read once (`_open_index`), for every unit."""


def _open_index(path: Path) -> None:
    global _worker
    index = Index(path)
    _worker = _Worker(index, explanation_views(index))


def _render_unit(latents: Sequence[int], settings: PageSettings, folder: Path) -> list[LatentRow]:
    assert _worker is not None
    return render_pages(_worker.reader, latents, settings, folder, _worker.explanations)


def units(latents: Sequence[int], bucket_latents: int) -> list[list[int]]:
    """Sorted `latents` cut into units of work of about `CHUNK` latents made of whole postings
    buckets (a unit reads each of its buckets once)."""
    span = bucket_latents * max(1, CHUNK // bucket_latents)
    return [list(part) for _, part in groupby(sorted(latents), key=lambda k: k // span)]


def write_pages(
    index: Index, latents: Sequence[int], settings: PageSettings, folder: Path, workers: int = 1
) -> list[LatentRow]:
    """Write one page per latent into `folder/latents`, in `workers` processes (each opens the
    index once and writes whole units of latents); returns the rows in latent order."""
    (folder / "latents").mkdir(parents=True, exist_ok=True)
    parts = units(latents, index.header.bucket_latents)
    bar = tqdm(total=len(latents), desc="dashboard", unit="page", dynamic_ncols=True)
    rows: list[LatentRow] = []
    if workers <= 1 or len(parts) == 1:
        explanations = explanation_views(index)
        for part in parts:
            rows += render_pages(index, part, settings, folder, explanations)
            bar.update(len(part))
        bar.close()
        return rows
    # spawn, not fork: the parent's DuckDB connection holds threads a fork would copy mid-flight
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=_open_index, initargs=(index.path,)) as pool:
        futures = [pool.submit(_render_unit, part, settings, folder) for part in parts]
        for part, future in zip(parts, futures):
            rows += future.result()
            bar.update(len(part))
    bar.close()
    return rows


# ----- the folder: built aside, swapped in whole --------------------------------------------
def check_replaceable(folder: Path) -> None:
    """Refuse an `--out` that is a file, or a folder holding something other than a dashboard
    (it is replaced whole)."""
    if folder.exists() and not folder.is_dir():
        raise SaescopeError(f"--out {folder} is a file, not a folder")
    dashboard_like = (folder / "index.html").is_file() or (folder / "latents").is_dir()
    if folder.is_dir() and any(folder.iterdir()) and not dashboard_like:
        raise SaescopeError(
            f"--out {folder} holds files that are not a dashboard (it would be replaced): "
            "choose a new or empty folder"
        )


def staging_of(folder: Path) -> Path:
    """The hidden folder beside `folder` that a dashboard is built in."""
    return folder.with_name(f".{folder.name}.{os.getpid()}.tmp")


def swap_in(staging: Path, folder: Path) -> None:
    """Make a finished staging folder the dashboard at `folder`. Its files reach the disk first —
    one `sync` for thousands of pages where an fsync each cost ~6 ms a page —, then it takes
    `folder`'s name; a previous dashboard there is moved aside first and removed last, so a crash
    leaves the complete old one or the complete new one (at worst under its hidden name)."""
    if hasattr(os, "sync"):
        os.sync()
    old = folder.with_name(f".{folder.name}.{os.getpid()}.old.tmp")
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def build(cfg: DashboardConfig, index: Index, latents: Sequence[int], folder: Path) -> int:
    """Write the whole dashboard into `folder` (a fresh staging folder); returns the pages written."""
    copy_assets(folder)
    rows = write_pages(index, latents, settings_of(cfg), folder, workers_of(cfg))
    header = index.header
    title = f"{len(rows):,} latents of {Path(header.sae).name}"
    subtitle = f"{header.model} · {header.hookpoint} · {header.tokens:,} indexed tokens"
    write_atomic(folder / "index.html", latents_page(rows, title, subtitle, STATIC_INDEX_LINKS))
    return len(rows)


def dashboard(cfg: DashboardConfig) -> DashboardResult:
    """`saescope dashboard` (see the module docstring)."""
    started = time.perf_counter()
    index = Index(cfg.index)
    latents = chosen_latents(cfg, index.d_sae)
    folder = out_folder(cfg)
    if folder.resolve() == Path(cfg.index).resolve():
        raise SaescopeError("--out must not be the index folder itself")
    check_replaceable(folder)
    staging = staging_of(folder)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        pages = build(cfg, index, latents, staging)
        swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DashboardResult(folder, pages, time.perf_counter() - started)


__all__ = [
    "DashboardResult",
    "PageSettings",
    "dashboard",
    "example_view",
    "explanation_views",
    "latent_row",
    "latent_view",
    "latent_views",
    "quantile_group",
    "stats_view",
    "top_tokens",
]
