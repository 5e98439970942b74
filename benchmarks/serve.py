"""`saescope serve` on the demo run: p50/p95 latency (one client) and requests per second (several
clients at once) of latent pages, search and text inspection, and the time to the first steered
token, each beside a baseline measured in the same run: the same work done in-process, without
the server.

Targets (issue 13): latent page p95 <= 300 ms; first steered token <= 2 s on the demo model.

The server runs as its own process (`saescope serve RUN --port 0`), as a user starts it; clients
are threads of this process, several at once. Needs a run with an SAE and a latent index.

    python benchmarks/serve.py --run runs/demo
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import torch

from saescope.bound import bind_sae, encode_text
from saescope.dashboard import PageSettings, explanation_views, latent_view
from saescope.index import Index
from saescope.render import latent_page
from saescope.steer import Intervention, stream_steered
from saescope.steer.generate import Sampling

TEXTS = [
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France.",
    "def parse(self, text):\n    return [line.strip() for line in text.splitlines() if line]",
    "In 1969, the Apollo 11 mission landed the first humans on the Moon.",
    "The function returns a list of the keys of the dictionary, sorted by their values.",
]
WORDS = ["the", "def", "return", "Paris", "list", "import", "class", "error", "file", "number"]


def percentiles(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):6.1f} ms, p95 {p95:6.1f} ms"


def load(
    url: str, requests: list[Callable[[httpx.Client], httpx.Response]], clients: int
) -> tuple[float, list[float]]:
    """Run `requests` from `clients` threads at once; (requests per second, each one's latency)."""

    def one(request: Callable[[httpx.Client], httpx.Response], client: httpx.Client) -> float:
        started = time.perf_counter()
        response = request(client)
        assert response.status_code == 200, response.text[:200]
        return time.perf_counter() - started

    pool_clients = [httpx.Client(base_url=url, timeout=300) for _ in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, requests, [pool_clients[i % clients] for i in range(len(requests))]))
    return len(requests) / (time.perf_counter() - started), latencies


def get(path: str, params: dict[str, str] | None = None) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.get(path, params=params)


def post(path: str, body: dict[str, Any]) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.post(path, json=body)


def in_process(fn: Callable[[int], Any], n: int) -> list[float]:
    """Latencies of `fn(i)` for i < n, one after another in this process."""
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


def start_server(run: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "saescope", "serve", str(run), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:  # the address is logged on stderr once the socket listens
        if "saescope serving on " in line:
            url = line.strip().rsplit(" ", 1)[1]
            break
    else:
        raise SystemExit("saescope serve exited before listening")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until the model is loaded and the list of latents built
        try:
            status = httpx.get(f"{url}/api/status").json()
            if status["loaded"] and httpx.get(f"{url}/api/latents?limit=1").json()["complete"]:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not get ready in 5 minutes")


def first_token(url: str, body: dict[str, Any]) -> float:
    """Seconds from sending a streamed steering request to its first token event."""
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=300) as c, c.stream("POST", "/api/steer/stream", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["event"] == "token":
                return time.perf_counter() - started
    raise AssertionError("no token streamed")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    index = Index(args.run / "index")
    rng = random.Random(0)
    latents = [rng.randrange(index.d_sae) for _ in range(args.pages)]
    process, url = start_server(args.run)
    try:
        page_requests = [get(f"/latents/{i}") for i in latents]
        _, pages = load(url, page_requests[: args.pages // 2], 1)
        pages_rate, pages_busy = load(url, page_requests[args.pages // 2 :], args.clients)
        searches = [get("/api/latents", {"q": rng.choice(WORDS)}) for _ in range(args.pages)]
        _, search = load(url, searches[: args.pages // 2], 1)
        search_rate, search_busy = load(url, searches[args.pages // 2 :], args.clients)
        inspections = [post("/api/inspect", {"text": TEXTS[i % len(TEXTS)]}) for i in range(40)]
        inspect_rate, inspect = load(url, inspections, 2)
        body = {
            "prompts": ["The weather today is"],
            "interventions": [{"latent": 1, "mode": "add", "value": 4.0}],
        }
        firsts = [first_token(url, {**body, "controls": False, "max_new_tokens": 4}) for _ in range(5)]
        firsts_controls = [
            first_token(url, {**body, "controls": True, "max_new_tokens": 4}) for _ in range(5)
        ]
    finally:
        process.terminate()
        process.wait(60)

    torch.set_num_threads(1)  # as the server runs its model (`saescope serve --threads`, default 1)
    explanations = explanation_views(index)
    base_pages = in_process(
        lambda i: latent_page(latent_view(index, latents[i], PageSettings(), explanations)), 50
    )
    bound = bind_sae(args.run / "sae")
    base_inspect = in_process(lambda i: encode_text(bound, TEXTS[i % len(TEXTS)]), 20)
    edit = [Intervention(1, "add", 4.0)]

    def first_step(_: int) -> None:
        steps = stream_steered(bound, ["The weather today is"], edit, Sampling(max_new_tokens=4))
        next(steps)
        steps.close()

    base_first = in_process(first_step, 5)
    print(f"run: {args.run} ({index.d_sae:,} latents); server in its own process; latency with one client,")
    print(f"req/s with {args.clients} clients at once (latency then includes waiting behind the others)")
    print(f"latent pages:    {percentiles(pages)}  (target p95 <= 300 ms)")
    print(f"  {args.clients} clients: {pages_rate:6.1f} req/s, {percentiles(pages_busy)}")
    print(f"  baseline, the same page gathered and rendered in-process: {percentiles(base_pages)}")
    print(f"search:          {percentiles(search)}")
    print(f"  {args.clients} clients: {search_rate:6.1f} req/s, {percentiles(search_busy)}")
    print(f"text inspection: {inspect_rate:6.1f} req/s, {percentiles(inspect)}  (2 clients)")
    print(f"  baseline, encode_text in-process: {percentiles(base_inspect)}")
    median, worst = statistics.median(firsts), max(firsts)
    print(f"first steered token: median {median:.2f} s, max {worst:.2f} s  (target <= 2 s)")
    print(f"  with the two controls: median {statistics.median(firsts_controls):.2f} s")
    print(
        f"  baseline, first step of stream_steered in-process: median {statistics.median(base_first):.2f} s"
    )


if __name__ == "__main__":
    main()
