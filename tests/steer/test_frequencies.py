"""Latent statistics: the SAE's latent index (found by its weights' fingerprint, read through
`saescope.index`), else eval output, else measured on held-out text — and what is measured equals
a count by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import save_file

from saescope.bound import BoundSAE, heldout_corpus
from saescope.config import IndexConfig
from saescope.data import iter_model_inputs
from saescope.errors import SaescopeError
from saescope.hooks import collect_activations
from saescope.index import read_explanations, read_latent_table
from saescope.index.build import build_index
from saescope.index.locate import index_of_sae
from saescope.steer.frequencies import firing_stats, measured_stats

from .builders import topk_sae


@pytest.fixture
def run(bound: BoundSAE, tmp_path: Path) -> Path:
    """A run folder holding a copy of the SAE as RUN/sae."""
    shutil.copytree(bound.path, tmp_path / "run" / "sae")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def indexed(bound: BoundSAE, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose RUN/index is a real (tiny) latent index of the SAE. Read-only."""
    root = tmp_path_factory.mktemp("indexed")
    shutil.copytree(bound.path, root / "sae")
    corpus = root / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": f"The cat {i} is on the mat in Paris."}) + "\n" for i in range(30))
    )
    build_index(
        IndexConfig(
            saes=(root / "sae",), dataset=str(corpus), device="cpu", tokens=300, context_len=24, map="pca"
        )
    )
    return root


def test_the_index_is_the_one_of_these_weights(
    bound: BoundSAE, indexed: Path, run: Path, tiny_model_dir: Path
) -> None:
    assert index_of_sae(bound.sae.file_tensors(), run / "sae") is None  # no RUN/index
    assert index_of_sae(bound.sae.file_tensors(), indexed / "sae") == indexed / "index"
    assert (
        index_of_sae(bound.sae.file_tensors(), run / "sae", indexed / "index") == indexed / "index"
    )  # a copy: same weights
    other = topk_sae(tiny_model_dir, seed=9)
    assert index_of_sae(other.file_tensors(), indexed / "sae") is None  # RUN/index of other weights: not used
    with pytest.raises(SaescopeError, match="indexes another SAE"):
        index_of_sae(other.file_tensors(), indexed / "sae", indexed / "index")
    with pytest.raises(SaescopeError, match="not a latent index"):
        index_of_sae(bound.sae.file_tensors(), run / "sae", run / "sae")


def test_index_statistics_and_explanations_are_read_per_latent(
    bound: BoundSAE, indexed: Path, tmp_path: Path
) -> None:
    stats = firing_stats(bound._replace(path=indexed / "sae"))
    assert stats.source == f"latent index {indexed / 'index'}"
    table = read_latent_table(indexed / "index")
    latents = table.column("latent").to_pylist()
    assert stats.frequency[latents].tolist() == pytest.approx(table.column("frequency").to_pylist())
    assert stats.maximum is not None
    assert stats.maximum[latents].tolist() == pytest.approx(table.column("max").to_pylist())
    assert float(stats.frequency.sum()) > 0 and float(stats.maximum.max()) > 0
    assert read_explanations(indexed / "index") == {}
    copy = tmp_path / "index"
    shutil.copytree(indexed / "index", copy)
    rows = {"latent": [3, 3, 5], "explanation": ["cats", "old", "Paris"], "best": [True, False, True]}
    pq.write_table(pa.table(rows), copy / "explanations.parquet")
    assert read_explanations(copy) == {3: "cats", 5: "Paris"}


def test_eval_frequencies_serve_when_no_maximum_is_needed(bound: BoundSAE, run: Path) -> None:
    save_file(
        {"frequency": torch.full((64,), 0.125), "mean_activation": torch.ones(64)},
        run / "sae" / "eval_latents.safetensors",
    )
    bound = bound._replace(path=run / "sae")
    from_eval = firing_stats(bound, need_maximum=False)
    assert from_eval.source.endswith("eval_latents.safetensors") and from_eval.maximum is None
    assert torch.equal(from_eval.frequency, torch.full((64,), 0.125, dtype=torch.float64))
    assert firing_stats(bound, tokens=64, need_maximum=True).source.startswith("measured on")


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
