"""Per-latent statistics, top examples, co-occurrence, decoder neighbours, logit effects and the map,
each against a naive computation (dense matrices, loops) on the tiny index or on constructed cases."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM

from saescope.index import QUANTILES, read_latent_table
from saescope.index.cooccurrence import MIN_SHARED, cooccurrence_counts, top_partners
from saescope.index.decoder import logit_effects, logits_table
from saescope.index.latent_map import choose_method, latent_map, pca_2d, spherical_kmeans
from saescope.index.latent_table import HISTOGRAM_BINS, bucket_stats, quantile_column, top_examples
from saescope.index.postings import Postings
from saescope.index.sentences import sentence_starts
from saescope.sae.formats import load_sae

from .reference import Reference

D_SAE = 48
D_MODEL = 32


def test_statistics_equal_a_naive_computation(built: Path, ref: Reference) -> None:
    stats = read_latent_table(built).to_pydict()
    assert stats["latent"] == list(range(D_SAE))
    for latent in range(D_SAE):
        values = ref.dense[:, latent][ref.dense[:, latent] > 0].astype(np.float64)
        assert stats["count"][latent] == len(values)
        assert stats["frequency"][latent] == len(values) / 600
        assert stats["dead"][latent] == (len(values) == 0)
        assert stats["dense"][latent] == (len(values) / 600 > 0.1)
        if not len(values):
            assert stats["max"][latent] == stats["mean"][latent] == 0
            continue
        assert stats["max"][latent] == values.max()
        assert stats["mean"][latent] == pytest.approx(values.mean(), rel=1e-12)
        for q in QUANTILES:
            assert stats[quantile_column(q)][latent] == pytest.approx(np.quantile(values, q), rel=1e-6)
        histogram = [0] * HISTOGRAM_BINS
        for v in values:
            histogram[min(int(v / values.max() * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
        assert stats["histogram"][latent] == histogram
    assert sum(stats["dead"]) > 0 and sum(stats["dense"]) > 0  # both kinds occur in this case


def test_bucket_statistics_on_a_constructed_case() -> None:
    postings = Postings(
        np.array([5, 3, 5, 5, 3], dtype=np.int32),
        np.array([10, 11, 12, 13, 14], dtype=np.int64),
        np.array([1.0, 2.0, 4.0, 2.0, 2.0], dtype=np.float16),
    )
    table = bucket_stats(postings, 2, 6, total_tokens=10, dense_frequency=0.25).to_pydict()
    assert table["latent"] == [2, 3, 4, 5]
    assert table["count"] == [0, 2, 0, 3]
    assert table["frequency"] == [0.0, 0.2, 0.0, 0.3]
    assert table["max"] == [0.0, 2.0, 0.0, 4.0]
    assert table["mean"] == [0.0, 2.0, 0.0, 7 / 3]
    assert table["q50"] == [0.0, 2.0, 0.0, 2.0]
    assert table["q25"][3] == 1.5  # between 1 and 2, numpy's linear method
    assert table["dead"] == [True, False, True, False] and table["dense"] == [False, False, False, True]
    assert table["histogram"][3][HISTOGRAM_BINS // 4] == 1 and table["histogram"][3][-1] == 1
    top = top_examples(postings, 2).to_pydict()
    assert top == {
        "latent": [3, 3, 5, 5],
        "rank": [0, 1, 0, 1],
        "token": [11, 14, 12, 13],  # ties broken by the earlier token
        "activation": [2.0, 2.0, 4.0, 2.0],
    }


def test_top_examples_are_each_latents_largest(built: Path, ref: Reference) -> None:
    top = pq.read_table(built / "top.parquet").to_pydict()
    for latent in (0, 5, 17, 30):
        column = ref.dense[:, latent]
        order = np.lexsort((ref.keys, -column))
        want = [(int(ref.keys[i]), float(column[i])) for i in order if column[i] > 0][:100]
        got = [(t, a) for lat, t, a in zip(top["latent"], top["token"], top["activation"]) if lat == latent]
        assert got == want


def naive_partners(counts: np.ndarray, latent: int, n: int, least: int) -> list[tuple[int, int]]:
    """(other, shared) of a latent's `n` best partners by Jaccard and its `n` best by lift (ties:
    lower id), among those sharing at least `least` tokens, ordered by Jaccard, from a dense count."""
    own = np.diag(counts)
    pairs = [o for o in range(len(counts)) if o != latent and counts[latent, o] >= least]

    def jaccard(o: int) -> float:
        return counts[latent, o] / (own[latent] + own[o] - counts[latent, o])

    def lift(o: int) -> float:
        return counts[latent, o] * 600 / (own[latent] * own[o])

    kept = set(sorted(pairs, key=lambda o: (-jaccard(o), o))[:n]) | set(
        sorted(pairs, key=lambda o: (-lift(o), o))[:n]
    )
    return [(o, int(counts[latent, o])) for o in sorted(kept, key=lambda o: (-jaccard(o), o))]


def test_cooccurrence_keeps_the_best_partners_by_jaccard_and_lift(built: Path, ref: Reference) -> None:
    fires = (ref.dense > 0).astype(np.int64)
    dense = fires.T @ fires
    table = pq.read_table(built / "cooccurrence.parquet").to_pydict()
    assert json.loads((built / "index.json").read_text())["summary"]["cooccurrence"] == {
        "min_shared": MIN_SHARED,
        "kept": 64,
        "by": ["jaccard", "lift"],
    }
    for latent in range(D_SAE):
        got = [(o, c) for lat, o, c in zip(table["latent"], table["other"], table["count"]) if lat == latent]
        assert got == naive_partners(dense, latent, 64, MIN_SHARED)  # 64 >= 47: every pair sharing 10
    assert min(table["count"]) >= MIN_SHARED and len(table["count"]) > 100


def test_cooccurrence_blocks_add_up_and_keep_the_top_partners() -> None:
    rng = np.random.default_rng(0)
    d, tokens = 30, 500
    fires = rng.random((tokens, d)) < rng.uniform(0.02, 0.4, d)  # rare and frequent latents
    rows, latents = np.nonzero(fires)
    keys = rows.astype(np.int64) * 7 + 3  # any increasing keys
    blocks = [(latents[rows < 200], keys[rows < 200]), (latents[rows >= 200], keys[rows >= 200])]
    counts = cooccurrence_counts(blocks, d).toarray()
    assert np.array_equal(counts, fires.T.astype(np.int64) @ fires.astype(np.int64))
    top = top_partners(cooccurrence_counts(blocks, d), 3, min_shared=4).to_pydict()
    by_count = 0
    for latent in range(d):
        want = naive_partners(counts, latent, 3, 4)
        got = [(o, c) for lat, o, c in zip(top["latent"], top["other"], top["count"]) if lat == latent]
        assert got == want
        frequent = sorted(
            ((c, -o) for o in range(d) if o != latent and (c := counts[latent, o]) >= 4), reverse=True
        )
        by_count += [(-o, c) for c, o in frequent[:3]] != want[:3]
    assert by_count > d // 2  # the ratios rank other partners than a raw count does


def test_neighbours_are_the_closest_decoder_directions(built: Path, world: dict[str, Path]) -> None:
    w = load_sae(world["sae"]).W_dec.detach().double()
    w = w / w.norm(dim=1, keepdim=True)
    cos = (w @ w.T).numpy()
    table = pq.read_table(built / "neighbours.parquet").to_pydict()
    for latent in (0, 7, 47):
        want = [o for o in np.argsort(-cos[latent], kind="stable") if o != latent][:5]
        got = [o for lat, o in zip(table["latent"], table["other"]) if lat == latent][:5]
        assert got == want
        values = [c for lat, c in zip(table["latent"], table["cosine"]) if lat == latent][:5]
        np.testing.assert_allclose(values, cos[latent, want], rtol=1e-5)


def naive_top(logits: np.ndarray, n: int) -> tuple[list[int], list[int]]:
    return np.argsort(-logits, kind="stable")[:n].tolist(), np.argsort(logits, kind="stable")[:n].tolist()


def test_logit_effects_go_through_a_random_rmsnorm_gain(world: dict[str, Path]) -> None:
    model = AutoModelForCausalLM.from_pretrained(world["model"], dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.copy_(torch.rand(D_MODEL, generator=torch.Generator().manual_seed(0)) * 3 - 1)
    gain, unembed = model.model.norm.weight.detach().double(), model.lm_head.weight.detach().double()
    w_dec = load_sae(world["sae"]).W_dec.detach()
    effects = logit_effects(w_dec, model, 20)
    for latent in (0, 9, 33):
        d = w_dec[latent].double()
        naive = (unembed @ (gain * d / d.pow(2).mean().sqrt())).numpy()  # RMSNorm(d), eps ~ 0
        top, bottom = naive_top(naive, 20)
        assert effects.top_ids[latent].tolist() == top and effects.bottom_ids[latent].tolist() == bottom
        np.testing.assert_allclose(effects.top_values[latent].numpy(), naive[top], rtol=1e-4)


def test_logit_effects_centre_and_drop_layernorm_bias(tiny_gpt2_model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    ln = tiny_gpt2_model.transformer.ln_f
    with torch.no_grad():
        ln.weight.copy_(torch.rand(D_MODEL, generator=gen) + 0.5)
        ln.bias.copy_(torch.randn(D_MODEL, generator=gen))
    w_dec = torch.randn(6, D_MODEL, generator=gen)
    effects = logit_effects(w_dec, tiny_gpt2_model, 10)
    unembed = tiny_gpt2_model.lm_head.weight.detach().double()
    for latent in range(6):
        d = w_dec[latent].double()
        centred = d - d.mean()
        naive = (unembed @ (ln.weight.detach().double() * centred / centred.pow(2).mean().sqrt())).numpy()
        top, bottom = naive_top(naive, 10)
        assert effects.top_ids[latent].tolist() == top and effects.bottom_ids[latent].tolist() == bottom


def test_the_index_keeps_the_logit_effects_of_its_model(built: Path, world: dict[str, Path]) -> None:
    model = AutoModelForCausalLM.from_pretrained(world["model"], dtype=torch.float32)
    want = logits_table(logit_effects(load_sae(world["sae"]).W_dec.detach(), model, 20))
    assert pq.read_table(built / "logits.parquet").to_pydict() == want.to_pydict()


def test_sentences_start_after_ends_and_special_tokens() -> None:
    ends = np.zeros(10, dtype=bool)
    ends[[2, 7]] = True  # tokens 2 and 7 end a sentence
    ids = np.array([0, 1, 2, 3, 4, 7, 7, 5, 2])
    assert sentence_starts(ids, ends).tolist() == [0, 0, 0, 3, 3, 3, 6, 7, 7]
    assert sentence_starts(np.array([12, 2, 4]), ends).tolist() == [0, 0, 2]  # unknown ids end nothing


def test_pca_map_is_deterministic_and_kmeans_finds_planted_clusters() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen) * 5
    rows = torch.cat([c + 0.1 * torch.randn(25, 16, generator=gen) for c in centres])
    w = rows / rows.norm(dim=1, keepdim=True)
    labels = spherical_kmeans(w, 4, seed=0)
    assert all(len(set(labels[i * 25 : (i + 1) * 25])) == 1 for i in range(4))
    assert len(set(labels)) == 4
    xy = pca_2d(w)
    assert np.array_equal(xy, pca_2d(w)) and np.array_equal(np.abs(xy), np.abs(pca_2d(-w)))
    assert (xy[np.abs(xy).argmax(axis=0), [0, 1]] > 0).all()  # signs fixed
    table = latent_map(rows, "pca", clusters=4).table().to_pydict()
    assert table["latent"] == list(range(100)) and table["cluster"] == labels.tolist()


def test_umap_is_used_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {}

    class FakeUMAP:
        def __init__(self, **kw: object) -> None:
            calls.update(kw)

        def fit_transform(self, x: np.ndarray) -> np.ndarray:
            return x[:, :2] * 0 + 1

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP, __spec__=object()))
    monkeypatch.setattr("saescope.index.latent_map.has_umap", lambda: True)
    assert choose_method("auto") == "umap"
    result = latent_map(torch.randn(12, 8), "umap", clusters=2, seed=3)
    assert result.method == "umap" and (result.xy == 1).all()
    assert calls == {"n_components": 2, "metric": "cosine", "random_state": 3}
    monkeypatch.setattr("saescope.index.latent_map.has_umap", lambda: False)
    assert choose_method("auto") == "pca"
    with pytest.raises(Exception, match="pip install 'saescope\\[map\\]'"):
        choose_method("umap")
