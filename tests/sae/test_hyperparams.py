"""Each architecture's own hyperparameters: declared by its `Params`, offered by the registry, saved
in `cfg.json` and read back (old files without them get the defaults), refused when unknown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from saescope.config import architectures as settings
from saescope.errors import ConfigError, SaescopeError
from saescope.sae import architecture_names, architecture_params, get_architecture, register
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.relu import ReLUSAE

from .builders import ARCHITECTURES, k_of, make_sae

# A value other than the default for every hyperparameter of every architecture.
CHANGED: dict[str, dict[str, Any]] = {
    "topk": {},
    "batchtopk": {"batchtopk_threshold_momentum": 0.125},
    "relu": {"l1_coefficient": 0.75},
    "jumprelu": {"l0_coefficient": 0.02, "jumprelu_bandwidth": 0.05, "jumprelu_init_threshold": 0.3},
    "matryoshka": {"batchtopk_threshold_momentum": 0.125, "matryoshka_groups": [0.25, 0.75]},
    "gated": {"gate_l1_coefficient": 0.3},
    "transcoder": {"transcoder_skip": True},
}


def test_the_registry_names_each_architecture_s_params() -> None:
    params = architecture_params()
    assert list(params) == architecture_names() == sorted([*ARCHITECTURES, "transcoder"])
    for name, cls in params.items():
        assert cls is get_architecture(name).Params
        assert {f.name for f in dataclasses.fields(cls)} == set(CHANGED[name])
    assert [a for a in ARCHITECTURES if get_architecture(a).takes_k] == ["topk", "batchtopk", "matryoshka"]


def test_the_settings_registry_and_the_class_registry_hold_the_same_architectures() -> None:
    """`saescope.config.architectures` (torch-free: the CLI and TrainConfig read it) and
    `saescope.sae.registry` (the classes) name the same architectures, with the same settings."""
    assert settings.architecture_names() == architecture_names()
    for name, entry in settings.ARCHITECTURES.items():
        cls = get_architecture(name)
        assert (cls.architecture, cls.Params, cls.takes_k) == (name, entry.params, entry.takes_k)


def test_a_class_that_disagrees_with_its_settings_is_not_registered() -> None:
    class Wrong(ReLUSAE):
        architecture = "relu"
        takes_k = True

    with pytest.raises(TypeError, match=r"disagrees with saescope\.config\.architectures"):
        register(Wrong)

    class Unknown(ReLUSAE):
        architecture = "crosscoder"

    with pytest.raises(TypeError, match="disagrees"):
        register(Unknown)
    assert get_architecture("relu") is ReLUSAE and "crosscoder" not in architecture_names()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_hyperparams_are_saved_in_cfg_json_and_loaded_back(tmp_path: Path, architecture: str) -> None:
    sae = make_sae(architecture, k=k_of(architecture), **CHANGED[architecture])
    assert sae.cfg.hyperparams == CHANGED[architecture]
    save_sae(sae, tmp_path / "sae")
    written = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert written["hyperparams"] == CHANGED[architecture]
    loaded = load_sae(tmp_path / "sae")
    assert loaded.params == sae.params and loaded.cfg.hyperparams == CHANGED[architecture]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_defaults_are_recorded_in_full(tmp_path: Path, architecture: str) -> None:
    sae = make_sae(architecture, k=k_of(architecture))
    defaults = get_architecture(architecture).Params().to_dict()
    assert sae.cfg.hyperparams == defaults
    save_sae(sae, tmp_path / "sae")
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["hyperparams"] == defaults


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_cfg_json_without_hyperparams_loads_with_the_defaults(tmp_path: Path, architecture: str) -> None:
    save_sae(make_sae(architecture, k=k_of(architecture), **CHANGED[architecture]), tmp_path / "sae")
    path = tmp_path / "sae" / "cfg.json"
    old = json.loads(path.read_text())
    del old["hyperparams"]  # as written before architectures recorded them
    path.write_text(json.dumps(old))
    loaded = load_sae(tmp_path / "sae")
    assert loaded.params == get_architecture(architecture).Params()


@pytest.mark.parametrize(
    ("hyperparams", "fragment"),
    [
        (
            {"jumprelu_bandwidth": 0.1},
            "a relu SAE has no hyperparameter 'jumprelu_bandwidth' (it has l1_coefficient)",
        ),
        ({"l1_coefficient": -1}, "--l1-coefficient must be >= 0, got -1"),
        ({"l1_coefficient": "0.2"}, "--l1-coefficient must be >= 0, got '0.2'"),
    ],
)
def test_bad_hyperparams_in_cfg_json_are_refused_naming_the_file(
    tmp_path: Path, hyperparams: dict[str, Any], fragment: str
) -> None:
    save_sae(make_sae("relu", k=None), tmp_path / "sae")
    path = tmp_path / "sae" / "cfg.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"hyperparams": hyperparams}))
    with pytest.raises(SaescopeError) as info:
        load_sae(tmp_path / "sae")
    assert str(info.value) == f"{path}: {fragment}"


def test_hyperparams_that_are_not_an_object_are_refused(tmp_path: Path) -> None:
    save_sae(make_sae("topk"), tmp_path / "sae")
    path = tmp_path / "sae" / "cfg.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"hyperparams": [1, 2]}))
    with pytest.raises(SaescopeError, match="hyperparams must be an object"):
        load_sae(tmp_path / "sae")


def test_topk_has_none() -> None:
    with pytest.raises(
        ConfigError, match="a topk SAE has no hyperparameter 'l1_coefficient' \\(it has none\\)"
    ):
        make_sae("topk", l1_coefficient=0.1)
