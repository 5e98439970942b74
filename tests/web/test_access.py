"""Access control over HTTP: the token on every request (header, bearer, cookie from a ?token=
login), and the Host check that keeps a loopback server from answering a rebound DNS name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from saescope.config.serve import ServeConfig

from .servers import Running, running

TOKEN = "s3cret-token_123"


@pytest.fixture(scope="module")
def guarded(run: Path) -> Iterator[Running]:
    with running(ServeConfig(run=run, device="cpu", port=0, token=TOKEN), warm=False) as up:
        yield up


@pytest.mark.parametrize("path", ["/", "/api/status", "/static/saescope.css", "/openapi.json", "/latents/1"])
def test_every_request_needs_the_token(guarded: Running, path: str) -> None:
    http = httpx.Client(base_url=guarded.url)
    assert http.get(path).status_code == 401
    assert http.get(path, headers={"X-Saescope-Token": TOKEN + "x"}).status_code == 401
    assert http.get(path, headers={"X-Saescope-Token": TOKEN}).status_code == 200
    assert http.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_login_link_sets_a_cookie_and_drops_the_token(guarded: Running) -> None:
    http = httpx.Client(base_url=guarded.url)
    assert http.get("/latents?token=wrong").status_code == 401
    login = http.get(f"/latents?token={TOKEN}&x=1")
    assert login.status_code == 303 and login.headers["location"] == "/latents?x=1"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert http.get("/latents").status_code == 200  # the client keeps the cookie
    assert http.post("/api/steer", json={}).status_code == 422  # past the guard: a body problem now
    sneaky = httpx.Client(base_url=guarded.url).get(f"//evil.example/?token={TOKEN}")
    assert sneaky.status_code == 303 and sneaky.headers["location"] == "/"


def test_loopback_without_token_answers_only_loopback_names(server: Running) -> None:
    http = httpx.Client(base_url=server.url)
    assert http.get("/api/status").status_code == 200
    assert http.get("/api/status", headers={"Host": "localhost:1"}).status_code == 200
    rebound = http.get("/api/status", headers={"Host": "attacker.example"})
    assert rebound.status_code == 421 and "loopback" in rebound.json()["error"]
