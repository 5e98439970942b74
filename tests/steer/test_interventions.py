"""Intervention specs as the command line writes them, and every way one can be wrong."""

from __future__ import annotations

import pytest

from saescope.config.steer import parse_intervention_spec
from saescope.errors import ConfigError, SaescopeError
from saescope.steer.interventions import (
    Intervention,
    check_interventions,
    parse_interventions,
    resolve_values,
)


def test_specs_read_as_written() -> None:
    items = parse_interventions(
        ["12:add:8", "3:clamp:10x", "7:scale:-0.5", "9:ablate", "4:add:2x"], where="prompt"
    )
    assert [(i.latent, i.mode, i.value, i.relative) for i in items] == [
        (12, "add", 8.0, False),
        (3, "clamp", 10.0, True),
        (7, "scale", -0.5, False),
        (9, "ablate", 0.0, False),
        (4, "add", 2.0, True),
    ]
    assert all(i.where == "prompt" for i in items)
    assert items[1].describe() == "3:clamp:10x on prompt tokens"
    at = parse_interventions(["1:add:2"], where="positions", positions=[0, -1], conditional=True)[0]
    assert at.describe() == "1:add:2 at positions 0,-1 where it fires"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("12", "expected LATENT:MODE"),
        ("12:boost:3", "unknown mode 'boost'"),
        ("x:add:3", "non-negative integer"),
        ("-1:add:3", "non-negative integer"),
        ("12:add", "add needs a value"),
        ("12:add:abc", "not a number"),
        ("12:add:nan", "finite"),
        ("12:scale:10x", "only add and clamp take a multiple"),
        ("12:ablate:3", "ablate takes no value"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_intervention_spec(spec)


def test_ids_are_checked_against_the_sae_and_relative_values_resolved() -> None:
    with pytest.raises(SaescopeError, match="latent 64 is out of range: the SAE has 64 latents"):
        check_interventions([Intervention(64, "add", 1.0)], 64)
    with pytest.raises(SaescopeError, match="latent 3 is given twice"):
        check_interventions([Intervention(3, "add", 1.0), Intervention(3, "ablate")], 64)
    resolved = resolve_values(
        [Intervention(2, "clamp", 10.0, relative=True), Intervention(1, "add", 4.0)], [0, 9, 0.5]
    )
    assert (resolved[0].value, resolved[0].relative) == (5.0, False)
    assert resolved[1] == Intervention(1, "add", 4.0)
    with pytest.raises(SaescopeError, match="latent 0 never fired"):
        resolve_values([Intervention(0, "clamp", 10.0, relative=True)], [0.0])


def test_places_must_be_consistent() -> None:
    with pytest.raises(ConfigError, match="positions"):
        Intervention(1, "add", 1.0, where="positions")
    with pytest.raises(ConfigError, match="substring"):
        Intervention(1, "add", 1.0, substring="cat")
    with pytest.raises(ConfigError, match="unknown mode"):
        Intervention(1, "boost", 1.0)  # type: ignore[arg-type]
