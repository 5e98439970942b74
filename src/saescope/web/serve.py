"""`saescope serve RUN`: the browser UI and its JSON API under uvicorn, until Ctrl-C.

Logs the address when the server is up (with a login address carrying the token when one is
set): like every log line it goes to stderr, so that stdout carries only the result — with
`--json`, exactly one JSON document, as the CLI promises (`saescope.cli.report`).

The web extra (FastAPI, uvicorn) is imported only here, so every other command works without it;
without it this command says in one line how to install it.

This module knows nothing about the routes.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import time
from typing import Any, NamedTuple

from ..config.serve import ServeConfig
from ..errors import SaescopeError

log = logging.getLogger(__name__)


class ServeResult(NamedTuple):
    """What a server did, reported when it stops."""

    url: str
    """Where it listened."""
    seconds: float
    """How long it ran."""

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def render(self) -> str:
        return f"stopped serving {self.url} after {self.seconds:.0f} s"


def require_web_extra() -> None:
    """Refuse to start without FastAPI and uvicorn, saying how to install them."""
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise SaescopeError(f"saescope serve needs {' and '.join(missing)}: pip install 'saescope[web]'")


def url_of(host: str, port: int) -> str:
    """The address a browser opens."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def announce(url: str, token: str | None) -> None:
    """Log the address (and the login address) at once."""
    log.info("saescope serving on %s", url)
    if token is not None:
        log.info("log in at %s/?token=%s", url, token)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening (port 0: a free one); an error names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise SaescopeError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    return sock


def serve(cfg: ServeConfig) -> ServeResult:
    """`saescope serve` (see the module docstring)."""
    require_web_extra()
    from .run import find_run_parts

    parts = find_run_parts(cfg.run)  # a wrong folder is reported before the heavy imports
    import uvicorn

    from .app import create_app

    app = create_app(cfg, parts)
    sock = listening_socket(cfg.host, cfg.port)
    url = url_of(cfg.host, sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    started = time.perf_counter()
    announce(url, cfg.token)  # the socket already listens: a client may connect from now on
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return ServeResult(url, time.perf_counter() - started)


__all__ = ["ServeResult", "require_web_extra", "serve"]
