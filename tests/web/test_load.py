"""The server under load, as its users meet it: browsing stays responsive while generating, the
generation line is bounded with a clear "busy, retry", and a client that leaves frees its slot."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from saescope.config.serve import ServeConfig

from .servers import Running, model_hooks, running

STEER = {
    "prompts": ["The cat is"],
    "interventions": [{"latent": 3, "mode": "add", "value": 4.0}],
    "controls": False,
}


def wait_idle(http: httpx.Client, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while http.get("/api/status").json()["generating"] or http.get("/api/status").json()["waiting"]:
        assert time.monotonic() < deadline, "the generation slot was never freed"
        time.sleep(0.02)


def test_200_browsing_and_10_generation_requests_at_once(server: Running) -> None:
    browse = ["/api/latents/5", "/latents/7", "/api/latents?q=cat", "/", "/api/latents/3/examples?count=5"]
    urls = [browse[i % len(browse)] for i in range(200)]

    def get(url: str) -> tuple[str, int, Any]:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            r = c.get(url)
            return "browse", r.status_code, None

    def generate(_: int) -> tuple[str, int, Any]:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            r = c.post("/api/steer", json={**STEER, "max_new_tokens": 30})
            return "generate", r.status_code, r.headers.get("retry-after")

    with ThreadPoolExecutor(32) as pool:
        jobs = [pool.submit(generate, i) for i in range(10)] + [pool.submit(get, u) for u in urls]
        results = [j.result() for j in jobs]
    browsing = [s for kind, s, _ in results if kind == "browse"]
    generating = [(s, retry) for kind, s, retry in results if kind == "generate"]
    assert browsing == [200] * 200
    assert {s for s, _ in generating} <= {200, 503}
    assert sum(s == 200 for s, _ in generating) >= 1 + 2  # one runs, the line (queue=2) waits and runs
    assert all(retry is not None and int(retry) > 0 for s, retry in generating if s == 503)
    with httpx.Client(base_url=server.url) as c:
        wait_idle(c)
    assert model_hooks(server.ctx) == 0


def test_browsing_is_answered_while_a_generation_runs(server: Running) -> None:
    http = httpx.Client(base_url=server.url, timeout=60)
    first_token = threading.Event()
    finished = threading.Event()

    def long_generation() -> None:
        body = {
            **STEER,
            "max_new_tokens": 200,
            "controls": True,
            "prompts": ["The cat is", "Paris", "on a mat"],
        }
        with (
            httpx.Client(base_url=server.url, timeout=120) as c,
            c.stream("POST", "/api/steer/stream", json=body) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("data: "):
                    first_token.set()
        finished.set()

    thread = threading.Thread(target=long_generation)
    thread.start()
    assert first_token.wait(60)
    answered = 0
    for url in ("/api/latents/5", "/latents/5", "/api/latents?q=the", "/api/status"):
        assert http.get(url).status_code == 200
        answered += 1
    inspected = http.post("/api/inspect", json={"text": "The cat"})  # model work slips in between tokens
    assert inspected.status_code == 200
    assert not finished.is_set(), "browsing waited for the generation to end"
    thread.join(120)
    assert answered == 4


def test_a_client_that_leaves_frees_its_slot_at_once(run: Path) -> None:
    with running(ServeConfig(run=run, device="cpu", port=0, queue=0, max_new_tokens=200)) as up:
        http = httpx.Client(base_url=up.url, timeout=60)
        body = {**STEER, "max_new_tokens": 200, "controls": True}
        with http.stream("POST", "/api/steer/stream", json=body) as response:
            lines = response.iter_lines()  # kept referenced: dropping it would close the connection
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["event"] == "token"
            assert http.post("/api/steer", json=STEER).status_code == 503  # queue=0: no place in line
        left = time.monotonic()
        wait_idle(http)
        assert time.monotonic() - left < 5
        assert http.post("/api/steer", json=STEER).status_code == 200  # the slot is free again
        assert model_hooks(up.ctx) == 0


@pytest.mark.parametrize("path", ["/api/steer", "/api/effects"])
def test_busy_answers_say_when_to_retry(run: Path, path: str) -> None:
    with running(ServeConfig(run=run, device="cpu", port=0, queue=0, max_new_tokens=200)) as up:
        http = httpx.Client(base_url=up.url, timeout=60)
        with http.stream(
            "POST", "/api/steer/stream", json={**STEER, "max_new_tokens": 200, "controls": True}
        ) as r:
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            body = STEER if path == "/api/steer" else {"text": "The cat"}
            busy = http.post(path, json=body)
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
        assert "busy" in busy.json()["error"]
