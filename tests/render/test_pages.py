"""Latent pages and the list of latents: what they show, their links, and escaping of every string
that comes from a corpus, a model or an explanation."""

from __future__ import annotations

import json
import re

from saescope.example import Example
from saescope.render import (
    ExplanationView,
    Histogram,
    LatentRow,
    LatentStatsView,
    LatentView,
    Links,
    LogitEffect,
    QuantileGroup,
    Related,
    Scored,
    examples_fragment,
    highlight,
    latent_body,
    latent_page,
    latents_page,
    related_fragment,
)

from .html_checks import script_texts, unsafe_markup

EVIL = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'


def example(i: int) -> Example:
    tokens = ("The", " ", EVIL, IMG, "&", "\n", f"t{i}")
    acts = (0.0, 0.0, 2.0 - i / 10, 1.0, 0.5, 0.0, 0.1)
    return Example(tokens, acts, doc_id=i, position=10 + i, activation=2.0 - i / 10, focus=2)


def view(latent: int = 5, d_sae: int = 10) -> LatentView:
    stats = LatentStatsView(
        12, 0.012, 2.0, 0.8, (("q50", 0.7),), Histogram((0.0, 1.0, 2.0), (9, 3)), False, True
    )
    return LatentView(
        latent=latent,
        d_sae=d_sae,
        stats=stats,
        top=tuple(example(i) for i in range(4)),
        quantiles=(QuantileGroup("quantile 1 of 2 (0.1–0.5)", (example(7),)), QuantileGroup(f"q {EVIL}", ())),
        neighbours=(Related(3, 0.91, IMG), Related(8, 0.5, "")),
        cooccurring=(Related(1, 0.25, f"co {EVIL}"),),
        logits_up=(LogitEffect(EVIL, 1.5), LogitEffect("\n", 1.2)),
        logits_down=(LogitEffect("&", -0.5),),
        explanation=ExplanationView(
            f"fires on {IMG}",
            "llm",
            f"model {EVIL}",
            0.7,
            (Scored("detection accuracy", 0.8, 0.7, 0.9, 0.5),),
        ),
    )


def test_a_latent_page_escapes_everything() -> None:
    html = latent_page(view())
    assert unsafe_markup(html) == []
    assert EVIL not in html and IMG not in html


def test_a_latent_page_shows_every_part() -> None:
    v = view()
    html = latent_page(v)
    assert html.count('<li class="example">') == 4 + 1  # top examples + the quantile's one
    for e in v.top:  # each example exactly as the highlighting function renders it
        assert str(highlight(e.tokens, e.activations, 2.0, e.focus)) in html
    assert re.findall(r'<a href="(\d+)\.html">(\d+)</a>', html) == [("3", "3"), ("8", "8"), ("1", "1")]
    assert '<a rel="prev" href="4.html">' in html and '<a rel="next" href="6.html">' in html
    assert "12 indexed tokens (1.2000%)" in html and '<span class="badge dense">dense</span>' in html
    assert "<title>0–1: 9</title>" in html and "<title>1–2: 3</title>" in html
    assert "+1.500" in html and "-0.500" in html
    assert "0.700–0.900" in html and "0.500" in html  # the score's interval and its chance baseline
    assert "../assets/saescope.css" in html


def test_first_and_last_latents_have_one_pager_link() -> None:
    assert 'rel="prev"' not in latent_page(view(0)) and 'rel="next"' in latent_page(view(0))
    assert 'rel="next"' not in latent_page(view(9)) and 'rel="prev"' in latent_page(view(9))


def test_a_page_without_statistics_or_explanation_still_renders() -> None:
    bare = view()._replace(
        stats=None,
        top=(),
        quantiles=(),
        neighbours=(),
        cooccurring=(),
        logits_up=(),
        logits_down=(),
        explanation=None,
    )
    html = latent_page(bare)
    assert "no statistics in the index" in html and "no explanation yet" in html and "no examples" in html


def test_server_links_point_at_routes() -> None:
    links = Links(latent="/latents/{}", latents="/latents", assets="/static", home="/")
    body = str(latent_body(view(), links))
    assert '<a href="/latents/3">3</a>' in body and 'href="/latents/4"' in body
    assert str(related_fragment([Related(9, 0.5, EVIL)], links, "cosine")).count('href="/latents/9"') == 1


def test_examples_fragment_numbers_from_its_offset() -> None:
    html = str(examples_fragment([example(0), example(1)], 2.0, start=20))
    assert '<ol class="examples" start="21">' in html and unsafe_markup(html) == []


def test_the_list_of_latents_embeds_its_rows_safely() -> None:
    rows = [
        LatentRow(0, 0.5, 1.0, f"</script>{EVIL}<!--", 0.9, (EVIL, "&")),
        LatentRow(1, 0.0, 0.0, "", None, ()),
    ]
    html = latents_page(rows, f"title {EVIL}", "sub & title")
    assert unsafe_markup(html) == []
    assert json.loads(script_texts(html)["latent-rows"]) == [r.to_json() for r in rows]
    assert '<script src="assets/latents.js"></script>' in html and 'data-href="latents/{}.html"' in html
