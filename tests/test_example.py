"""The one example window: its JSON round trip, its focus token, and bad shapes refused."""

from __future__ import annotations

import pytest

from saescope.example import Example


def test_json_round_trips_and_marks_the_focus_token() -> None:
    e = Example((" the", " cat", " sat"), (0.0, 1.5, 0.25), doc_id=7, position=41, activation=1.5, focus=1)
    d = e.to_json()
    assert d == {
        "doc_id": 7,
        "position": 41,
        "activation": 1.5,
        "tokens": [" the", " cat", " sat"],
        "activations": [0.0, 1.5, 0.25],
        "focus": 1,
    }
    assert Example.from_json(d) == e and e.focus_token == " cat"
    assert e.fires and e.max_activation == 1.5 and e.text() == " the cat sat"


def test_defaults_for_a_bare_window() -> None:
    e = Example.from_json({"tokens": ["a", "b"], "activations": [0, 2]})
    assert (e.doc_id, e.position, e.focus, e.activation) == (-1, -1, -1, 2.0)
    assert e.focus_token is None
    quiet = Example(("x",), (0.0,))
    assert not quiet.fires and quiet.max_activation == 0.0


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"tokens": ["a", "b"], "activations": [1.0]}, "2 tokens but 1 activations"),
        ({"tokens": ["a"], "activations": [1.0], "focus": 1}, "focus 1 is outside its 1 tokens"),
        ({"tokens": ["a"], "activations": [1.0], "focus": -2}, "outside"),
    ],
)
def test_bad_shapes_are_refused(d: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Example.from_json(d)
