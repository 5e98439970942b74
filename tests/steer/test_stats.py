"""Latent statistics: the index is found through the run layout, read through
`saescope.index.read_latent_stats` (a table or a dict of arrays), else eval output, else measured
on held-out text — and what is measured equals a count by hand."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import save_file

from saescope.bound import BoundSAE, heldout_corpus
from saescope.data import iter_model_inputs
from saescope.errors import SaescopeError
from saescope.hooks import collect_activations
from saescope.steer.stats import find_index, latent_stats, measured_stats


@pytest.fixture
def run(bound: BoundSAE, tmp_path: Path) -> Path:
    """A run folder holding a copy of the SAE as RUN/sae."""
    shutil.copytree(bound.path, tmp_path / "run" / "sae")
    return tmp_path / "run"


def fake_index_module(monkeypatch: pytest.MonkeyPatch, table: object) -> None:
    module = types.ModuleType("saescope.index")
    module.read_latent_stats = lambda index: table  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "saescope.index", module)


def test_the_index_of_a_run_is_found_when_it_indexes_this_sae(run: Path) -> None:
    assert find_index(run / "sae") is None
    (run / "index").mkdir()
    (run / "index" / "index.json").write_text(json.dumps({"sae": str(run / "sae")}))
    assert find_index(run / "sae") == run / "index"
    (run / "index" / "index.json").write_text(json.dumps({"sae": "../sae"}))  # relative to the index
    assert find_index(run / "sae") == run / "index"
    (run / "index" / "index.json").write_text(json.dumps({"sae": str(run / "other")}))
    assert find_index(run / "sae") is None
    with pytest.raises(SaescopeError, match="is not a latent index"):
        find_index(run / "sae", run / "sae")


@pytest.mark.parametrize("as_table", [False, True])
def test_index_statistics_are_read_per_latent(
    bound: BoundSAE, run: Path, monkeypatch: pytest.MonkeyPatch, as_table: bool
) -> None:
    columns = {"latent": np.array([5, 2]), "frequency": np.array([0.25, 0.5]), "max": np.array([3.0, 4.0])}
    fake_index_module(monkeypatch, pa.table(columns) if as_table else columns)
    (run / "index").mkdir()
    (run / "index" / "index.json").write_text(json.dumps({"sae": str(run / "sae")}))
    bound = bound._replace(path=run / "sae")
    stats = latent_stats(bound)
    assert stats.source == f"latent index {run / 'index'}"
    assert stats.frequency[[2, 5, 0]].tolist() == [0.5, 0.25, 0.0]
    assert stats.maximum is not None and stats.maximum[[2, 5, 0]].tolist() == [4.0, 3.0, 0.0]


def test_eval_frequencies_serve_when_no_maximum_is_needed(bound: BoundSAE, run: Path) -> None:
    save_file(
        {"frequency": torch.full((64,), 0.125), "mean_activation": torch.ones(64)},
        run / "sae" / "eval_latents.safetensors",
    )
    bound = bound._replace(path=run / "sae")
    from_eval = latent_stats(bound, need_maximum=False)
    assert from_eval.source.endswith("eval_latents.safetensors") and from_eval.maximum is None
    assert torch.equal(from_eval.frequency, torch.full((64,), 0.125, dtype=torch.float64))
    assert latent_stats(bound, tokens=64, need_maximum=True).source.startswith("measured on")


def test_measured_statistics_equal_a_count_by_hand(bound: BoundSAE) -> None:
    stats = measured_stats(bound, tokens=600, batch_size=2)
    corpus, start = heldout_corpus(bound.sae)
    dense, seen = [], 0
    with torch.no_grad(), collect_activations(bound.loaded_model.model, [bound.hookpoint]) as collector:
        for item in iter_model_inputs(corpus, bound.loaded_model.tokenizer, start):
            if seen >= 600:
                break
            seen += len(item.positions)
            x = collector.run(input_ids=torch.tensor([item.token_ids]))[bound.hookpoint.name]
            dense.append(bound.sae.encode_dense(x[0, item.positions]))
    acts = torch.cat(dense)
    assert stats.source == f"measured on {len(acts)} held-out tokens"
    torch.testing.assert_close(stats.frequency, (acts > 0).double().mean(0))
    assert stats.maximum is not None
    torch.testing.assert_close(stats.maximum, acts.amax(0).clamp_min(0).double(), rtol=1e-5, atol=1e-6)
