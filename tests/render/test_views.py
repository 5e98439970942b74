"""Render views: the list's rows as its embedded JSON."""

from __future__ import annotations

from saescope.render import LatentRow


def test_latent_row_json_keys() -> None:
    row = LatentRow(7, 0.25, 3.5, "cats", None, ("cat", "dog"))
    assert row.to_json() == {"l": 7, "f": 0.25, "m": 3.5, "e": "cats", "s": None, "t": "cat dog"}
