"""The browser UI: HTML pages and the HTML fragments their scripts insert.

    /                      overview: model, hookpoint, SAE settings, evaluation, plots, latent map,
                           the run's SAEs compared (L0–FVU frontier, absorption, probing)
    /families              the run's comparison of SAEs: matching, feature families tree, joint map
    /latents               the sortable, searchable list of latents
    /latents/{i}           a latent's page (what its static dashboard shows) + live queries
    /inspect               the text inspector (tokens shaded by a latent, effects for a next token)
    /steer                 the steering playground
    /fragments/...         pieces rendered here and inserted by the pages' scripts
    /static/{name}         CSS and scripts (a fixed list of names)
    /run/images/{name}     the run's plots (a fixed list of names)

Every page is rendered by `saescope.render`'s templates (autoescaped) with the same latent
pieces as the static dashboards; page scripts insert only HTML rendered here, and write any other
text with `textContent`.

This module knows nothing about the JSON API's shapes beyond calling the same context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from markupsafe import Markup

from ..config.eval import METRIC_FAMILIES
from ..errors import SaescopeError
from ..render import (
    STATIC,
    Links,
    SAERowView,
    comparison_view,
    environment,
    examples_fragment,
    families_body,
    frontier_svg,
    highlight,
    map_svg,
    quantile_fragment,
    related_fragment,
    render,
    sae_row,
)
from .api import Ctx, run_effects, run_inspection
from .context import RunContext
from .run import IMAGES
from .schemas import EffectsRequest, InspectRequest

router = APIRouter(include_in_schema=False)

TEMPLATES = Path(__file__).parent / "templates"
WEB_STATIC = Path(__file__).parent / "static"
STATIC_FILES = {
    "saescope.css": STATIC / "saescope.css",
    "latents.js": STATIC / "latents.js",
    "common.js": WEB_STATIC / "common.js",
    "latent.js": WEB_STATIC / "latent.js",
    "inspect.js": WEB_STATIC / "inspect.js",
    "steer.js": WEB_STATIC / "steer.js",
    "graph.js": STATIC / "graph.js",
    "graph.css": STATIC / "graph.css",
}
"""Every file /static serves, by name: no path from a request ever reaches the filesystem."""
MEDIA = {".css": "text/css", ".js": "text/javascript"}
LINKS = Links(latent="/latents/{}", latents="/latents", assets="/static", home="/")


def page(ctx: RunContext, template: str, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A whole page from one of the server's templates."""
    html = render(template, environment(TEMPLATES), links=LINKS, run_name=ctx.name, page=name, **context)
    return HTMLResponse(html, status_code=status)


# ----- pages -------------------------------------------------------------------------------
SAE_LABELS = {
    "model": "model",
    "hookpoint_alias": "hookpoint",
    "hookpoint": "module",
    "architecture": "architecture",
    "d_in": "input width (d_in)",
    "d_sae": "latents (d_sae)",
    "k": "active latents per token (k)",
    "dtype": "weights dtype",
}
"""The SAE settings the overview shows, with their labels."""
TRAINING_LABELS = {"tokens": "trained on (tokens)", "steps": "training steps", "store": "activation store"}

EVAL_SECTIONS = {
    "reconstruction": "Reconstruction (on the {tokens} evaluation tokens)",
    "sparsity": "Sparsity (on the {tokens} evaluation tokens)",
    "downstream": "Downstream, the SAE spliced in (on {predictions} next-token predictions)",
}
EVAL_LABELS = {
    "mse": "mean squared error, per element",
    "sum_squared_error_per_token": "squared error per token",
    "fvu": "fraction of variance unexplained (FVU)",
    "explained_variance": "explained variance (1 − FVU)",
    "cosine_similarity": "cosine of reconstruction and input, mean",
    "norm_ratio": "‖reconstruction‖ / ‖input‖, mean",
    "relative_reconstruction_bias": "relative reconstruction bias",
    "l0_mean": "active latents per token (L0), mean",
    "l0_std": "L0, standard deviation",
    "dead_latents": "dead latents (never fired on these tokens)",
    "dead_fraction": "dead latents, fraction of all latents",
    "dense_latents": "dense latents (fire on more than the threshold of these tokens)",
    "dense_threshold": "dense threshold (fraction of tokens)",
    "scored_predictions": "next-token predictions scored",
    "ce_clean": "cross-entropy, clean model (nats)",
    "ce_spliced": "cross-entropy, SAE spliced in (nats)",
    "ce_zero_ablation": "cross-entropy, site zero-ablated (nats)",
    "ce_mean_ablation": "cross-entropy, site mean-ablated (nats)",
    "delta_ce": "cross-entropy added by the SAE (nats)",
    "ce_loss_recovered_zero": "CE loss recovered, against zero ablation",
    "ce_loss_recovered_mean": "CE loss recovered, against mean ablation",
    "kl_spliced": "KL to the clean model, SAE spliced in (nats)",
    "kl_zero_ablation": "KL to the clean model, site zero-ablated (nats)",
    "kl_mean_ablation": "KL to the clean model, site mean-ablated (nats)",
    "kl_score_zero": "KL score (1 − KL spliced / KL zero-ablated)",
}
"""Labels of `eval.json`'s metrics (a metric without one shows its own name)."""


def sae_rows(cfg: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The SAE's settings as (label, value) rows."""
    if not cfg:
        return []
    rows = [(label, str(cfg[k])) for k, label in SAE_LABELS.items() if cfg.get(k) not in (None, "")]
    rows += [(f"hyperparameter {k}", str(v)) for k, v in sorted((cfg.get("hyperparams") or {}).items())]
    training = cfg.get("training") or {}
    for key, label in TRAINING_LABELS.items():
        if training.get(key) not in (None, ""):
            rows.append((label, formatted(training[key])))
    return rows


def formatted(value: Any) -> str:
    """A number as the evaluation table shows it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # NaN: not measured
        return "not measured"
    return f"{value:.4g}"


def eval_sections(evaluation: dict[str, Any] | None) -> list[tuple[str, list[tuple[str, str]]]]:
    """`eval.json` as titled sections of (label, value) rows, each title saying which tokens its
    numbers cover (numbers only; settings left out)."""
    if not evaluation:
        return []
    tokens = formatted(evaluation.get("tokens", ""))
    sections = []
    for name, values in evaluation.items():
        if name in ("settings", "sae", *METRIC_FAMILIES) or not isinstance(values, dict):
            continue  # absorption and probing: in the table of the run's SAEs
        rows = [
            (EVAL_LABELS.get(str(k), str(k)), formatted(v))
            for k, v in values.items()
            if not isinstance(v, (dict, list, str))
        ]
        if rows:
            predictions = formatted(values.get("scored_predictions", ""))
            title = EVAL_SECTIONS.get(name, name).format(tokens=tokens, predictions=predictions)
            sections.append((title, rows))
    return sections


def index_rows(ctx: RunContext) -> list[tuple[str, str]]:
    """The latent index's own counts, each with the tokens it covers."""
    if ctx.index is None:
        return []
    header = ctx.index.header
    s, tokens = header.summary, f"{header.tokens:,}"
    return [
        ("indexed tokens (held-out text)", tokens),
        (f"dead latents (never fired on the {tokens} indexed tokens)", f"{int(s.get('dead', 0)):,}"),
        (f"dense latents (on the {tokens} indexed tokens)", f"{int(s.get('dense', 0)):,}"),
    ]


def latent_map_markup(ctx: RunContext) -> tuple[Markup | None, str]:
    """The latent map as SVG (None without one) and the method that laid it out."""
    if ctx.index is None:
        return None, ""
    try:
        table = ctx.index.map()
    except SaescopeError:
        return None, ""
    columns = {name: table.column(name).to_pylist() for name in ("latent", "x", "y", "cluster")}
    labels = {i: e.text for i, e in ctx.explanations.items()}
    svg = map_svg(columns["latent"], columns["x"], columns["y"], columns["cluster"], "/latents/{}", labels)
    return svg, str(ctx.index.header.summary.get("map", "")) or "map"


def compared_rows(ctx: RunContext) -> tuple[list[SAERowView], Markup | None]:
    """The run's SAEs as rows of the overview's comparison table, and their L0–FVU frontier (None
    with fewer than two SAEs evaluated)."""
    rows = [sae_row(s.name, s.cfg, s.evaluation) for s in ctx.parts.saes]
    plotted = [r for r in rows if r.l0_value is not None and r.fvu_value is not None]
    if len(plotted) < 2:
        return rows, None
    l0 = [r.l0_value for r in plotted if r.l0_value is not None]
    fvu = [r.fvu_value for r in plotted if r.fvu_value is not None]
    return rows, frontier_svg([r.name for r in plotted], l0, fvu)


@router.get("/", response_class=HTMLResponse)
def overview(ctx: RunContext = Ctx) -> HTMLResponse:
    parts = ctx.parts
    listed = [
        ("activation store", "acts/" if parts.acts else "none"),
        ("SAE", "sae/" if parts.sae else "none"),
        ("latent index", "index/" if ctx.index is not None else "none"),
        *index_rows(ctx),
        ("latents explained", f"{len(ctx.explanations):,}" if ctx.explanations else "none"),
    ]
    svg, method = latent_map_markup(ctx)
    compared, frontier = compared_rows(ctx)
    return page(
        ctx,
        "overview.html",
        "overview",
        sae=sae_rows(parts.sae_cfg),
        parts=listed,
        evaluation=eval_sections(parts.eval),
        images=[(name, IMAGES[name]) for name in parts.images],
        latent_map=svg,
        map_method=method,
        compared=compared,
        frontier=frontier,
        comparison=comparison_view(parts.comparison) if parts.comparison else None,
    )


@router.get("/families", response_class=HTMLResponse)
def families(ctx: RunContext = Ctx) -> HTMLResponse:
    data = ctx.parts.comparison
    if data is None:
        reason = "no comparison in this run: run saescope compare on its SAE and another SAE"
        return page(ctx, "families.html", "comparison", body=None, reason=reason)
    # latents link to their pages when they are of the indexed SAE (no index: no latent pages)
    fingerprint = ctx.index.header.sae_sha256 if ctx.index is not None else None
    view = comparison_view(data, ctx.parts.sae if fingerprint else None, fingerprint)
    return page(ctx, "families.html", "comparison", body=families_body(view, LINKS), reason="")


@router.get("/latents", response_class=HTMLResponse)
def latents(ctx: RunContext = Ctx) -> HTMLResponse:
    rows = ctx.rows()
    if rows is None:
        return page(
            ctx,
            "latent_list.html",
            "latents",
            rows=None,
            reason="no latent index in this run: run saescope index on its SAE",
        )
    subtitle = "" if ctx.rows_complete else "top tokens are still being gathered; reload in a moment"
    return page(
        ctx,
        "latent_list.html",
        "latents",
        rows=[r.to_json() for r in rows],
        title=f"{len(rows):,} latents",
        subtitle=subtitle,
    )


@router.get("/latents/{latent}", response_class=HTMLResponse)
def latent(latent: int, ctx: RunContext = Ctx) -> HTMLResponse:
    ctx.check_latent(latent)
    if ctx.index is None:
        reason = "no latent index in this run: run saescope index on its SAE to see this latent's examples"
        return page(ctx, "latent_missing.html", "latents", latent=latent, reason=reason)
    view = ctx.view(latent)
    return page(ctx, "latent_live.html", "latents", view=view)


@router.get("/inspect", response_class=HTMLResponse)
def inspector(ctx: RunContext = Ctx, text: str = "", latent: int | None = Query(None, ge=0)) -> HTMLResponse:
    return page(ctx, "inspect.html", "text inspector", text=text, latent=latent, d_sae=max(ctx.d_sae, 1))


@router.get("/steer", response_class=HTMLResponse)
def steering(ctx: RunContext = Ctx, latent: int | None = Query(None, ge=0), prompt: str = "") -> HTMLResponse:
    init = {"latents": [latent] if latent is not None else []}
    return page(ctx, "steer.html", "steering", limits=ctx.limits, prompt=prompt, init=init)


# ----- fragments -----------------------------------------------------------------------------
def fragment(markup: str) -> HTMLResponse:
    return HTMLResponse(str(markup))


@router.get("/fragments/latents/{latent}/examples", response_class=HTMLResponse)
def examples_html(
    latent: int, offset: int = Query(0, ge=0), count: int = Query(20, ge=1), ctx: RunContext = Ctx
) -> HTMLResponse:
    found = ctx.examples(latent, offset, count)
    scale = ctx.view_scale(latent)
    return fragment(examples_fragment(found, scale, offset))


@router.get("/fragments/latents/{latent}/quantile", response_class=HTMLResponse)
def quantile_html(
    latent: int, which: int = Query(1, ge=1), of: int = Query(10, ge=1), ctx: RunContext = Ctx
) -> HTMLResponse:
    group = ctx.quantile(latent, which, of)
    return fragment(quantile_fragment(group, ctx.view_scale(latent)))


@router.get("/fragments/latents/{latent}/related", response_class=HTMLResponse)
def related_html(
    latent: int,
    kind: Literal["cooccurring", "neighbours"] = "cooccurring",
    n: int = Query(50, ge=1),
    ctx: RunContext = Ctx,
) -> HTMLResponse:
    what = "co-occurrence" if kind == "cooccurring" else "cosine"
    title = Markup("<h4>{}</h4>").format(
        "co-occurring latents" if kind == "cooccurring" else "decoder neighbours"
    )
    return fragment(title + related_fragment(ctx.related(latent, kind, n), LINKS, what))


@router.post("/fragments/inspect", response_class=HTMLResponse)
async def inspection_html(body: InspectRequest, ctx: RunContext = Ctx) -> HTMLResponse:
    found = await run_inspection(ctx, body)
    shaded = highlight([t.token for t in found.tokens], found.activations, found.scale, numbered=True)
    tokens = [
        {
            "token": t.token,
            "latents": [{"latent": i, "activation": a, "explanation": e} for i, a, e in t.latents],
        }
        for t in found.tokens
    ]
    html = render(
        "inspection.html",
        environment(TEMPLATES),
        tokens=tokens,
        latent=found.latent,
        scale=found.scale,
        shaded=shaded,
    )
    return fragment(html)


@router.post("/fragments/effects", response_class=HTMLResponse)
async def effects_html(body: EffectsRequest, ctx: RunContext = Ctx) -> HTMLResponse:
    found = await run_effects(ctx, body)
    return fragment(render("effects.html", environment(TEMPLATES), result=found))


# ----- files ---------------------------------------------------------------------------------
@router.get("/static/{name}")
def static_file(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/run/images/{name}")
def run_image(name: str, ctx: RunContext = Ctx) -> Response:
    path = ctx.parts.image(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type="image/png")


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


__all__ = ["LINKS", "STATIC_FILES", "router"]
