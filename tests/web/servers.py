"""A real uvicorn server on 127.0.0.1 (a free port) in a background thread, for tests that talk
HTTP to it and also look inside it (its model, its worker).

This module knows nothing about the routes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import uvicorn

from saescope.config.serve import ServeConfig
from saescope.web.app import create_app
from saescope.web.context import RunContext
from saescope.web.serve import listening_socket, url_of


class Running(NamedTuple):
    """A server that is up."""

    url: str
    """Its address (http://127.0.0.1:PORT)."""
    ctx: RunContext
    """Its run context (model worker, index)."""


@contextmanager
def running(cfg: ServeConfig, warm: bool = True) -> Iterator[Running]:
    """Serve `cfg` until the block ends; with `warm`, wait until the model is loaded and the
    start-up work (tokenizer, list of latents) is done."""
    app = create_app(cfg)
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ctx: RunContext = app.state.ctx
    deadline = time.monotonic() + 60
    while not server.started or (warm and (ctx.worker.bound is None or not ctx.rows_complete)):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Running(url_of("127.0.0.1", sock.getsockname()[1]), ctx)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def model_hooks(ctx: RunContext) -> int:
    """Hooks left on the served model's modules (0 when every generation cleaned up)."""
    bound = ctx.worker.bound
    assert bound is not None
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in bound.loaded_model.model.modules())
