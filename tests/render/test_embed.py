"""JSON embedded in a page: reads back unchanged, and cannot end or confuse its `<script>`."""

from __future__ import annotations

import json

import pytest

from saescope.render import json_script_tag, script_json

from .html_checks import script_texts, unsafe_markup

NASTY = {
    "a": "</script><script>alert(1)</script>",
    "b": "<!-- <script>",
    "c": "line\u2028separator\u2029paragraph",
    "d": "&amp; 'q' \"qq\"",
    "n": [1, 2.5, None, float("nan")],
}


def test_script_json_reads_back_and_holds_no_dangerous_character() -> None:
    text = str(script_json(NASTY))
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    back = json.loads(text)
    assert back == {**NASTY, "n": [1, 2.5, None, None]}  # NaN becomes null (strict JSON)


def test_a_page_parser_sees_the_whole_document_as_one_script() -> None:
    html = "<body>" + str(json_script_tag("rows", NASTY)) + "<p>after</p></body>"
    texts = script_texts(html)
    assert list(texts) == ["rows"]
    assert json.loads(texts["rows"])["a"] == NASTY["a"]
    assert unsafe_markup(html) == []


def test_element_ids_are_checked() -> None:
    with pytest.raises(ValueError, match="element id"):
        json_script_tag('x" onload="alert(1)', {})
