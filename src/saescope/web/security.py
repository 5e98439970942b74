"""Who may talk to the server: the access token, and the Host check that guards loopback.

With a token (required beyond loopback), every request must carry it: an
`Authorization: Bearer TOKEN` or `X-Saescope-Token: TOKEN` header (scripts), or the
`saescope_token` cookie that opening any page with `?token=TOKEN` sets (browsers; the token is then
removed from the address by a redirect). Tokens are compared in constant time
(`hmac.compare_digest`), so response timing tells nothing about a guess. The cookie is HttpOnly and
SameSite=Strict: other sites' pages can neither read it nor make the browser send it.

Without a token the server listens on loopback only, and it answers only requests whose Host is a
loopback name: a web page elsewhere cannot reach it through a DNS name rebound to 127.0.0.1.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware), so streamed responses pass through
untouched. This module knows nothing about the routes behind it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "saescope_token"
HEADER = "x-saescope-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def same_token(given: str | None, expected: str) -> bool:
    """Whether `given` is the token, compared in constant time."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_token(headers: dict[str, str]) -> str | None:
    """The token a request carries in a header or the cookie (None when it carries none)."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if HEADER in headers:
        return headers[HEADER]
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header carries no token
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else None


def host_name(host: str) -> str:
    """The name part of a Host header (`127.0.0.1:8000` → `127.0.0.1`, `[::1]:80` → `[::1]`)."""
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(body).encode("utf-8")
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + headers})
    await send({"type": "http.response.body", "body": data})


class AccessGuard:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if self.token is None:
            if host_name(headers.get("host", "")) not in LOOPBACK_NAMES:
                await _answer(
                    send, 421, {"error": "this server answers only requests to a loopback address"}, []
                )
                return
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query:
            await self._login(scope, send, query)
            return
        if not same_token(presented_token(headers), self.token):
            message = (
                "this server needs its access token: open it with ?token=TOKEN "
                "or send the X-Saescope-Token header"
            )
            await _answer(send, 401, {"error": message}, [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

    async def _login(self, scope: Scope, send: Send, query: dict[str, str]) -> None:
        """`?token=`: set the cookie and redirect to the same address without the token."""
        assert self.token is not None
        if not same_token(query.pop("token"), self.token):
            await _answer(send, 401, {"error": "wrong access token"}, [])
            return
        rest = urlencode(query)
        path = str(scope.get("path", "/"))
        # a path starting with // would redirect to another host
        location = quote("/" + path.lstrip("/")) + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        headers = [(b"location", location.encode("utf-8")), (b"set-cookie", cookie.encode("latin-1"))]
        await _answer(send, 303, {"login": "ok"}, headers)


__all__ = ["COOKIE", "HEADER", "AccessGuard", "host_name", "presented_token", "same_token"]
