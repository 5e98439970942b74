"""The run's attribution graphs (`saescope circuit`) in the browser and the API.

    /graphs                                   the saved graphs of the run
    /graphs/{name}                            a graph: nodes by layer and position, edges by weight
                                              and sign; hover, pin, ablate or steer latents
    /fragments/graphs/{name}/nodes/{node}     a latent node's explanation and top examples
    GET  /api/graphs                          the saved graphs, as the list shows them
    GET  /api/graphs/{name}                   a graph's document (its NAME.json)
    POST /api/graphs/{name}/edit              latents scaled (0 ablates) in the real model: the
                                              next-token logits before and after

A graph is looked up only among those the run's circuits folder lists (`render.graph_gather`).
Model work runs on the server's one model worker, one edit at a time (the generation slot), with
the graph's own model and dictionaries (`graph_edits`).

This module knows nothing about how graphs are built or drawn.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..files import json_safe
from ..render.graph import graph_body, graph_list_body, graph_view, node_detail_fragment
from ..render.graph_gather import DictionaryIndexes, graph_rows, logit_tokens, read_graph
from ..runs import Run
from .api import Ctx
from .context import RunContext
from .graph_edits import GraphModels, plan_edits, run_edits
from .limits import check_count
from .pages import LINKS, page

router = APIRouter()

LIST_HREF = "/graphs/{}"
"""A graph's page, `{}` standing for its name."""
NO_GRAPHS = "no attribution graphs in this run: saescope circuit RUN --prompt TEXT makes one"


class NodeEditIn(BaseModel):
    """One latent node of the graph scaled."""

    node: str = Field(description="The node's id in the graph (e.g. 1_17_4: layer, latent, position).")
    factor: float = Field(
        0.0, allow_inf_nan=False, description="Its activation is multiplied by this (0 ablates)."
    )


class GraphEditRequest(BaseModel):
    """Latents of a graph to ablate or steer."""

    edits: list[NodeEditIn] = Field(description="The latent nodes and their factors.")
    top: int = Field(10, ge=1, le=50, description="Most likely next tokens listed before and after.")


class GraphState(NamedTuple):
    """What the graph routes keep between requests."""

    indexes: DictionaryIndexes
    """The dictionaries' latent indexes (for nodes' examples)."""
    models: GraphModels
    """The graphs' models and dictionaries (used on the model worker only)."""


async def graph_state(request: Request) -> GraphState:
    """The app's graph state, made on first use (on the event loop: once)."""
    state = request.app.state
    found: GraphState | None = getattr(state, "graphs", None)
    if found is None:
        ctx: RunContext = state.ctx
        found = state.graphs = GraphState(DictionaryIndexes(), GraphModels(ctx.cfg))
    return found


def _circuits(ctx: RunContext) -> Any:
    return Run(ctx.parts.root).circuits


# ----- pages ---------------------------------------------------------------------------------
@router.get("/graphs", response_class=HTMLResponse, include_in_schema=False)
def graphs_page(ctx: RunContext = Ctx) -> HTMLResponse:
    rows = graph_rows(_circuits(ctx))
    return page(ctx, "graphs_page.html", "graphs", body=graph_list_body(rows, LIST_HREF, NO_GRAPHS))


@router.get("/graphs/{name}", response_class=HTMLResponse, include_in_schema=False)
def graph_page(name: str, ctx: RunContext = Ctx) -> HTMLResponse:
    circuits = _circuits(ctx)
    view = graph_view(read_graph(circuits, name), name, logit_tokens(circuits, name))
    base = LIST_HREF.format(name)
    body = graph_body(
        view, LINKS, live=True, detail_url=f"/fragments{base}/nodes", edit_url=f"/api{base}/edit"
    )
    return page(ctx, "graph_page.html", "graphs", body=body, title=view.name)


@router.get("/fragments/graphs/{name}/nodes/{node}", response_class=HTMLResponse, include_in_schema=False)
def node_fragment(name: str, node: str, request: Request, ctx: RunContext = Ctx) -> HTMLResponse:
    state: GraphState | None = getattr(request.app.state, "graphs", None)
    indexes = state.indexes if state is not None else DictionaryIndexes()
    detail = indexes.detail(read_graph(_circuits(ctx), name), node)
    return HTMLResponse(node_detail_fragment(detail), headers={"Cache-Control": "no-store"})


# ----- the API ---------------------------------------------------------------------------------
@router.get("/api/graphs", tags=["api"])
def graphs(ctx: RunContext = Ctx) -> dict[str, Any]:
    """The run's saved attribution graphs: name, prompt, target, method, kept nodes and edges,
    replacement score, validation r (null: not measured)."""
    return {"graphs": [r._asdict() for r in graph_rows(_circuits(ctx))]}


@router.get("/api/graphs/{name}", tags=["api"])
def graph(name: str, ctx: RunContext = Ctx) -> dict[str, Any]:
    """A graph's document, as `saescope circuit` saved it (docs/formats.md, "Attribution graphs")."""
    out: dict[str, Any] = read_graph(_circuits(ctx), name)
    return out


@router.post("/api/graphs/{name}/edit", tags=["api"])
async def edit(name: str, body: GraphEditRequest, request: Request, ctx: RunContext = Ctx) -> dict[str, Any]:
    """The real model's next-token logits with the graph's latents scaled at their layer and
    position (factor 0 ablates), beside the unedited ones; the graph's output logits first."""
    state = await graph_state(request)
    check_count(ctx.limits, "max_latents", len(body.edits), "the number of nodes")
    document = await run_in_threadpool(read_graph, _circuits(ctx), name)
    edits = plan_edits(document, [(e.node, e.factor) for e in body.edits])
    async with ctx.worker.generation_slot():
        found = await ctx.worker.call_unbound(run_edits, state.models, document, edits, body.top)
    out: dict[str, Any] = json_safe({"graph": name, **found.to_json()})
    return out


__all__ = ["GraphEditRequest", "NodeEditIn", "router"]
