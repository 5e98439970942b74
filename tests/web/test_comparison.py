"""The comparison pages as users meet them: a real server (uvicorn) and Debian's chromium driven by
Playwright, on a copy of the tiny run to which `saescope compare` and `saescope eval --metrics`
have added what they write — a wider SAE in which latent 0 of the run's SAE splits into three,
compared with it (compare/compare.json), and absorption and probing results in the run's SAE's
eval.json.

- the overview compares the run's SAEs in one table (absorption and probing columns, "not
  measured" where an SAE has none) with the L0–FVU frontier, and links to the comparison;
- /families shows the families tree: the parent (linked to its latent page, its hostile
  explanation shown as text) and its three children;
- the static dashboard of the run writes the same tree in families.html, linked from its index
  page, and it opens from `file://`.

The browser tests are skipped, with the reason, when chromium or Playwright is missing; the HTTP
and file checks run everywhere.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import torch

from saescope.compare.absorption import absorption_of
from saescope.compare.command import compare
from saescope.compare.probing import Features, probing_of
from saescope.compare.tasks import ProbingTask
from saescope.config import EvalConfig
from saescope.config.compare import CompareConfig, ProbingSettings
from saescope.config.dashboard import DashboardConfig
from saescope.config.serve import ServeConfig
from saescope.dashboard import dashboard
from saescope.evals import evaluate, record_family
from saescope.sae.formats import load_sae, save_sae
from tests.builders import one_thread, random_topk_sae
from tests.compare.builders import absorbing_sae, letter_activations

from .builders import D_SAE, EXPLAINED
from .servers import Running, running

CHROMIUM = "/usr/bin/chromium"
SPLIT = 3
"""Children of latent 0 in the wider SAE."""


class Compared(NamedTuple):
    run: Path
    """The copy of the tiny run, with compare/compare.json and absorption and probing results."""
    wide: Path
    """The wider SAE (outside the run; the comparison names it)."""
    children: tuple[int, ...]
    """The latents of the wider SAE that latent 0 splits into."""


def wider_sae(sae: Path, model_dir: Path, out: Path) -> tuple[int, ...]:
    """A TopK SAE with every latent of `sae` but 0 copied (a little noise) and latent 0 split into
    `SPLIT` directions near it (cosine ≈ 0.8), saved at `out`; returns the children's ids."""
    w = load_sae(sae).W_dec.detach()
    gen = torch.Generator().manual_seed(7)
    noise = torch.randn(D_SAE - 1 + SPLIT, w.shape[1], generator=gen)
    noise /= noise.norm(dim=1, keepdim=True)
    rows = torch.cat([w[1:] + 0.1 * noise[: D_SAE - 1], w[:1] + 0.7 * noise[D_SAE - 1 :]])
    rows /= rows.norm(dim=1, keepdim=True)
    wide = random_topk_sae(model_dir, D_SAE - 1 + SPLIT, k=4, seed=3)
    with torch.no_grad():
        wide.W_dec.copy_(rows)
        wide.W_enc.copy_(8.0 * rows.T)
    save_sae(wide, out)
    return tuple(range(D_SAE - 1, D_SAE - 1 + SPLIT))


def record_metrics(sae: Path) -> None:
    """Absorption and probing results (of constructed activations: the pages only show them)."""
    data, absorbing = letter_activations(per_letter=10), absorbing_sae()
    x_train, x_test = data.x_train, data.x_test
    found = absorption_of(
        x_train, data.letters_train, x_test, data.letters_test, absorbing.encode_dense, absorbing.W_dec
    )
    record_family(sae, "absorption", found.to_json())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=gen)
    labels = ["a" if v > 0 else "b" for v in x[:, 0].tolist()]
    task = ProbingTask("planted", "token", "the sign of the first coordinate", [], [])
    probed = probing_of([(task, Features(x, x.clamp_min(0), labels))], 8, ProbingSettings(ks=(1, 2)))
    record_family(sae, "probing", probed.to_json())


@pytest.fixture(scope="module")
def compared(run: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Compared:
    root = tmp_path_factory.mktemp("compared")
    copy = root / "run"
    shutil.copytree(run, copy)
    wide = root / "wide" / "sae"
    children = wider_sae(copy / "sae", tiny_model_dir, wide)
    corpus = run.parent / "corpus.jsonl"
    with one_thread():
        evaluate(
            EvalConfig(
                saes=(wide,), dataset=str(corpus), tokens=200, context_len=24, device="cpu", downstream=False
            )
        )
        compare(CompareConfig(saes=(copy / "sae", wide), threads=1, map="pca"))
        record_metrics(copy / "sae")
    return Compared(copy, wide, children)


@pytest.fixture(scope="module")
def served(compared: Compared) -> Iterator[Running]:
    with running(ServeConfig(run=compared.run, device="cpu", port=0)) as up:
        yield up


@pytest.fixture(scope="module")
def http(served: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


def test_the_comparison_found_the_planted_family(compared: Compared) -> None:
    found = json.loads((compared.run / "compare" / "compare.json").read_text())
    (family,) = found["families"]
    assert family["parent"] == 0 and sorted(family["children"]) == list(compared.children)
    assert family["parent_explanation"] == EXPLAINED[0]  # from the run's index
    assert family["parent_top_tokens"][0] == " "  # latent 0 fires on spaces: kept, not stripped away


def test_the_overview_compares_the_runs_saes_in_one_table(http: httpx.Client, compared: Compared) -> None:
    html = http.get("/").text
    table = html.split('<table class="compared">')[1].split("</table>")[0]
    rows = table.split("<tbody>")[1].count("<tr>")
    assert rows == 2  # the run's SAE and the SAE its comparison names
    assert "<td>sae</td>" in table and f"<td>{compared.wide}</td>" in table
    assert "absorption fraction" in table and "probing top-1" in table
    assert "(26 letters)" in table and "(1 tasks)" in table  # the run's SAE: measured
    assert "not measured" in table  # the wide SAE: no absorption or probing, said so
    assert html.count('<svg class="frontier"') == 1 and html.count("<circle") >= 2
    assert 'href="/families"' in html


def test_the_families_page_shows_the_tree(http: httpx.Client, compared: Compared) -> None:
    response = http.get("/families")
    assert response.status_code == 200
    tree = response.text.split('<ul class="tree">')[1]
    assert '<a href="/latents/0">0</a>' in tree  # the parent is the run's SAE's: linked
    for child in compared.children:
        assert f"<li>{child} " in tree  # the wider SAE has no pages here: plain ids
    assert "&lt;img src=x onerror=alert(&#39;explanation&#39;)&gt;" in tree  # escaped, shown as text
    assert '<span class="tokname">[' in tree.split("<ul>")[0]  # the parent's top tokens
    assert "<img src=x" not in response.text


def test_the_static_dashboard_writes_the_tree(compared: Compared, tmp_path: Path) -> None:
    out = tmp_path / "dashboard"
    with one_thread():
        dashboard(DashboardConfig(index=compared.run / "index", out=out, workers=1))
    page = (out / "families.html").read_text()
    assert '<a href="latents/0.html">0</a>' in page and page.count('<ul class="tree">') == 1
    assert '<a href="families.html">comparison</a>' in (out / "index.html").read_text()


# ----- in a browser ---------------------------------------------------------------------------------
# test_browser.py skips itself on import without Playwright or chromium: imported only once both are
# known to be there, so that the checks above run everywhere
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (dev extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (make test installs it)")
    from .test_browser import ARGS, playwright_api

    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def watched(browser: Any, served: Running) -> Iterator[Any]:
    from .test_browser import Watched

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = Watched(context.new_page(), served.url)
    yield page
    context.close()
    assert page.problems == []


def test_the_overview_table_and_the_families_tree_in_a_browser(
    watched: Any, served: Running, compared: Compared, tmp_path: Path
) -> None:
    from .test_browser import shot

    page = watched.page
    page.goto(served.url + "/")
    rows = page.locator("table.compared tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(0).inner_text() == "sae"
    assert page.locator("svg.frontier circle").count() == 2
    shot(page, tmp_path, "overview-compared")
    page.get_by_role("link", name="the whole comparison").click()
    page.wait_for_url("**/families")
    families = page.locator("ul.tree > li")
    assert families.count() == 1
    assert families.nth(0).locator("ul > li").count() == SPLIT
    assert page.locator("ul.tree .parent").inner_text().endswith("· 0")
    assert EXPLAINED[0] in families.nth(0).inner_text()  # the hostile text shown, never run
    assert page.locator("svg.hist rect").count() > 0 and page.locator("svg.map circle").count() > 0
    shot(page, tmp_path, "families")
    page.locator("ul.tree .parent a").click()
    page.wait_for_url("**/latents/0")
    assert page.locator("#top-examples li.example").count() > 0


def test_the_static_families_page_opens_from_disk(browser: Any, compared: Compared, tmp_path: Path) -> None:
    from .test_browser import Watched

    out = tmp_path / "dashboard"
    with one_thread():
        dashboard(DashboardConfig(index=compared.run / "index", out=out, workers=1))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = Watched(context.new_page(), "file://")
    page.page.goto((out / "index.html").as_uri())
    page.page.get_by_role("link", name="comparison").click()
    page.page.wait_for_url("**/families.html")
    assert page.page.locator("ul.tree > li > ul > li").count() == SPLIT
    page.page.locator("ul.tree .parent a").click()
    page.page.wait_for_url("**/latents/0.html")
    assert page.page.locator("#top-examples li.example").count() > 0
    context.close()
    assert page.problems == []
