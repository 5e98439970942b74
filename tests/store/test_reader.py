"""ActivationStore: random access, shuffled/resumable/DDP batches, verification, docs, stats."""

from __future__ import annotations

import itertools
import json
import threading

import numpy as np
import pytest
import torch

from saescope.errors import ConfigError, StoreError
from saescope.store import ActivationStore, read_manifest

from .synthetic import D, doc, expected, feed, open_writer, rows_of

ROWS = 617  # not a multiple of any batch size used below


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "acts"
    with open_writer(out, target_rows=ROWS, shard_rows=50) as w:
        feed(w, docs_per_add=4)
    return out


@pytest.fixture
def store(store_path) -> ActivationStore:
    return ActivationStore(store_path)


@pytest.fixture(scope="module")
def index_of(store_path) -> dict[bytes, int]:
    return rows_of(ActivationStore(store_path).get(np.arange(ROWS)).activations)


def _ids(batches, index_of) -> list[int]:
    return [index_of[bytes(np.ascontiguousarray(r))] for b in batches for r in b.float().numpy()]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_get_returns_what_was_written(tmp_path, dtype) -> None:
    out = tmp_path / dtype
    with open_writer(out, target_rows=300, shard_rows=40, dtype=dtype) as w:
        feed(w, docs_per_add=3)
    store = ActivationStore(out, verify="full")
    exp = expected(300)
    assert store.dtype == getattr(torch, dtype) and store.d_model == D and len(store) == 300
    rows = torch.tensor([299, 0, 5, 5, 123, 40, 41, 39, 7])  # any order, repeats, across shards
    got = store.get(rows)
    assert torch.equal(got.activations, exp.activations[rows].to(store.dtype))
    assert torch.equal(got.token_ids, exp.token_ids[rows]) and got.token_ids.dtype == torch.int32
    assert torch.equal(got.doc_ids, exp.doc_ids[rows]) and got.doc_ids.dtype == torch.int64
    assert torch.equal(got.positions, exp.positions[rows])
    assert torch.equal(store.activations(rows.numpy()), got.activations)
    assert store.get(np.zeros(0, dtype=np.int64)).activations.shape == (0, D)
    with pytest.raises(IndexError):
        store.get([300])


def test_properties(store) -> None:
    assert store.model == "tiny-model" and store.hookpoint == "model.layers.1"
    assert store.rows == len(store) == ROWS and store.complete
    assert store.manifest.capture["tokens"] == ROWS


def test_random_batches_are_an_exact_permutation(store, index_of) -> None:
    batches = list(store.batches(64, shuffle="random", seed=3, drop_last=False))
    assert [len(b) for b in batches] == [64] * 9 + [ROWS - 576]
    ids = _ids(batches, index_of)
    assert sorted(ids) == list(range(ROWS))  # every row exactly once
    assert ids == store.permutation(3, 0).tolist()
    assert ids != list(range(ROWS))
    assert store.permutation(3, 0).dtype == np.int32
    dropped = list(store.batches(64, shuffle="random", seed=3))
    assert len(dropped) == 9 and torch.equal(torch.cat(dropped), torch.cat(batches[:9]))


def test_buffer_batches_are_an_exact_permutation(store, index_of) -> None:
    batches = list(store.batches(50, shuffle="buffer", seed=1, drop_last=False, buffer_rows=100))
    ids = _ids(batches, index_of)
    assert sorted(ids) == list(range(ROWS))
    assert ids == store.buffer_order(1, 0, 100).tolist()
    assert ids != list(range(ROWS))
    other = _ids(store.batches(50, shuffle="buffer", seed=2, drop_last=False, buffer_rows=100), index_of)
    assert other != ids and sorted(other) == sorted(ids)
    # a window mixes several chunks from different places of the store
    windows = store.buffer_windows(1, 0, 100)
    assert sum(n for w in windows for _, n in w) == ROWS and max(len(w) for w in windows) > 1


def test_none_batches_are_in_order(store, index_of) -> None:
    ids = _ids(store.batches(100, shuffle="none", drop_last=False), index_of)
    assert ids == list(range(ROWS))


@pytest.mark.parametrize("shuffle", ["random", "buffer", "none"])
def test_start_row_resumes_exactly(store, shuffle) -> None:
    kw = {"shuffle": shuffle, "seed": 5, "epochs": 3, "buffer_rows": 128}
    full = list(store.batches(32, **kw))
    per_epoch = ROWS // 32
    assert len(full) == 3 * per_epoch
    for steps in (1, 7, per_epoch, per_epoch + 4):  # also across an epoch boundary
        resumed = list(store.batches(32, start_row=steps * 32, **kw))
        assert len(resumed) == len(full) - steps
        assert all(torch.equal(a, b) for a, b in zip(resumed, full[steps:]))


def test_epochs_get_their_own_order(store, index_of) -> None:
    stream = store.batches(ROWS, shuffle="random", seed=0, epochs=None)
    e0, e1, e2 = (_ids([b], index_of) for b in itertools.islice(stream, 3))
    assert sorted(e0) == sorted(e1) == sorted(e2) == list(range(ROWS))
    assert e0 != e1 != e2


@pytest.mark.parametrize("shuffle", ["random", "buffer", "none"])
@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("drop_last", [True, False])
def test_ddp_ranks_split_each_global_batch(store, shuffle, world_size, drop_last) -> None:
    kw = {"shuffle": shuffle, "seed": 9, "buffer_rows": 100, "drop_last": drop_last}
    global_batches = list(store.batches(64, **kw))
    per_rank = [list(store.batches(64, rank=r, world_size=world_size, **kw)) for r in range(world_size)]
    assert all(len(p) == len(global_batches) for p in per_rank)
    for k, g in enumerate(global_batches):
        parts = [per_rank[r][k] for r in range(world_size)]
        if len(g) == 64:
            assert all(len(p) == 64 // world_size for p in parts)
        assert torch.equal(torch.cat(parts), g)


def test_bad_batch_settings_are_refused(store) -> None:
    with pytest.raises(ConfigError, match="multiple of world size"):
        next(store.batches(30, world_size=4))
    with pytest.raises(ConfigError, match="shuffle"):
        next(store.batches(30, shuffle="sorted"))  # type: ignore[arg-type]


def test_prefetch_dtype_and_early_stop(store) -> None:
    ref = list(store.batches(40, seed=2, prefetch=0))
    assert all(torch.equal(a, b) for a, b in zip(store.batches(40, seed=2, prefetch=4), ref))
    as_f64 = list(store.batches(40, seed=2, dtype=torch.float64))
    assert as_f64[0].dtype == torch.float64 and torch.equal(as_f64[0], ref[0].double())
    it = store.batches(40, seed=2)
    next(it)
    it.close()  # stopping early must not leave the prefetch thread behind
    assert not [t for t in threading.enumerate() if t.name == "saescope-store-prefetch"]


def test_docs_are_returned_in_the_order_asked(store) -> None:
    got = store.docs([17, 0, 3, 17])
    for record, d in zip(got, [17, 0, 3, 17]):
        assert record == doc(d).record
    assert store.docs(torch.tensor([5]))[0].doc_id == 5
    rows = store.get([100])
    record = store.docs(rows.doc_ids)[0]
    assert record.token_ids[int(rows.positions[0])] == int(rows.token_ids[0])  # the row in context
    with pytest.raises(StoreError, match="doc 99999 is not in the store"):
        store.docs([99999])


def test_stats_match_the_rows(store) -> None:
    acts = store.get(np.arange(ROWS)).activations.double().numpy()
    stats = store.stats
    assert stats.count == ROWS
    np.testing.assert_allclose(stats.mean.numpy(), acts.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.var.numpy(), acts.var(0), rtol=1e-9)


def test_stats_lagging_the_manifest_are_rebuilt_from_rank_files(tmp_path) -> None:
    out = tmp_path / "a"
    with open_writer(out, target_rows=200) as w:
        feed(w, max_docs=10)
    good = ActivationStore(out).stats
    # as if killed between writing manifest.json and stats.safetensors
    stale = tmp_path / "stale"
    with open_writer(stale, target_rows=5) as w:
        feed(w)
    (out / "stats.safetensors").write_bytes((stale / "stats.safetensors").read_bytes())
    rebuilt = ActivationStore(out).stats
    assert rebuilt.count == good.count and torch.allclose(rebuilt.mean, good.mean)
    # and when nothing consistent is left, a clear error
    (out / "ranks" / "rank-0.json").unlink()
    with pytest.raises(StoreError, match=r"does not match manifest\.json"):
        _ = ActivationStore(out).stats


def test_missing_store_and_foreign_format(tmp_path) -> None:
    with pytest.raises(StoreError, match=r"no activation store at .* \(manifest.json missing\)"):
        ActivationStore(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "saescope.activations/99"}))
    with pytest.raises(StoreError, match=r"saescope\.activations/99"):
        ActivationStore(tmp_path)


def test_corruption_is_named(tmp_path) -> None:
    out = tmp_path / "a"
    with open_writer(out, target_rows=300, shard_rows=40) as w:
        feed(w)
    shard = read_manifest(out).shards[3]
    path = out / shard.path
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit of one row
    path.write_bytes(bytes(data))
    ActivationStore(out, verify="size")  # same size: only the checksum can tell
    with pytest.raises(StoreError) as e:
        ActivationStore(out, verify="full")
    assert str(e.value) == "shard shards/shard-r0-00003.safetensors is corrupt (sha256 mismatch)"
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(StoreError, match=r"shard shards/shard-r0-00003.safetensors is corrupt \(size"):
        ActivationStore(out)
    store = ActivationStore(out, verify="none")
    with pytest.raises(StoreError, match="shard-r0-00003"):
        store.get([int(sum(s.rows for s in store.manifest.shards[:3]))])
    path.unlink()
    with pytest.raises(StoreError, match=r"shard shards/shard-r0-00003\.safetensors of .* is missing"):
        ActivationStore(out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shuffle", ["random", "buffer"])
def test_cuda_batches_equal_cpu_batches(store, shuffle) -> None:
    cpu = list(store.batches(64, shuffle=shuffle, seed=4, buffer_rows=100))
    gpu = list(
        store.batches(64, shuffle=shuffle, seed=4, buffer_rows=100, device="cuda", dtype=torch.float16)
    )
    assert all(g.is_cuda and g.dtype == torch.float16 for g in gpu)
    assert all(torch.equal(g.cpu(), c.half()) for g, c in zip(gpu, cpu))
