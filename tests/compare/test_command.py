"""`saescope compare` end to end: the DESIGN contract's JSON, an SAE against itself and a permuted
copy, families of a constructed split, activation correlation from two indexes of the same
tokens, universality of two seeds, and SAEs of different models, sites or widths refused in one
line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from saescope import cli
from saescope.compare.command import compare
from saescope.config.compare import CompareConfig
from saescope.sae.formats import load_sae
from tests.builders import one_thread
from tests.index.builders import build, save, topk_sae, write_corpus

from .builders import sae_with_decoder, saved, split_pair, unit_directions


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with one_thread():
        assert cli.main([*argv, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_an_sae_against_itself_and_a_permuted_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = unit_directions(60, 24, 0)
    a = saved(sae_with_decoder(w), tmp_path / "a")
    order = torch.randperm(60, generator=torch.Generator().manual_seed(1))
    b = saved(sae_with_decoder(w[order]), tmp_path / "b")
    found = run_json(["compare", str(a), str(a), "--out", str(tmp_path / "self")], capsys)
    assert found["shared_fraction"] == {"0.5": 1.0, "0.7": 1.0, "0.9": 1.0}
    assert all(x == y and c == pytest.approx(1.0, abs=1e-5) for x, y, c in found["assignment"])
    assert found["families"] == [] and found["saes"] == [str(a), str(a)]
    assert (tmp_path / "self" / "compare.json").is_file()
    found = run_json(["compare", str(a), str(b), "--out", str(tmp_path / "perm")], capsys)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(60)
    assert [y for _, y, _ in found["assignment"]] == inverse.tolist()
    pair = found["pairs"][0]
    assert pair["assignment_method"] == "hungarian" and pair["shared_of"] == 60
    assert pair["correlation"] == {"measured": False, "reason": pair["correlation"]["reason"]}
    assert "no latent index" in pair["correlation"]["reason"]
    assert pair["universality"]["decoder_fraction"] == 1.0
    assert set(found["map"]) >= {"x", "y", "sae", "latent", "method"} and len(found["map"]["x"]) == 120


def test_families_of_a_constructed_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = split_pair()
    small = saved(sae_with_decoder(pair.small), tmp_path / "small")
    large = saved(sae_with_decoder(pair.large), tmp_path / "large")
    found = run_json(["compare", str(large), str(small), "--out", str(tmp_path / "cmp")], capsys)
    (family,) = found["families"]
    assert family["parent"] == 0 and sorted(family["children"]) == list(pair.children)
    assert family["parent_sae"] == str(small) and family["children_sae"] == str(large)
    assert found["pairs"][0]["universality"] is None
    summary = found["pairs"][0]["families_summary"]
    assert summary["families"] == 1 and summary["children"] == 3 and summary["min_coactivation"] is None


def test_correlation_and_coactivation_from_two_indexes(tmp_path: Path, tiny_model_dir: Path) -> None:
    a = save(topk_sae(tiny_model_dir, d_sae=32, k=4, seed=0), tmp_path / "run" / "sae")
    b = save(topk_sae(tiny_model_dir, d_sae=32, k=4, seed=0), tmp_path / "other" / "sae")
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs=20)
    with one_thread():
        build([a, b], [tmp_path / "run" / "index", tmp_path / "other" / "index"], corpus, tokens=300)
        result = compare(CompareConfig(saes=(a, b), threads=1))
    assert result.out == tmp_path / "run" / "compare" / "compare.json"
    stats = result.pairs[0].correlation.statistics
    assert stats is not None and stats.tokens >= 300
    r = stats.correlation
    fired = stats.fires_a > 0
    assert fired.any() and torch.allclose(
        torch.as_tensor(r[fired]), torch.ones(int(fired.sum()), dtype=torch.float64), atol=1e-3
    )
    assert (stats.both == stats.fires_a).all()  # the same SAE fires on the same tokens
    assert "median r 1.000" in result.render()


def test_two_seeds_of_the_same_settings_give_a_universality_fraction(tmp_path: Path) -> None:
    base = {"lr": 1e-3, "k": [4], "train_seed": 0, "out": "x"}
    w = unit_directions(50, 32, 2)
    other = torch.cat([w[:20] + 0.05 * unit_directions(20, 32, 3), unit_directions(30, 32, 4)])
    a = saved(sae_with_decoder(w, training={"config": base}), tmp_path / "a")
    b = saved(
        sae_with_decoder(other, training={"config": {**base, "train_seed": 1, "out": "y"}}), tmp_path / "b"
    )
    with one_thread():
        result = compare(CompareConfig(saes=(a, b), out=tmp_path / "cmp"))
    u = result.pairs[0].universality
    assert u is not None and u.same_settings and u.seeds == (0, 1) and u.differing == ()
    assert u.decoder_fraction == pytest.approx(20 / 50) and u.both_fraction == pytest.approx(20 / 50)
    assert "training seeds 0 and 1" in result.render()
    c = saved(sae_with_decoder(other, training={"config": {**base, "lr": 3e-3}}), tmp_path / "c")
    with one_thread():
        u2 = compare(CompareConfig(saes=(a, c), out=tmp_path / "cmp2")).pairs[0].universality
    assert u2 is not None and not u2.same_settings and u2.differing == ("lr",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "another-model"}, "compare SAEs of one model"),
        ({"hookpoint": "resid_post:2"}, "compare SAEs of one site"),
        ({"d_in": 16}, "compare SAEs of one input width"),
    ],
)
def test_saes_of_different_models_sites_or_widths_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    a = saved(sae_with_decoder(unit_directions(20, 24, 0)), tmp_path / "a")
    d_in = int(change.get("d_in", 24))
    b = saved(
        sae_with_decoder(
            unit_directions(20, d_in, 1),
            model=str(change.get("model", "tiny")),
            hookpoint=str(change.get("hookpoint", "resid_post:1")),
        ),
        tmp_path / "b",
    )
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "cmp").exists()


def test_one_sae_or_a_wrong_number_of_indexes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved(sae_with_decoder(unit_directions(20, 24, 0)), tmp_path / "a")
    assert cli.main(["compare", str(a)]) == 2
    assert "at least two SAE folders" in capsys.readouterr().err
    assert cli.main(["compare", str(a), str(a), "--index", str(tmp_path)]) == 2
    assert "one index per SAE" in capsys.readouterr().err


def test_the_saved_sae_is_unchanged_by_a_comparison(tmp_path: Path) -> None:
    a = saved(sae_with_decoder(unit_directions(20, 24, 0)), tmp_path / "a")
    before = load_sae(a).W_dec.clone()
    with one_thread():
        compare(CompareConfig(saes=(a, a), out=tmp_path / "cmp"))
    assert torch.equal(load_sae(a).W_dec, before)
