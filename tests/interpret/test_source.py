"""Records from the index: train and held-out firings apart, windows as the index holds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from saescope.example import Example
from saescope.index.reader import Index
from saescope.interpret.source import IndexRecords, RecordSettings, near, split_firings, stratified_pick


def naive_near(keys: np.ndarray, others: np.ndarray, reach: int, stride: int) -> np.ndarray:
    return np.array(
        [any(k // stride == o // stride and abs(int(k) - int(o)) <= reach for o in others) for k in keys],
        dtype=bool,
    )


def test_near_matches_the_naive_double_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        keys = rng.integers(0, 2000, size=60)
        others = rng.integers(0, 2000, size=rng.integers(0, 15))
        assert np.array_equal(near(keys, others, 7, 100), naive_near(keys, others, 7, 100))


def test_stratified_pick_spreads_over_bins() -> None:
    ranked = np.arange(100)  # strongest first: bins [0, 25), [25, 50), …
    picked = stratified_pick(ranked, 8, 4, np.random.default_rng(0))
    assert len(set(picked.tolist())) == 8 and np.bincount(picked // 25, minlength=4).tolist() == [2, 2, 2, 2]
    # a bin running short hands its slots to the others
    few = stratified_pick(np.arange(5), 5, 4, np.random.default_rng(1))
    assert sorted(few.tolist()) == [0, 1, 2, 3, 4]
    assert len(stratified_pick(np.arange(0), 3, 4, np.random.default_rng(0))) == 0


def test_split_keeps_held_out_firings_away_from_train_windows() -> None:
    rng = np.random.default_rng(0)
    stride = 1000
    keys = np.unique(rng.integers(0, 50 * stride, size=400))
    values = rng.random(len(keys)).astype(np.float32)
    settings = RecordSettings(train_examples=40, bins=4, per_bin=5, before=6, after=2)
    split = split_firings(keys, values, settings, stride, np.random.default_rng(1))
    assert len(split.train) == 40 and len(split.held_out) == 20
    assert not set(split.train.tolist()) & set(split.held_out.tolist())
    strongest = np.lexsort((keys, -values))[:20]
    assert set(strongest.tolist()) <= set(split.train.tolist())  # half the train: the top firings
    reach = settings.before + settings.after
    assert not naive_near(keys[split.held_out], keys[split.train], reach, stride).any()


def test_a_rare_latent_keeps_a_third_for_scoring() -> None:
    keys = np.arange(10, dtype=np.int64) * 1000  # ten firings, each in its own document
    values = np.linspace(1, 2, 10, dtype=np.float32)
    split = split_firings(keys, values, RecordSettings(), 1000, np.random.default_rng(0))
    assert (len(split.train), len(split.held_out)) == (7, 3)


def index_activation(index: Index, latent: int, doc: int, position: int) -> float:
    keys, values = index.postings(latent)
    at = np.searchsorted(keys, doc * index.stride + position)
    return float(values[at]) if at < len(keys) and keys[at] == doc * index.stride + position else 0.0


def check_window(index: Index, latent: int, ex: Example) -> None:
    """Every token and activation of `ex` as the index's own tables hold them."""
    ids = index.doc_tokens([ex.doc_id])[ex.doc_id]
    start = max(0, ex.position - 12)
    assert list(ex.tokens) == index.decode(ids[start : start + len(ex.tokens)].tolist())
    for i, a in enumerate(ex.activations):
        assert a == index_activation(index, latent, ex.doc_id, start + i)


def test_records_from_the_tiny_index(built_index: Path) -> None:
    index = Index(built_index)
    counts = pq.read_table(built_index / "latents.parquet").column("count").to_numpy()
    latent = int(np.argmax(counts))
    record = IndexRecords(index).record(latent)
    assert record.count == counts[latent] and record.latent == latent
    assert len(record.train) == 40 and len(record.held_out_active) == 20
    assert record.held_out_inactive  # few: it fires on almost half the tokens
    for ex in (*record.train, *record.held_out):
        check_window(index, latent, ex)
    assert all(
        ex.activation > 0 and ex.activations[min(ex.position, 12)] == ex.activation for ex in record.train
    )
    assert all(not ex.fires for ex in (*record.held_out_inactive, *record.background))
    train_spots = {(ex.doc_id, ex.position) for ex in record.train}
    for ex in record.held_out_active:  # no scored window shares a token with a train window
        assert not any((ex.doc_id, p) in train_spots for p in range(ex.position - 16, ex.position + 17))
    assert record.token_stats is not None
    assert sum(s.firings for s in record.token_stats) == record.count
    assert all(s.occurrences >= s.firings > 0 for s in record.token_stats)


def test_a_dead_latent_has_an_empty_record(built_index: Path) -> None:
    index = Index(built_index)
    dead = int(
        np.flatnonzero(pq.read_table(built_index / "latents.parquet").column("count").to_numpy() == 0)[0]
    )
    record = IndexRecords(index).record(dead)
    assert record.train == () and record.held_out == () and record.count == 0


def test_a_rarer_latent_gets_its_quiet_windows(built_index: Path) -> None:
    index = Index(built_index)
    counts = pq.read_table(built_index / "latents.parquet").column("count").to_numpy()
    latent = int(np.flatnonzero(counts >= 10)[np.argmin(counts[counts >= 10])])
    record = IndexRecords(index).record(latent)
    assert len(record.held_out_inactive) == 20 and len(record.background) > 0
    assert all(not ex.fires for ex in (*record.held_out_inactive, *record.background))
    quiet = {(ex.doc_id, ex.position) for ex in record.held_out_inactive}
    assert not quiet & {(ex.doc_id, ex.position) for ex in record.background}
    assert len(record.train) + len(record.held_out_active) <= record.count
