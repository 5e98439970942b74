"""The tolerant reader of model answers: accepts what models really write, invents nothing."""

from __future__ import annotations

import pytest

from saescope.interpret.parsing import find_json, read_activations, read_explanation, read_labels


@pytest.mark.parametrize(
    "answer",
    [
        '{"explanation": "the keyword def", "confidence": 0.8}',
        'Sure! Here it is:\n```json\n{"explanation": "the keyword def", "confidence": 0.8}\n```\nDone.',
        "{'explanation': 'the keyword def', 'confidence': 0.8,}",
        'Step 1: the marked tokens are {def}... so\n{"explanation": "the keyword def", "confidence": "80%"}',
        '{"Explanation": "the   keyword\\n def", "confidence": 80}',
    ],
)
def test_read_explanation_tolerates_real_answers(answer: str) -> None:
    parsed = read_explanation(answer)
    assert parsed.error is None
    assert parsed.text == "the keyword def"
    assert parsed.confidence == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("The feature fires on the keyword def.", "no JSON object"),
        ('{"explanation": ""}', "no non-empty 'explanation'"),
        ('{"description": "def"}', "no non-empty 'explanation'"),
        ('{"explanation": "def", "confidence": ', "no JSON object"),
    ],
)
def test_read_explanation_fails_instead_of_guessing(answer: str, error: str) -> None:
    parsed = read_explanation(answer)
    assert parsed.text == "" and parsed.error is not None and error in parsed.error


def test_confidence_out_of_range_is_dropped_not_clamped() -> None:
    assert read_explanation('{"explanation": "x", "confidence": 250}').confidence is None
    assert read_explanation('{"explanation": "x", "confidence": "high"}').confidence is None


def test_find_json_prefers_the_last_answer() -> None:
    text = 'First guess {"explanation": "a"}; final: {"explanation": "b", "nested": {"k": [1, 2]}}'
    assert find_json(text)["explanation"] == "b"
    assert find_json("it's [1, 0, true,] ok", "list") == [1, 0, True]


def test_read_labels_and_activations() -> None:
    assert read_labels("Answer: [1, 0, 0.5]", 3) == ([1.0, 0.0, 0.5], None)
    assert read_labels('{"answers": [1, 0]}', 2) == ([1.0, 0.0], None)
    assert read_labels("[1, 0]", 3)[1] == "expected 3 numbers, got 2"
    assert "outside" in (read_labels("[1, 2]", 2)[1] or "")
    assert read_labels("[1, 'yes']", 2)[1] == "the list holds something other than numbers"
    assert read_activations("```\n[0, 10, 3]\n```", 3) == ([0.0, 10.0, 3.0], None)
    assert read_activations("no idea", 3)[1] is not None
