"""The FastAPI application of `saescope serve`: routes, errors, access control, start and stop.

    app = create_app(ServeConfig(run=Path("runs/demo")))     # serve with uvicorn

Errors become answers a person and a script can act on: a latent out of range or a missing
index → 404, a request over a limit → 413/422 naming the limit, "busy" → 503 with Retry-After,
any other user error → 400; JSON under /api and /fragments, a small HTML page elsewhere. The
access guard (`security.AccessGuard`) wraps the whole application, static files and the OpenAPI
schema included. The interactive /docs pages are off: they load their scripts from a CDN, and
the server works offline.

This module knows nothing about what the routes compute.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import escape

from .. import __version__
from ..config.serve import ServeConfig
from ..errors import SaescopeError
from ..index.format import LatentIndexError
from . import api, graphs, pages
from .context import RunContext
from .limits import LimitError
from .run import RunParts
from .security import AccessGuard
from .worker import Busy

log = logging.getLogger(__name__)


def status_of(error: SaescopeError) -> int:
    """The HTTP status of a user error."""
    if isinstance(error, LimitError):
        return error.status
    if isinstance(error, Busy):
        return 503
    if isinstance(error, LatentIndexError):
        return 404
    return 400


def wants_json(request: Request) -> bool:
    """Whether the client reads JSON (the API and the fragments' scripts) rather than a page."""
    return request.url.path.startswith(("/api/", "/fragments/"))


async def error_response(request: Request, error: Exception) -> Response:
    """A user error as JSON or as a small page (see the module docstring)."""
    assert isinstance(error, SaescopeError)
    status = status_of(error)
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, Busy) else None
    if wants_json(request):
        body = error.to_json() if isinstance(error, LimitError) else {"error": str(error)}
        return JSONResponse(body, status_code=status, headers=headers)
    html = (
        '<!doctype html><meta charset="utf-8"><title>saescope</title>'
        f'<p>{escape(str(error))}</p><p><a href="/">back</a></p>'
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def create_app(cfg: ServeConfig, parts: RunParts | None = None) -> FastAPI:
    """The application serving the run of `cfg` (its `state.ctx` is the `RunContext`)."""
    ctx = RunContext(cfg, parts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.start()
        try:
            yield
        finally:
            ctx.close()

    app = FastAPI(
        title="saescope",
        version=__version__,
        summary="Latents, text inspection and steering of one SAE run",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.add_exception_handler(SaescopeError, error_response)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(graphs.router)
    app.add_middleware(AccessGuard, token=cfg.token)
    return app


__all__ = ["create_app", "error_response", "status_of"]
