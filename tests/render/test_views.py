"""Render views read from the latent index's JSON shapes."""

from __future__ import annotations

import pytest

from saescope.render import LatentRow, TokenExample


def test_example_from_contract_finds_its_own_token() -> None:
    d = {
        "doc_id": 3,
        "position": 40,
        "activation": 2.0,
        "tokens": ["a", "b", "c"],
        "activations": [2.0, 1.0, 2.0],
    }
    assert TokenExample.from_contract(d).focus == 0  # the first token carrying the activation
    assert TokenExample.from_contract({**d, "focus": 2}).focus == 2  # given explicitly
    assert TokenExample.from_contract({**d, "activation": 0.0}).focus == -1  # a non-firing window
    close = {**d, "activations": [0.0, 1.9995, 0.0]}  # float16 storage rounds
    assert TokenExample.from_contract(close).focus == 1


def test_example_from_contract_refuses_ragged_windows() -> None:
    with pytest.raises(ValueError, match="2 tokens but 1 activations"):
        TokenExample.from_contract({"tokens": ["a", "b"], "activations": [1.0]})


def test_latent_row_json_keys() -> None:
    row = LatentRow(7, 0.25, 3.5, "cats", None, ("cat", "dog"))
    assert row.to_json() == {"l": 7, "f": 0.25, "m": 3.5, "e": "cats", "s": None, "t": "cat dog"}
