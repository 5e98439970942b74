"""Tokens shaded by activation: exact spans, whitespace made visible, every text escaped."""

from __future__ import annotations

import pytest

from saescope.render.tokens import ALPHA_STEPS, highlight, shade, token_span, visible

from .html_checks import unsafe_markup


def test_visible_shows_what_a_page_would_hide() -> None:
    assert visible("a\nb") == "a↵b"
    assert visible("\t") == "→"
    assert visible("\r\n") == "␍↵"
    assert visible("   ") == "···"
    assert visible("") == "∅"
    assert visible(" the") == " the"  # a leading space of a word stays a space


def test_shade_is_activation_over_scale_clipped_and_rounded() -> None:
    assert shade(1.0, 2.0) == 0.5
    assert shade(3.0, 2.0) == 1.0
    assert shade(0.0, 2.0) == 0.0
    assert shade(-1.0, 2.0) == 0.0
    assert shade(1.0, 0.0) == 0.0
    assert shade(0.26, 1.0) == round(0.26 * ALPHA_STEPS) / ALPHA_STEPS


def test_token_span_exactly() -> None:
    assert token_span("cat", 1.0, 2.0) == (
        '<span class="tok" style="background:rgba(255,128,0,0.5)" title="1.000">cat</span>'
    )
    assert token_span("\n", 0.0, 2.0, focus=True, index=3) == (
        '<span class="tok ws focus" data-i="3" title="0">↵</span>'
    )


def test_highlight_escapes_every_token() -> None:
    tokens = ["<script>", "alert(1)", "</script>", '<img src=x onerror="x">', "&amp;", "'\""]
    html = highlight(tokens, [1.0] * len(tokens), 1.0)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&amp;amp;" in html and "&#39;&#34;" in html
    assert unsafe_markup(str(html)) == []


def test_highlight_outlines_only_the_focus_and_numbers_tokens() -> None:
    html = str(highlight(["a", "b", "c"], [0.0, 2.0, 1.0], 2.0, focus=1, numbered=True))
    assert html.count("focus") == 1
    assert 'class="tok focus" style="background:rgba(255,128,0,1)" data-i="1"' in html
    assert [f'data-i="{i}"' in html for i in range(3)] == [True, True, True]


def test_highlight_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 tokens but 1 activations"):
        highlight(["a", "b"], [1.0], 1.0)
