"""`saescope dashboard`: a static page per latent that opens from disk, showing what the index answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from saescope import cli
from saescope.config.dashboard import DashboardConfig, PageSettings
from saescope.dashboard import dashboard
from saescope.errors import SaescopeError
from saescope.index.format import LatentIndexError
from saescope.index.reader import Index
from saescope.render import highlight
from saescope.render.gather import explanation_views, latent_rows, latent_view
from tests.render.html_checks import script_texts, unsafe_markup
from tests.web.builders import D_SAE, DETECTION, EXPLAINED, build_run


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("dashboard"), tiny_model_dir)


@pytest.fixture(scope="module")
def written(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pages") / "dashboard"
    result = dashboard(DashboardConfig(index=run / "index", out=out, workers=1))
    assert result.pages == D_SAE and result.folder == out
    return out


def local_links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', html)


def test_every_latent_has_a_page_that_opens_from_disk(written: Path) -> None:
    pages = sorted(written.glob("latents/*.html"))
    assert len(pages) == D_SAE
    for page in [written / "index.html", *pages]:
        html = page.read_text(encoding="utf-8")
        assert unsafe_markup(html) == [], page
        for link in local_links(html):
            assert "//" not in link, f"{page.name} links outside the folder: {link}"
            if "{}" not in link:  # the list's link pattern, filled in by its script
                assert (page.parent / link).resolve().is_file(), f"{page.name}: broken link {link}"


def test_pages_show_what_the_index_answers(run: Path, written: Path) -> None:
    index = Index(run / "index")
    stats = index.stats().to_pylist()
    latent = max(range(D_SAE), key=lambda i: stats[i]["count"])
    html = (written / "latents" / f"{latent}.html").read_text(encoding="utf-8")
    top = index.top_examples(latent, 20)
    assert len(top) == 20 and html.count('<li class="example">') >= 20
    fires = f"{stats[latent]['count']:,} of the {index.tokens:,} indexed tokens"  # the tokens it covers
    assert fires in html
    for example in top:
        assert example.activations[example.focus] == pytest.approx(example.activation)  # its own token
        scale = float(stats[latent]["max"])
        assert str(highlight(example.tokens, example.activations, scale, example.focus)) in html  # outlined
    for n in index.neighbours(latent, 10):
        assert f'<a href="{n.latent}.html">{n.latent}</a>' in html


def test_explanations_are_shown_with_their_scores_escaped(written: Path) -> None:
    page = (written / "latents" / "0.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(&#39;explanation&#39;)&gt; tokens" in page
    assert "explainer &lt;i&gt;model&lt;/i&gt; &amp; co" in page
    row = re.search(r"<tr><td>detection accuracy</td>(.*?)</tr>", page, re.S)
    assert row is not None and re.findall(r">([^<]+)</td>", row.group(1)) == ["0.800", "0.700–0.900", "0.500"]
    assert "fuzzing" not in page  # a score that could not be measured is not shown
    assert "few examples" in (written / "latents" / "2.html").read_text(encoding="utf-8")
    assert "few examples" not in page
    rows = json.loads(script_texts((written / "index.html").read_text(encoding="utf-8"))["latent-rows"])
    assert [r["l"] for r in rows] == list(range(D_SAE))
    assert {r["l"]: r["e"] for r in rows if r["e"]} == EXPLAINED
    assert {r["l"]: r["s"] for r in rows if r["s"] is not None} == DETECTION


def test_the_server_lists_the_rows_the_dashboard_lists(run: Path, written: Path) -> None:
    """One builder of rows: the server's list (`latent_rows`) is the static index page's."""
    index = Index(run / "index")
    served = [r.to_json() for r in latent_rows(index, explanation_views(index))]
    static = json.loads(script_texts((written / "index.html").read_text(encoding="utf-8"))["latent-rows"])
    assert served == static and any(r["t"] for r in served)


def test_two_processes_write_the_same_pages_as_one(run: Path, written: Path, tmp_path: Path) -> None:
    result = dashboard(DashboardConfig(index=run / "index", out=tmp_path / "two", workers=2))
    assert result.pages == D_SAE
    ours = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert ours == theirs
    for rel in ours:
        assert (written / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_latent_view_respects_its_settings(run: Path) -> None:
    index = Index(run / "index")
    settings = PageSettings(top=3, quantiles=2, per_quantile=1, before=2, after=1, related=2, logits=4)
    view = latent_view(index, 5, settings, explanation_views(index))
    assert len(view.top) == 3 and all(len(e.tokens) <= 4 for e in view.top)
    assert len(view.quantiles) == 2 and all(len(g.examples) == 1 for g in view.quantiles)
    assert len(view.neighbours) == 2 and len(view.logits_up) == len(view.logits_down) == 4


def test_bad_input_is_one_clear_error(run: Path, tmp_path: Path) -> None:
    with pytest.raises(SaescopeError, match=f"--latents {D_SAE} is out of range"):
        dashboard(DashboardConfig(index=run / "index", out=tmp_path / "x", latents=(1, D_SAE)))
    with pytest.raises(LatentIndexError, match="no such folder"):
        dashboard(DashboardConfig(index=tmp_path / "nothing", out=tmp_path / "y"))
    with pytest.raises(SaescopeError, match="must not be the index folder"):
        dashboard(DashboardConfig(index=run / "index", out=run / "index"))
    with pytest.raises(SaescopeError, match="--top must be in"):
        DashboardConfig(index=run / "index", top=-1)


def test_the_command_prints_one_json_document(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    args = ["dashboard", str(run / "index"), "--out", str(out)]
    assert cli.main([*args, "--latents", "0,3", "--workers", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pages"] == 2 and report["folder"] == str(out)
    assert sorted(p.name for p in (out / "latents").iterdir()) == ["0.html", "3.html"]
    assert cli.main([*args, "--latents", "999"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "out of range" in captured.err


def test_an_interrupted_build_leaves_the_previous_dashboard_whole(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "dash"
    dashboard(DashboardConfig(index=run / "index", out=out, workers=1, latents=(0, 1, 2)))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    written = 0

    def failing_page(view: object) -> str:
        nonlocal written
        written += 1
        if written > 2:
            raise KeyboardInterrupt
        return "half"

    monkeypatch.setattr("saescope.dashboard.latent_page", failing_page)
    with pytest.raises(KeyboardInterrupt):
        dashboard(DashboardConfig(index=run / "index", out=out, workers=1))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dash"]  # no staging folder left behind


def test_an_out_folder_that_is_not_a_dashboard_is_refused(run: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SaescopeError, match="not a dashboard"):
        dashboard(DashboardConfig(index=run / "index", out=tmp_path, latents=(0,)))
    assert (tmp_path / "notes.txt").read_text() == "mine"
