"""`saescope dashboard`: one static HTML page per latent of a latent index, and an index page.

    saescope dashboard runs/demo/index            # → runs/demo/dashboard/index.html

The pages open from disk (`file://`) with no server and no network: CSS and scripts sit beside
them in `assets/`, the index page carries its rows as embedded JSON for sorting and searching,
histograms are inline SVG. When the index's run holds a comparison of SAEs (`saescope compare`:
`compare/compare.json`), `families.html` beside the index page shows it — each pair's matching and
its feature families as a tree — linked from the index page. Each latent page shows its
statistics and activation histogram, its logit effect, top examples with highlighted tokens,
examples across its activation quantiles, its decoder neighbours and co-occurring latents, and its
explanation with its scores once `saescope interpret` has stored one. The run's attribution graphs
(`saescope circuit`) get a page each under `graphs/` — the same drawing as the server's, its
latents' examples embedded, without ablating or steering (that needs the model: `saescope serve`).

What a page shows is gathered from the index by `saescope.render.gather` (`latent_views`: each
index table read once for a few buckets of latents) and rendered by the same `saescope.render`
functions as the web server's pages.

A dashboard is built whole in a hidden folder beside `--out`, by one process per core, its pages
written plainly and synced to disk once; it then replaces the previous dashboard in one rename
(`swap_in`): an interrupted build never replaces a complete dashboard, and rerunning rebuilds it
from scratch.

This module knows nothing about HTTP, models or how the index is built.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from .config.dashboard import DashboardConfig, PageSettings
from .errors import SaescopeError
from .files import fsync_dir, read_json_object, write_atomic
from .index.reader import Index
from .render import (
    STATIC,
    STATIC_INDEX_LINKS,
    STATIC_LATENT_LINKS,
    ExplanationView,
    LatentRow,
    comparison_view,
    families_page,
    latent_page,
    latents_page,
)
from .render.gather import explanation_views, latent_views, row_of_view
from .render.graph import graph_list_page, graph_page, graph_view
from .render.graph_gather import DictionaryIndexes, graph_names, graph_rows, logit_tokens, read_graph
from .runs import COMPARE_RESULT, dashboard_beside, run_of

log = logging.getLogger(__name__)

ASSETS = ("saescope.css", "latents.js", "graph.js", "graph.css")
"""Files of `saescope.render`'s static folder a dashboard needs."""
CHUNK = 256
"""Latents per unit of work handed to a page-writing process (whole postings buckets)."""
FAMILIES_PAGE = "families.html"
"""The comparison of SAEs (feature families tree), beside the index page."""
GRAPHS = "graphs"
"""The folder of the run's attribution graphs' pages (`graphs/index.html` lists them)."""


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
    return cfg.out if cfg.out is not None else dashboard_beside(cfg.index)


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
        rows.append(row_of_view(view, explanations))
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


def write_comparison(cfg: DashboardConfig, index: Index, folder: Path) -> tuple[tuple[str, str], ...]:
    """`families.html` from the comparison in the index's run, if any; the index page's links to it.
    Its latents of the indexed SAE link to their pages only when every latent has one."""
    found = run_of(index.path).compare / COMPARE_RESULT
    if not found.is_file():
        return ()
    try:
        comparison = read_json_object(found, what="a comparison of SAEs")
    except SaescopeError as e:
        log.warning("no comparison page: %s", e)
        return ()
    own = (None, None) if cfg.latents else (Path(index.header.sae), index.header.sae_sha256)
    write_atomic(folder / FAMILIES_PAGE, families_page(comparison_view(comparison, *own)))
    return ((FAMILIES_PAGE, "comparison"),)


def write_graphs(index: Index, folder: Path) -> tuple[tuple[str, str], ...]:
    """`graphs/NAME.html` for each attribution graph saved in the index's run (`saescope circuit`;
    each latent's examples from its dictionary's index, embedded; no ablation: that needs the
    server) and `graphs/index.html` listing them; the index page's link to the list."""
    circuits = run_of(index.path).circuits
    if not graph_names(circuits):
        return ()
    (folder / GRAPHS).mkdir()
    indexes = DictionaryIndexes()
    for name in graph_names(circuits):
        try:
            document = read_graph(circuits, name)
            view = graph_view(document, name, logit_tokens(circuits, name))
            html = graph_page(view, STATIC_LATENT_LINKS, indexes.details(document), "index.html")
        except (SaescopeError, KeyError, TypeError, ValueError) as e:
            log.warning("no page for graph %s: %s", name, e)
            continue
        write_atomic(folder / GRAPHS / f"{name}.html", html.encode("utf-8"))
    listing = graph_list_page(graph_rows(circuits), STATIC_LATENT_LINKS, "Attribution graphs")
    write_atomic(folder / GRAPHS / "index.html", listing.encode("utf-8"))
    return ((f"{GRAPHS}/index.html", "attribution graphs"),)


def build(cfg: DashboardConfig, index: Index, latents: Sequence[int], folder: Path) -> int:
    """Write the whole dashboard into `folder` (a fresh staging folder); returns the pages written."""
    copy_assets(folder)
    rows = write_pages(index, latents, cfg.page, folder, workers_of(cfg))
    header = index.header
    title = f"{len(rows):,} latents of {Path(header.sae).name}"
    subtitle = f"{header.model} · {header.hookpoint} · {header.tokens:,} indexed tokens"
    nav = write_comparison(cfg, index, folder) + write_graphs(index, folder)
    write_atomic(folder / "index.html", latents_page(rows, title, subtitle, STATIC_INDEX_LINKS, nav))
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


__all__ = ["DashboardResult", "dashboard"]
