"""`saescope demo --quick`: every stage of the pipeline on the embedded SmolLM2-135M, run twice
(the second run reuses what the first made); then the run is browsed as a new user would: the
static dashboard from disk, and `saescope serve` as a real process in Debian's chromium — overview,
the explained latent's page, a steering run. `make demo`'s own run, when there is one, is browsed
the same way; its screenshots go to $SAESCOPE_SCREENSHOTS when set (the README's come from there),
else to a temporary folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from saescope import cli

CHROMIUM = "/usr/bin/chromium"


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_the_quick_demo_runs_every_stage_and_reuses_what_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--quick", "--out", str(out)]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out
    trained = re.search(r"k=16: FVU ([0-9.]+), L0 ([0-9.]+), dead ([0-9.]+)%", summary)
    assert trained is not None, summary
    fvu, l0, dead = (float(v) for v in trained.groups())
    assert 0 < fvu < 1 and l0 == 16.0 and 0 <= dead <= 100
    assert re.search(r"\[eval\] +[0-9,]+ held-out tokens: FVU 0\.[0-9]+, L0 16\.0", summary), summary
    assert "CE-loss recovered" in summary
    assert f"indexed 4,096 tokens of {out / 'sae'}" in summary
    assert "explained by statistics:" in summary and "top examples:" in summary
    assert "unsteered:" in summary and "random latent:" in summary and "random direction:" in summary
    assert f"open {out / 'dashboard' / 'index.html'}" in summary
    assert f"saescope serve {out}" in summary

    assert json.loads((out / "index" / "index.json").read_text())["complete"] is True
    assert (out / "dashboard" / "index.html").is_file() and (out / "sae" / "eval.json").is_file()
    store, sae = files(out / "acts"), (out / "sae" / "sae.safetensors").read_bytes()
    postings = files(out / "index" / "postings")

    assert cli.main([*argv, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["trained"] is None  # the SAE was reused, not retrained
    assert files(out / "acts") == store and (out / "sae" / "sae.safetensors").read_bytes() == sae
    assert files(out / "index" / "postings") == postings
    assert [r["status"] for r in again["interpretation"]["stats"]] == ["stored"]

    # an SAE of another shape is not passed off as this run's
    assert cli.main([*argv, "--k", "8"]) == 2
    err = capsys.readouterr().err
    assert "saescope demo: error: " in err and "k=16" in err and "--k 8" in err

    # at the strength the demo picks, the steered latent moves its target words' next-token
    # probability more than a random latent firing there and a random direction of the same norm
    # (the demo's SAE, in CI too), and the steered text stays readable
    effects = again["steering"]["effects"]
    steered = effects["steered"]["next_token"]["value"]
    controls = [effects[c]["next_token"]["value"] for c in ("random_latent", "random_direction")]
    assert steered is not None and None not in controls and all(steered > c for c in controls), effects

    latent = again["interpretation"]["stats"][0]["latent"]
    browse(out, latent, tmp_path / "screenshots")


DEMO_RUN = Path("runs/demo")
"""Where `make demo` leaves its run (relative to the repository)."""


@pytest.mark.slow
def test_the_demo_run_in_the_browser(tmp_path: Path) -> None:
    """`make demo`'s own run browsed as a new user would, its best-explained latent opened (skipped
    without one). The README's screenshots come from here: SAESCOPE_SCREENSHOTS=docs/screenshots."""
    if not (DEMO_RUN / "dashboard" / "index.html").is_file():
        pytest.skip(f"no complete demo run at {DEMO_RUN} (make demo makes one)")
    from saescope.interpret.tables import best_explanations

    explained = best_explanations(DEMO_RUN / "index").values()
    scored = [(i.headline.value, i.latent) for i in explained if i.headline is not None]
    assert scored, "the demo stored no scored explanation"
    shots = Path(os.environ.get("SAESCOPE_SCREENSHOTS") or tmp_path / "screenshots")
    browse(DEMO_RUN, max(scored)[1], shots)


@contextmanager
def served(run: Path) -> Iterator[str]:
    """`saescope serve RUN --port 0` as its own process; yields the address it logs on stderr."""
    command = [sys.executable, "-m", "saescope", "serve", str(run), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    said: list[str] = []
    try:
        for line in process.stderr:  # logged once the socket listens
            said.append(line)
            if "saescope serving on http://127.0.0.1:" in line:
                break
        else:
            pytest.fail("saescope serve did not start: " + "".join(said[-20:]))
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(30)


def shot(page: Any, folder: Path, name: str) -> None:
    """Save a screenshot and check it is not blank (several colours, none covering 98% of it)."""
    import io

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(full_page=False)
    (folder / f"{name}.png").write_bytes(data)
    colours = Image.open(io.BytesIO(data)).convert("RGB").resize((320, 225)).getcolors(320 * 225) or []
    assert len(colours) > 20 and max(n for n, _ in colours) < 0.98 * 320 * 225, f"{name} is blank"


def browse(run: Path, latent: int, shots: Path) -> None:
    """What the demo's closing lines tell a new user to open, opened in chromium."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (dev extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (make test installs it)")
    errors: list[str] = []
    with sync_api.sync_playwright() as p, served(run) as url:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto((run / "dashboard" / "index.html").resolve().as_uri())
        assert page.locator("#latents tbody tr").count() > 100
        shot(page, shots, "demo-dashboard")

        page.goto(url + "/")
        assert page.get_by_role("heading", name="Evaluation", exact=True).is_visible()
        shot(page, shots, "demo-overview")

        page.goto(f"{url}/latents/{latent}")
        assert page.locator("#top-examples li.example").count() > 0
        assert page.locator(".explanation .text").first.inner_text().strip()  # the stored explanation
        shot(page, shots, "demo-latent")

        page.goto(f"{url}/steer?latent={latent}")
        page.fill("#prompts", "My favourite thing to do on a quiet weekend is")
        page.fill("#max-new-tokens", "12")
        page.fill("#sweep", "1x 3x")
        page.click("#steer-run")
        page.wait_for_function(
            "() => document.getElementById('steer-status').textContent.startsWith('done')", timeout=300_000
        )
        assert page.locator(".completion").count() == 4  # unsteered, steered and two controls
        effects = page.locator("#steer-effects")
        assert effects.is_visible() and "next token" in effects.inner_text()  # the measured effects
        assert page.locator("#steer-sweep").is_visible()
        page.evaluate("document.getElementById('steer-effects').scrollIntoView({block: 'end'})")
        page.wait_for_timeout(300)
        shot(page, shots, "demo-steering")
        browser.close()
    assert errors == []
