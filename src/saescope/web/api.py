"""The JSON API under /api: every page's data, for notebooks and scripts (schema at /openapi.json).

    GET  /api/status                         the model worker: loaded, generating, waiting
    GET  /api/run                            model, hookpoint, SAE settings, evaluation, parts
    GET  /api/latents?q=&sort=&offset=&limit=   latents searched by explanation, top tokens or id
    GET  /api/latents/{i}                    everything a latent's page shows
    GET  /api/latents/{i}/examples           more top examples (offset, count)
    GET  /api/latents/{i}/quantile           examples from one activation quantile
    GET  /api/latents/{i}/random             examples where it does not fire
    GET  /api/latents/{i}/related            co-occurring latents or decoder neighbours
    GET  /api/map                            the 2-D latent map
    POST /api/inspect                        a text's tokens with their top latents
    POST /api/effects                        ablation and attribution for a next token
    POST /api/steer                          unsteered, steered and control completions, their effects
    POST /api/steer/stream                   the same, streamed token by token (server-sent events)

Index queries are plain functions (FastAPI runs them in its thread pool); model work awaits the
model worker. Errors are JSON `{"error": …}` (see `app.error_response`).

This module knows nothing about HTML.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import SaescopeError
from ..files import json_safe
from ..render import LatentRow
from ..steer import Intervention, Sampling, latent_effects
from ..steer.effects import EffectsResult
from ..steer.interventions import SteeringError
from .context import Inspection, RunContext
from .events import EventStream, sse
from .limits import check_count
from .schemas import (
    EffectsRequest,
    ExamplesOut,
    InspectRequest,
    LatentsOut,
    QuantileOut,
    RelatedListOut,
    StatusOut,
    SteerRequest,
)
from .steering import SteerPlan, SteerSession, close_variants, needs_stats, start_variants, stream_events

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])

SortKey = Literal["latent", "frequency", "max", "score"]


def context(request: Request) -> RunContext:
    """The run context of the app serving `request`."""
    ctx: RunContext = request.app.state.ctx
    return ctx


Ctx = Depends(context)


# ----- helpers shared with the HTML routes --------------------------------------------------
def search_rows(
    rows: list[LatentRow],
    q: str,
    sort: SortKey = "frequency",
    descending: bool = True,
    hide_dead: bool = False,
) -> list[LatentRow]:
    """Rows whose id, explanation or top tokens hold every word of `q` (case-insensitive), sorted."""
    words = q.lower().split()

    def hit(r: LatentRow) -> bool:
        if hide_dead and r.frequency <= 0:
            return False
        hay = f"{r.latent} {r.explanation} {' '.join(r.top_tokens)}".lower()
        return all(w in hay for w in words)

    field = {"latent": "latent", "frequency": "frequency", "max": "max", "score": "score"}[sort]
    found = [r for r in rows if hit(r)]
    present = [r for r in found if getattr(r, field) is not None]
    missing = [r for r in found if getattr(r, field) is None]
    return sorted(present, key=lambda r: getattr(r, field), reverse=descending) + missing


def inspect_plan(ctx: RunContext, body: InspectRequest) -> None:
    """Refuse a text over the inspector's limit."""
    if not body.text.strip():
        raise SaescopeError("the text is empty")
    ctx.count_tokens(body.text, "max_text_tokens", "the text")


async def run_inspection(ctx: RunContext, body: InspectRequest) -> Inspection:
    """The inspection of a text (limits checked, then on the model worker)."""
    await run_in_threadpool(inspect_plan, ctx, body)  # tokenizing: off the event loop
    if body.latent is not None:
        ctx.check_latent(body.latent)
    return await ctx.worker.call(ctx.inspect, body.text, body.latent)


async def run_effects(ctx: RunContext, body: EffectsRequest) -> EffectsResult:
    """Ablation effects and attributions of a text (limits checked; one heavy job at a time)."""
    if not body.text.strip():
        raise SaescopeError("the text is empty")
    await run_in_threadpool(ctx.count_tokens, body.text, "max_effects_tokens", "the text")
    explanations = {i: e.text for i, e in ctx.explanations.items()}
    limit = ctx.limits.max_effects_tokens + 2  # BOS and the target token

    def compute(bound: Any) -> EffectsResult:
        return latent_effects(
            bound, body.text, body.target, body.top, max_tokens=limit, explanations=explanations
        )

    async with ctx.worker.generation_slot():
        return await ctx.worker.call(compute)


def steer_plan(ctx: RunContext, body: SteerRequest) -> SteerPlan:
    """A steering request checked against every limit, as a plan."""
    limits = ctx.limits
    check_count(limits, "max_prompts", len(body.prompts), "the number of prompts")
    check_count(limits, "max_latents", len(body.interventions), "the number of latents")
    check_count(limits, "max_new_tokens", body.max_new_tokens, "max_new_tokens")
    for number, prompt in enumerate(body.prompts):
        if not prompt.strip():
            raise SaescopeError(f"prompt {number} is empty")
        ctx.count_tokens(prompt, "max_prompt_tokens", f"prompt {number}", body.chat)
    for item in body.interventions:
        ctx.check_latent(item.latent)
    interventions = tuple(
        Intervention(i.latent, i.mode, i.value, i.relative, i.where, conditional=i.conditional)
        for i in body.interventions
    )
    sampling = Sampling(body.max_new_tokens, body.temperature, body.top_p, body.seed)
    if body.sweep and any(i.mode == "ablate" for i in interventions):
        raise SteeringError("a sweep multiplies the edit's values; an ablation has none")
    return SteerPlan(
        tuple(body.prompts),
        interventions,
        sampling,
        body.controls,
        body.chat,
        tuple(body.targets),
        tuple(body.sweep),
    )


async def start_steering(ctx: RunContext, plan: SteerPlan) -> tuple[SteerSession, Callable[[], None]]:
    """Admit a generation (or raise `Busy`) and start its variants; returns them with the slot's
    release function (the caller releases it)."""
    release = await ctx.worker.admit()
    try:
        stats = await ctx.worker.call(ctx.stats) if needs_stats(plan) else None
        session = await ctx.worker.call(start_variants, plan, stats)
    except BaseException:
        release()
        raise
    return session, release


def refused_steering(error: SteeringError) -> JSONResponse:
    """A steering request that cannot give a meaningful result (an absurd value, outputs that are
    not finite, an empty steered completion): HTTP 422, the error's one line."""
    return JSONResponse({"error": str(error)}, status_code=422)


# ----- routes -----------------------------------------------------------------------------
@router.get("/status", response_model=StatusOut)
def status(ctx: RunContext = Ctx) -> dict[str, Any]:
    """The model worker's state and the run's parts."""
    state = ctx.worker.state()
    return {
        "run": ctx.name,
        **state._asdict(),
        "has_index": ctx.index is not None,
        "has_sae": ctx.parts.sae is not None,
    }


@router.get("/run")
def run_info(ctx: RunContext = Ctx) -> dict[str, Any]:
    """Model, hookpoint, SAE settings, evaluation and the run's parts."""
    parts = ctx.parts
    header = ctx.index.header.to_dict() if ctx.index is not None else None
    if header is not None:
        header.pop("cfg", None)
    out: dict[str, Any] = json_safe(
        {
            "run": ctx.name,
            "sae": parts.sae_cfg,
            "eval": parts.eval,
            "index": header,
            "parts": {
                "acts": parts.acts is not None,
                "sae": parts.sae is not None,
                "index": parts.index_dir is not None,
                "images": list(parts.images),
            },
        }
    )
    return out


@router.get("/latents", response_model=LatentsOut)
def latents(
    q: str = "",
    sort: SortKey = "frequency",
    descending: bool = True,
    hide_dead: bool = False,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=5000),
    ctx: RunContext = Ctx,
) -> dict[str, Any]:
    """Latents whose id, explanation or top tokens hold every word of `q`, sorted."""
    rows = ctx.rows()
    if rows is None:
        ctx.require_index()
        rows = []
    found = search_rows(rows, q, sort, descending, hide_dead)
    return {
        "total": len(found),
        "rows": [{**r._asdict(), "top_tokens": list(r.top_tokens)} for r in found[offset : offset + limit]],
        "complete": ctx.rows_complete,
    }


@router.get("/latents/{latent}")
def latent(latent: int, ctx: RunContext = Ctx) -> dict[str, Any]:
    """Everything a latent's page shows (statistics, examples, quantiles, relations, logits)."""
    view = ctx.view(latent)
    out: dict[str, Any] = json_safe(view)
    out["top"] = [e.to_json() for e in view.top]
    out["quantiles"] = [
        {"label": g.label, "examples": [e.to_json() for e in g.examples]} for g in view.quantiles
    ]
    return out


@router.get("/latents/{latent}/examples", response_model=ExamplesOut)
def examples(
    latent: int,
    offset: int = Query(0, ge=0),
    count: int = Query(20, ge=1),
    before: int = Query(12, ge=0, le=256),
    after: int = Query(4, ge=0, le=256),
    ctx: RunContext = Ctx,
) -> dict[str, Any]:
    """Top examples `offset` … `offset + count` (largest activation first)."""
    found = ctx.examples(latent, offset, count, before, after)
    return {"latent": latent, "examples": [e.to_json() for e in found]}


@router.get("/latents/{latent}/quantile", response_model=QuantileOut)
def quantile(
    latent: int,
    which: int = Query(1, ge=1),
    of: int = Query(10, ge=1),
    n: int = Query(5, ge=1),
    ctx: RunContext = Ctx,
) -> dict[str, Any]:
    """`n` examples from quantile `which` (1 = weakest) of `of` equal-count quantiles."""
    group = ctx.quantile(latent, which, of, n)
    return {"latent": latent, "label": group.label, "examples": [e.to_json() for e in group.examples]}


@router.get("/latents/{latent}/random", response_model=ExamplesOut)
def random_examples(latent: int, n: int = Query(10, ge=1), ctx: RunContext = Ctx) -> dict[str, Any]:
    """Windows of text where the latent does not fire at all."""
    return {"latent": latent, "examples": [e.to_json() for e in ctx.random(latent, n)]}


@router.get("/latents/{latent}/related", response_model=RelatedListOut)
def related(
    latent: int,
    kind: Literal["cooccurring", "neighbours"] = "cooccurring",
    n: int = Query(20, ge=1),
    ctx: RunContext = Ctx,
) -> dict[str, Any]:
    """Latents firing on the same tokens (Jaccard index) or with similar decoder directions (cosine)."""
    found = ctx.related(latent, kind, n)
    return {"latent": latent, "kind": kind, "latents": [r._asdict() for r in found]}


@router.get("/map")
def latent_map(ctx: RunContext = Ctx) -> dict[str, Any]:
    """The 2-D map of the decoder directions: `latent`, `x`, `y`, `cluster` columns."""
    table = ctx.require_index().map()
    out: dict[str, Any] = json_safe({name: table.column(name).to_pylist() for name in table.column_names})
    return out


@router.post("/inspect")
async def inspect(body: InspectRequest, ctx: RunContext = Ctx) -> dict[str, Any]:
    """Every token of a text with its most active latents, and one latent's activations."""
    found = await run_inspection(ctx, body)
    return found.to_json()


@router.post("/effects")
async def effects(body: EffectsRequest, ctx: RunContext = Ctx) -> dict[str, Any]:
    """Ablation effect and attribution of every active latent on one next token."""
    found = await run_effects(ctx, body)
    out: dict[str, Any] = json_safe(found.to_json())
    return out


@router.post("/steer", response_model=None)
async def steer(body: SteerRequest, ctx: RunContext = Ctx) -> dict[str, Any] | JSONResponse:
    """Unsteered, steered (and control) completions, when all are finished, with the effects and
    the sweep `saescope steer --json` reports (`targets`, `measures`, `effects`, `sweep`)."""
    try:
        plan = await run_in_threadpool(steer_plan, ctx, body)
        session, release = await start_steering(ctx, plan)
    except SteeringError as e:
        return refused_steering(e)
    done: dict[str, Any] = {}
    try:
        async for event in stream_events(ctx.worker, session):
            if event["event"] == "done":
                done = event
    except SteeringError as e:
        return refused_steering(e)
    finally:
        release()
        ctx.worker.submit(close_variants, session)
    done.pop("event", None)
    return {"prompts": list(plan.prompts), **done}


@router.post("/steer/stream", response_model=None)
async def steer_stream(body: SteerRequest, ctx: RunContext = Ctx) -> EventStream | JSONResponse:
    """The same, streamed as server-sent events: `token` events (variant, row, step, text) as they
    are generated, `sweep` events as each strength of a sweep starts, then one `done` event. A
    request refused before the first token gets its HTTP status (422 for an absurd value); an
    error after it, an `error` event. A client that disconnects frees the slot at once."""
    try:
        plan = await run_in_threadpool(steer_plan, ctx, body)
        session, release = await start_steering(ctx, plan)
    except SteeringError as e:
        return refused_steering(e)

    async def events() -> AsyncIterator[str]:
        try:
            async for event in stream_events(ctx.worker, session):
                yield sse(event)
        except SaescopeError as e:
            yield sse({"event": "error", "error": str(e)})
        finally:
            release()
            ctx.worker.submit(close_variants, session)

    return EventStream(events())


__all__ = ["context", "router", "run_effects", "run_inspection", "search_rows", "steer_plan"]
