"""The browser UI in a real browser (Debian's chromium driven by Playwright): every page loads,
search, text inspection, a steering run watched while it streams, and the static dashboard from
`file://`. Hostile corpus text, explanations and prompts must never run (no dialog, no error),
and every screenshot must show something (not a blank page).

Screenshots go to $SAESCOPE_SCREENSHOTS when set (e.g. docs/screenshots), else to a temporary
folder. Skipped, with the reason, when chromium or Playwright is missing.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from saescope.config.dashboard import DashboardConfig
from saescope.dashboard import dashboard

from .builders import D_SAE, EXPLAINED
from .servers import Running

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (dev extra)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (make test installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("SAESCOPE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Watched:
    """A page with everything that must not happen recorded: dialogs (an injected script ran),
    script errors, requests leaving the machine."""

    def __init__(self, page: Any, allowed: str) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on(
            "request",
            lambda r: (
                None if r.url.startswith((allowed, "data:")) else self.problems.append(f"request to {r.url}")
            ),
        )


@pytest.fixture
def watched(browser: Any, server: Running) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = Watched(context.new_page(), server.url)
    yield page
    context.close()
    assert page.problems == []


def shot(page: Any, folder: Path, name: str) -> None:
    """Save a screenshot and check it is not blank: several colours, none covering 98% of it."""
    from PIL import Image

    data = page.screenshot(full_page=False)
    (folder / f"{name}.png").write_bytes(data)
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((320, 225))
    colours = image.getcolors(320 * 225) or []
    assert len(colours) > 20, f"{name}: nearly uniform screenshot"
    assert max(count for count, _ in colours) < 0.98 * 320 * 225, f"{name}: blank screenshot"


def test_overview(watched: Watched, server: Running, shots: Path) -> None:
    page = watched.page
    page.goto(server.url + "/")
    assert page.locator("svg.map circle").count() == D_SAE
    assert page.get_by_role("heading", name="Evaluation", exact=True).is_visible()
    assert page.get_by_role("cell", name="fraction of variance unexplained (FVU)", exact=True).is_visible()
    assert page.locator("img[src='/run/images/eval_density.png']").evaluate("i => i.naturalWidth") > 0
    shot(page, shots, "overview")


def test_latents_search_and_sort(watched: Watched, server: Running, shots: Path) -> None:
    page = watched.page
    page.goto(server.url + "/latents")
    rows = page.locator("#latents tbody tr")
    assert rows.count() > 10
    page.fill("#search", "onerror")
    assert rows.count() == 1
    assert rows.nth(0).locator("td").nth(4).inner_text() == EXPLAINED[0]  # shown as text, never parsed
    page.fill("#search", "")
    page.click("th[data-key=l]")
    assert rows.nth(0).locator("td").nth(0).inner_text() == "0"
    page.click("th[data-key=l]")
    assert rows.nth(0).locator("td").nth(0).inner_text() == str(D_SAE - 1)
    page.fill("#min-freq", "8")
    frequencies = [
        float(t.rstrip("%")) for t in page.locator("#latents tbody td:nth-child(2)").all_inner_texts()
    ]
    assert frequencies and min(frequencies) >= 8
    page.fill("#max-freq", "9")
    frequencies = [
        float(t.rstrip("%")) for t in page.locator("#latents tbody td:nth-child(2)").all_inner_texts()
    ]
    assert all(8 <= f <= 9 for f in frequencies)
    page.fill("#min-freq", "")
    page.fill("#max-freq", "")
    shot(page, shots, "latents")


def test_a_latent_page_and_its_live_queries(watched: Watched, server: Running, shots: Path) -> None:
    page = watched.page
    page.goto(server.url + "/latents/0")
    assert page.locator("#top-examples li.example").count() == 20
    assert page.locator("#top-examples .tok.focus").count() == 20
    assert page.locator(".explanation .text").inner_text() == EXPLAINED[0]
    page.click("#more-examples")
    page.wait_for_selector("#live-examples li.example")
    page.fill("#q-which", "2")
    page.fill("#q-of", "4")
    page.click("#another-quantile")
    page.wait_for_selector("#live-quantile h4")
    assert page.locator("#live-quantile h4").inner_text().startswith("quantile 2 of 4")
    page.click("#more-cooccurring")
    page.wait_for_selector("#live-related table")
    shot(page, shots, "latent")


def test_the_text_inspector(watched: Watched, server: Running, shots: Path) -> None:
    page = watched.page
    page.goto(server.url + "/inspect")
    page.fill("#text", 'The cat <img src=x onerror=alert(7)> & "quotes"\nsat on the mat')
    page.click("#inspect-run")
    page.wait_for_selector("#inspected .tok")
    tokens = page.locator("#inspected .tok")
    assert tokens.count() > 10 and page.locator("#inspected img").count() == 0
    tokens.nth(3).hover()
    panel = page.locator(".token-latents.open")
    assert panel.count() == 1 and panel.locator("a").count() > 0
    page.click("#effects-run")  # the text is over the effects limit: the page says which limit
    page.wait_for_function("() => document.getElementById('effects-error').textContent.length > 0")
    assert "max_effects_tokens" in page.locator("#effects-error").inner_text()
    page.fill("#text", "The cat sat on the mat")
    page.click("#effects-run")
    page.wait_for_selector("#effects-result table")
    assert page.locator("#effects-result tbody tr").count() > 0
    shot(page, shots, "inspector")


def test_a_steering_run_streams(watched: Watched, server: Running, shots: Path) -> None:
    page = watched.page
    page.goto(server.url + "/steer?latent=3")
    assert page.locator("#edits .steer-row").count() == 1
    page.fill("#latent-search", "onerror")
    page.wait_for_selector("#latent-hits li")
    page.locator("#latent-hits li").first.click()
    assert page.locator("#edits .steer-row").count() == 2
    page.fill("#prompts", "The cat <script>alert(9)</script> is\nParis")
    page.fill("#max-new-tokens", "200")
    # every change of the output is recorded as it happens: a stream shows many growing lengths,
    # a response delivered at once shows one
    page.evaluate(
        """() => { const out = document.getElementById('steer-output'); window.seen = [];
        new MutationObserver(() => window.seen.push(out.textContent.length))
          .observe(out, {subtree: true, childList: true, characterData: true}); }"""
    )
    page.click("#steer-run")
    page.wait_for_function(
        "() => document.getElementById('steer-status').textContent.startsWith('done')", timeout=120_000
    )
    lengths = page.evaluate("() => window.seen")
    assert len(set(lengths)) > 5 and lengths == sorted(lengths)
    assert page.locator(".completion").count() == 2 * 4  # two prompts × (unsteered, steered, two controls)
    assert page.locator(".completion .prompt").first.inner_text().startswith("The cat <script>")
    shot(page, shots, "steering")


def test_the_static_dashboard_opens_from_disk(browser: Any, run: Path, tmp_path: Path, shots: Path) -> None:
    out = tmp_path / "dashboard"
    dashboard(DashboardConfig(index=run / "index", out=out, workers=1))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = Watched(context.new_page(), "file://")
    page.page.goto((out / "index.html").as_uri())
    rows = page.page.locator("#latents tbody tr")
    assert rows.count() > 10
    page.page.fill("#search", "script")
    assert rows.count() == 1 and rows.nth(0).locator("td").nth(4).inner_text() == EXPLAINED[1]
    shot(page.page, shots, "dashboard-index")
    rows.nth(0).locator("a").click()
    page.page.wait_for_url("**/latents/1.html")
    assert page.page.locator("#top-examples li.example").count() > 0
    header = page.page.locator("header.top").evaluate("h => getComputedStyle(h).backgroundColor")
    assert header == "rgb(17, 24, 39)"  # the stylesheet beside the pages applied
    shot(page.page, shots, "dashboard-latent")
    context.close()
    assert page.problems == []
    if os.environ.get("SAESCOPE_SCREENSHOTS"):
        shutil.rmtree(out)
