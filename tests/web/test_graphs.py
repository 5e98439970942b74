"""Attribution graphs in `saescope serve` and the static dashboard, as users meet them: a run with a
transcoder graph and a Sparse Feature Circuits graph built by `saescope circuit` on the tiny Llama,
served by a real uvicorn process; the API over real HTTP (list, document, node details, ablation,
bad input in one line), and the page in chromium (nodes and edges drawn, hover, pin, ablate, the
logits before and after). The ablation endpoint must reproduce what the graph's own validation
measured in the real model for the same node.

Browser tests skip, with the reason, without chromium or Playwright; a screenshot of the graph page
goes to $SAESCOPE_SCREENSHOTS (else a temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from saescope.circuit import circuit
from saescope.config.circuit import CircuitConfig
from saescope.config.dashboard import DashboardConfig
from saescope.config.serve import ServeConfig
from saescope.dashboard import dashboard
from saescope.render.graph import checked_node
from saescope.runs import Run
from tests.circuit.builders import random_transcoders, save_set
from tests.render.html_checks import unsafe_markup

from .builders import EXPLAINED
from .conftest import LIMITS
from .servers import Running, running

PROMPT = 'The cat <img src=x onerror="alert(5)"> & sat'
CHROMIUM = "/usr/bin/chromium"
GRAPH_TAGS = {"<g>", "<line>", "<title>", "<template>"}
"""Elements the graph page writes besides those of `html_checks.OUR_TAGS`."""


@pytest.fixture(scope="module")
def graph_run(run: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The web tests' run (SAE, its index with hostile explanations) copied, with transcoders of
    every layer and two saved graphs: `cat` (transcoders) and `sfc` (the run's SAE)."""
    root = tmp_path_factory.mktemp("graphs") / "run"
    shutil.copytree(run, root)
    save_set(random_transcoders(4, skip=True, model=str(tiny_model_dir)), Run(root).transcoders)
    common = {"run": root, "prompt": PROMPT, "head_edges": 0, "threads": 1}
    circuit(CircuitConfig(**common, name="cat", max_feature_nodes=40, validate=8))
    everything = {"node_threshold": 1.0, "edge_threshold": 1.0}  # keeps the explained latents
    circuit(CircuitConfig(**common, name="sfc", saes=(root / "sae",), validate=4, **everything))
    return root


@pytest.fixture(scope="module")
def graph_server(graph_run: Path) -> Iterator[Running]:
    with running(ServeConfig(run=graph_run, device="cpu", port=0, **LIMITS)) as up:
        yield up


@pytest.fixture(scope="module")
def http(graph_server: Running) -> httpx.Client:
    return httpx.Client(base_url=graph_server.url, timeout=60)


def saved(graph_run: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((graph_run / "circuits" / f"{name}.json").read_text())
    return document


def unique_latents(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Kept latent nodes whose id no other node shares (circuit-tracer's ids can collide)."""
    counts = Counter(n["id"] for n in document["nodes"])
    return [n for n in document["nodes"] if n["kind"] == "latent" and n["kept"] and counts[n["id"]] == 1]


def safe_markup(html: str) -> list[str]:
    """`unsafe_markup`, the SVG and template elements of the graph page allowed."""
    return [f for f in unsafe_markup(html) if f not in GRAPH_TAGS]


def checked_id(document: dict[str, Any], check: dict[str, Any]) -> str:
    node = checked_node(document, check["node"])
    assert node is not None
    return str(node["id"])


def one_line_error(response: httpx.Response, fragment: str) -> None:
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and "\n" not in error and fragment in error, error


# ----- the API over HTTP ------------------------------------------------------------------------
def test_the_list_and_the_documents(http: httpx.Client, graph_run: Path) -> None:
    listed = http.get("/api/graphs").json()["graphs"]
    assert [g["name"] for g in listed] == ["cat", "sfc"]
    for row in listed:
        document = saved(graph_run, row["name"])
        assert row["nodes"] == sum(n["kept"] for n in document["nodes"]) and row["edges"] == len(
            document["edges"]
        )
        assert row["prompt"] == PROMPT and row["correlation"] == document["validation"]["correlation"]
        assert http.get(f"/api/graphs/{row['name']}").json() == document
    one_line_error(http.get("/api/graphs/missing"), "no attribution graph named 'missing'")
    assert http.get("/api/graphs/..%2Fsae%2Fcfg").status_code in (400, 404)


def test_an_ablation_measures_what_the_graphs_validation_measured(
    http: httpx.Client, graph_run: Path
) -> None:
    """Ablating a node through the endpoint changes the target's logit minus the mean logit by what
    `saescope circuit`'s validation measured for that node in the real model."""
    for name in ("cat", "sfc"):
        document = saved(graph_run, name)
        latents = {n["id"] for n in unique_latents(document)}
        check = next(c for c in document["validation"]["checks"] if checked_id(document, c) in latents)
        node = checked_id(document, check)
        found = http.post(f"/api/graphs/{name}/edit", json={"edits": [{"node": node, "factor": 0}]})
        assert found.status_code == 200, found.text
        body = found.json()
        target = body["logits"][0]
        assert target["id"] == document["validation"]["target"]
        change = target["new_logit"] - target["old_logit"] - body["mean_shift"]
        assert change == pytest.approx(check["measured"], rel=1e-3, abs=1e-5)
        assert body["graph_gap"] < 1e-3  # the model here is the graph's
        assert body["old_top"] != body["new_top"] or change == pytest.approx(0, abs=1e-6)
        assert body["kl"] >= 0


def test_steering_scales_the_latent(http: httpx.Client, graph_run: Path) -> None:
    """Factor 2 adds the latent's contribution once more where factor 0 removes it: for the latent
    with the largest direct edge to the target, the two changes of the target's logit minus the
    mean are nearly opposite, ablation's against the edge's sign."""
    document = saved(graph_run, "cat")
    target = next(n["id"] for n in document["nodes"] if n["kind"] == "logit")
    latents = {n["id"] for n in unique_latents(document)}
    edge = max(
        (e for e in document["edges"] if e["target"] == target and e["source"] in latents),
        key=lambda e: abs(e["weight"]),
    )
    node = edge["source"]

    def change(factor: float) -> float:
        body = http.post("/api/graphs/cat/edit", json={"edits": [{"node": node, "factor": factor}]}).json()
        target = body["logits"][0]
        return float(target["new_logit"] - target["old_logit"] - body["mean_shift"])

    down, up = change(0.0), change(2.0)
    assert down * edge["weight"] < 0 and up == pytest.approx(-down, rel=0.3)
    assert change(1.0) == pytest.approx(0.0, abs=1e-6)  # factor 1 edits nothing


def test_bad_edits_are_refused_in_one_line(http: httpx.Client, graph_run: Path) -> None:
    document = saved(graph_run, "cat")
    latent = unique_latents(document)[0]["id"]
    embedding = next(n["id"] for n in document["nodes"] if n["kind"] == "embedding")

    def edit(edits: list[dict[str, Any]], name: str = "cat") -> httpx.Response:
        return http.post(f"/api/graphs/{name}/edit", json={"edits": edits})

    one_line_error(edit([{"node": "9_999_0", "factor": 0}]), "node '9_999_0' is not in this graph")
    one_line_error(edit([{"node": embedding, "factor": 0}]), "only latents can be ablated or steered")
    one_line_error(edit([{"node": latent}, {"node": latent}]), "is given twice")
    one_line_error(edit([{"node": latent, "factor": 1e6}]), "give a number within")
    one_line_error(edit([]), "no nodes to edit")
    one_line_error(edit([{"node": latent}], "missing"), "no attribution graph named")
    too_many = [{"node": n["id"]} for n in unique_latents(document)[: LIMITS["max_latents"] + 1]]
    refused = edit(too_many)
    assert 400 <= refused.status_code < 500 and refused.json()["limit"] == "max_latents"


def test_a_latents_examples_come_from_its_dictionarys_index(http: httpx.Client, graph_run: Path) -> None:
    sfc = saved(graph_run, "sfc")
    explained = next(n for n in unique_latents(sfc) if n["feature"] in EXPLAINED)
    assert explained["explanation"] == EXPLAINED[explained["feature"]]
    html = http.get(f"/fragments/graphs/sfc/nodes/{explained['id']}").text
    assert html.count('<li class="example">') == 5 and safe_markup(html) == []
    transcoder = unique_latents(saved(graph_run, "cat"))[0]["id"]
    assert "no latent index of" in http.get(f"/fragments/graphs/cat/nodes/{transcoder}").text
    one_line_error(http.get("/fragments/graphs/sfc/nodes/nope"), "node 'nope' is not in this graph")


def test_the_pages_escape_the_prompt_and_explanations(http: httpx.Client) -> None:
    for path in ("/graphs", "/graphs/cat", "/graphs/sfc", "/"):
        page = http.get(path)
        assert page.status_code == 200 and safe_markup(page.text) == [], path
    assert 'href="/graphs"' in http.get("/").text  # the overview links to the graphs
    assert "&lt;img src=x onerror=" in http.get("/graphs/cat").text


def test_the_dashboard_writes_static_graph_pages(graph_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "dashboard"
    dashboard(DashboardConfig(index=graph_run / "index", out=out, workers=1))
    assert 'href="graphs/index.html"' in (out / "index.html").read_text()
    listing = (out / "graphs" / "index.html").read_text()
    assert 'href="cat.html"' in listing and 'href="sfc.html"' in listing
    page = (out / "graphs" / "sfc.html").read_text()
    assert "This is a static page" in page and 'id="run-edit"' not in page and safe_markup(page) == []
    assert page.count('<template class="node-detail"') == len(unique_latents(saved(graph_run, "sfc")))
    assert (out / "assets" / "graph.js").is_file() and (out / "assets" / "graph.css").is_file()


# ----- in the browser -----------------------------------------------------------------------------
def _browser_missing() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (dev extra)"
    return "" if Path(CHROMIUM).is_file() else f"no chromium at {CHROMIUM} (make test installs it)"


needs_browser = pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "browser present")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from .test_browser import ARGS

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def _watched(browser: Any, allowed: str) -> tuple[Any, Any]:
    from .test_browser import Watched

    context = browser.new_context(viewport={"width": 1400, "height": 950})
    return context, Watched(context.new_page(), allowed)


@needs_browser
def test_a_graph_in_the_browser(browser: Any, graph_server: Running, graph_run: Path) -> None:
    from .test_browser import shot

    context, watched = _watched(browser, graph_server.url)
    page = watched.page
    page.goto(graph_server.url + "/")
    page.click("a[href='/graphs']")
    page.click("a[href='/graphs/cat']")
    document = saved(graph_run, "cat")
    assert page.locator("svg.graph .node").count() == sum(n["kept"] for n in document["nodes"])
    assert page.locator("svg.graph line.edge").count() == len(document["edges"])
    assert (
        page.locator("svg.graph line.edge.pos").count() > 0
        and page.locator("svg.graph line.edge.neg").count() > 0
    )
    node = unique_latents(document)[0]
    circle = page.locator(f"svg.graph circle.node[data-id='{node['id']}']")
    circle.hover()
    assert page.locator("#node-facts .node-label").inner_text() == f"L{node['layer']}/{node['feature']}"
    page.wait_for_selector("#node-detail p.empty")  # the transcoders have no index: it says so
    assert page.locator("svg.graph line.edge.lit").count() > 0
    circle.click()
    assert page.locator("svg.graph .node.pinned").count() == 1
    page.locator("svg.graph rect.node.kind-embedding").first.hover()  # pinned: hovering elsewhere keeps it
    assert page.locator("#node-facts .node-label").inner_text() == f"L{node['layer']}/{node['feature']}"
    page.click("#select-node")
    assert page.locator("#edits li").count() == 1
    page.click("#run-edit")
    page.wait_for_selector("#edit-result table")
    target = page.locator("#edit-result table").first.locator("tbody tr").first
    cells = target.locator("td").all_inner_texts()
    assert len(cells) == 6 and cells[1] != cells[3]  # the logit before beside the logit after
    assert page.locator("#edit-result .edit-sides table").count() == 2  # top tokens before and after
    folder = Path(os.environ.get("SAESCOPE_SCREENSHOTS") or graph_run.parent)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, folder, "graph")
    context.close()
    assert watched.problems == []


@needs_browser
def test_a_latents_examples_on_hover_and_the_static_page(
    browser: Any, graph_server: Running, graph_run: Path, tmp_path: Path
) -> None:
    context, watched = _watched(browser, graph_server.url)
    page = watched.page
    page.goto(graph_server.url + "/graphs/sfc")
    explained = next(n for n in unique_latents(saved(graph_run, "sfc")) if n["feature"] in EXPLAINED)
    page.locator(f"svg.graph circle.node[data-id='{explained['id']}']").hover()
    page.wait_for_selector("#node-detail li.example")
    assert page.locator("#node-facts .node-explanation").inner_text() == EXPLAINED[explained["feature"]]
    context.close()
    assert watched.problems == []
    out = tmp_path / "dashboard"
    dashboard(DashboardConfig(index=graph_run / "index", out=out, workers=1))
    context, watched = _watched(browser, "file://")
    page = watched.page
    page.goto((out / "graphs" / "sfc.html").as_uri())
    assert page.locator("svg.graph .node").count() > 0 and page.locator("#run-edit").count() == 0
    assert page.locator(".graph-static-note").is_visible()
    page.locator(f"svg.graph circle.node[data-id='{explained['id']}']").hover()
    assert page.locator("#node-detail li.example").count() == 5  # embedded in the page
    context.close()
    assert watched.problems == []
