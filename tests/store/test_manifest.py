"""The on-disk contract: manifest keys, shard tensors, docs tables, checksums, cuts at doc boundaries."""

from __future__ import annotations

import hashlib
import json
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import safetensors.torch
import torch

from saescope.errors import StoreError
from saescope.store import FORMAT, merge_manifest, read_manifest
from saescope.store.manifest import first_difference
from saescope.store.shardfile import ALIGN

from .synthetic import IDENTITY, D, doc_length, expected, feed, open_writer

TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@pytest.fixture(params=["bfloat16", "float16", "float32"])
def store(request, tmp_path):
    out = tmp_path / "acts"
    with open_writer(out, target_rows=333, shard_rows=40, dtype=request.param) as w:
        feed(w, docs_per_add=4)
    return out, request.param


def test_manifest_has_the_contract_keys(store) -> None:
    out, dtype = store
    m = json.loads((out / "manifest.json").read_text())
    for key in ("format", "model", "revision", "hookpoint", "hookpoint_alias", "d_model", "dtype", "rows"):
        assert key in m
    assert m["format"] == FORMAT == "saescope.activations/1"
    assert (m["model"], m["revision"], m["hookpoint"], m["hookpoint_alias"]) == (
        "tiny-model",
        None,
        "model.layers.1",
        "resid_post:1",
    )
    assert m["d_model"] == D and m["dtype"] == dtype and m["rows"] == 333 and m["complete"] is True
    assert m["capture"] == {"tokens": 333, "note": "synthetic"}
    assert m["identity"]["context_len"] == IDENTITY["context_len"] and m["identity"]["dtype"] == dtype
    assert set(m["stats"]) >= {"count", "mean_squared_norm", "norm_mean", "norm_std"}
    assert m["stats"]["count"] == 333
    assert sum(s["rows"] for s in m["shards"]) == 333
    for s in m["shards"]:
        assert set(s) >= {"path", "rows", "sha256", "docs", "first_doc", "last_doc", "rank"}
    assert [s["path"] for s in m["shards"]] == [
        f"shards/shard-r0-{i:05d}.safetensors" for i in range(len(m["shards"]))
    ]
    stats = safetensors.torch.load_file(out / "stats.safetensors")
    assert stats["mean"].shape == (D,) and stats["var"].shape == (D,)


def test_shards_hold_the_contract_tensors_and_checksums(store) -> None:
    out, dtype = store
    m = read_manifest(out)
    exp = expected(333)
    seen: set[tuple[int, int]] = set()
    row = 0
    for s in m.shards:
        data = (out / s.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.sha256 and len(data) == s.nbytes
        assert hashlib.sha256((out / s.docs).read_bytes()).hexdigest() == s.docs_sha256
        # the official safetensors reader accepts the file (header padded to a page)
        t = safetensors.torch.load_file(out / s.path)
        assert set(t) == {"activations", "token_ids", "doc_ids", "positions"}
        assert t["activations"].dtype == TORCH_DTYPES[dtype] and t["activations"].shape == (s.rows, D)
        assert t["token_ids"].dtype == torch.int32 and t["token_ids"].shape == (s.rows,)
        assert t["doc_ids"].dtype == torch.int64 and t["positions"].dtype == torch.int32
        (header_len,) = struct.unpack("<Q", data[:8])
        assert (8 + header_len) % ALIGN == 0
        assert torch.equal(t["activations"], exp.activations[row : row + s.rows].to(TORCH_DTYPES[dtype]))
        assert torch.equal(t["token_ids"], exp.token_ids[row : row + s.rows])
        assert torch.equal(t["positions"], exp.positions[row : row + s.rows])
        row += s.rows
        pairs = set(zip(t["doc_ids"].tolist(), t["positions"].tolist()))
        assert len(pairs) == s.rows and not pairs & seen
        seen |= pairs
        assert (s.first_doc, s.last_doc) == (t["doc_ids"][0].item(), t["doc_ids"][-1].item())
    assert row == 333


def test_docs_table_holds_exactly_the_shards_docs(store) -> None:
    out, _ = store
    for s in read_manifest(out).shards:
        table = pq.read_table(out / s.docs)
        assert table.schema.field("doc_id").type == pa.int64()
        assert table.schema.field("token_ids").type == pa.list_(pa.int32())
        assert table.schema.field("text").type == pa.string()
        assert table.schema.field("source").type == pa.string()
        shard_docs = sorted(set(safetensors.torch.load_file(out / s.path)["doc_ids"].tolist()))
        assert table.column("doc_id").to_pylist() == shard_docs
        for d, tokens, text in zip(
            shard_docs, table.column("token_ids").to_pylist(), table.column("text").to_pylist()
        ):
            assert len(tokens) == 2 * doc_length(d) + 1 and text == f"text of doc {d}"


def test_shards_are_cut_at_doc_boundaries(tmp_path) -> None:
    out = tmp_path / "acts"
    with open_writer(out, target_rows=800, shard_rows=25) as w:
        feed(w, docs_per_add=7)
    m = read_manifest(out)
    ends = []
    for s in m.shards[:-1]:
        doc_ids = safetensors.torch.load_file(out / s.path)["doc_ids"]
        last_doc_rows = int((doc_ids == s.last_doc).sum())
        # a shard reaches shard_rows and exceeds it by less than its last doc
        assert s.rows >= 25 and s.rows - last_doc_rows < 25
        assert last_doc_rows == doc_length(s.last_doc)  # that doc is whole: never split
        ends.append(s.last_doc)
    firsts = [s.first_doc for s in m.shards[1:]]
    assert firsts == [e + 1 for e in ends]


def test_merge_manifest_is_idempotent(store) -> None:
    out, _ = store
    before = json.loads((out / "manifest.json").read_text())
    merged = merge_manifest(out)
    assert json.loads((out / "manifest.json").read_text()) == before == merged.to_dict()


def test_missing_and_foreign_manifests_are_refused(tmp_path) -> None:
    with pytest.raises(StoreError, match=r"no activation store at .* \(manifest.json missing\)"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/2"}))
    with pytest.raises(StoreError, match="format 'other/2'"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_first_difference_names_the_first_differing_setting() -> None:
    assert first_difference({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None
    assert first_difference({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "c": 4}) == ("b", 2, 5)
    assert first_difference({"a": 1}, {"a": 1, "z": 0}) == ("z", "unset", 0)
    assert first_difference({"a": 1, "y": 0}, {"a": 1}) == ("y", 0, "unset")
