"""`saescope capture` on a tiny random-init Llama: rows against an independent recomputation, the
store contract, resume after SIGKILL, extension, sibling stores, torchrun, and bad input."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import saescope.capture
import saescope.positions
import saescope.store.writer
from saescope import cli
from saescope.capture import CaptureResult, capture
from saescope.config import CaptureConfig, to_jsonable
from saescope.errors import SaescopeError, StoreError
from saescope.files import file_sha256
from saescope.store import ActivationStore, Batch, read_manifest
from tests.builders import save_tiny_model, tiny_tokenizer, torchrun_two_ranks

# words that the tiny tokenizer's merges cover in part ("Ġthe", "Ġcat", "ĠParis", …)
WORDS = ["the", "cat", "is", "on", "a", "mat", "Paris", "far", "away", "river", "stone", "light"]
WORDS += ["house", "green", "blue", "there", "another", "matter", "character"]
EOS = tiny_tokenizer().eos_token_id
BOS = tiny_tokenizer().bos_token_id


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 short documents (~16k tokens of the tiny tokenizer) as `.jsonl`."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    lines = []
    for _ in range(90):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 80))]
        lines.append(json.dumps({"text": " ".join(words).capitalize() + "."}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama 256 wide: a float32 row is 1 KiB, so `--shard-mb 1` cuts a shard every ~1k rows."""
    return save_tiny_model(tmp_path_factory.mktemp("wide") / "wide-llama", num_layers=2, hidden=256)


@pytest.fixture(scope="module")
def reference_model(tiny_model_dir: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def settings(model: Path, corpus: Path, out: Path, **kw: Any) -> CaptureConfig:
    base: dict[str, Any] = {
        "model": str(model),
        "dataset": str(corpus),
        "hookpoints": ("resid_post:1",),
        "device": "cpu",
        "context_len": 32,
        "batch_size": 4,
        "store_dtype": "float32",
        "shard_mb": 1,
        "out": out,
    }
    base.update(kw)
    return CaptureConfig(**base)


def cli_args(cfg: CaptureConfig) -> list[str]:
    """The `saescope capture` arguments that make `cfg`."""
    args = ["capture"]
    for key, value in to_jsonable(cfg).items():
        flag = "--hookpoint" if key == "hookpoints" else "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            args += [flag, ",".join(value)]
        else:
            args += [flag, str(value)]
    return args


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("base") / "acts"
    capture(settings(tiny_model_dir, corpus, out, tokens=1500))
    return out


# ---------------------------------------------------------------------------------------- helpers


def all_rows(path: Path) -> tuple[ActivationStore, Batch]:
    store = ActivationStore(path, verify="full")
    return store, store.get(np.arange(len(store)))


def storable(token_ids: list[int], include_bos: bool = False) -> list[int]:
    """Positions a window input stores: all but BOS (unless included) and the separators."""
    return [i for i in range(0 if include_bos else 1, len(token_ids)) if token_ids[i] != EOS]


def hidden(model: Any, token_ids: list[int], layer: int) -> torch.Tensor:
    """resid_post of `layer` (the input of layer + 1) recomputed with `output_hidden_states`."""
    assert layer + 2 < len(model.model.layers) + 1, "the last entry of hidden_states is normed"
    with torch.no_grad():
        out = model(input_ids=torch.tensor([token_ids]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0]


def assert_rows_recomputed(model: Any, store: ActivationStore, rows: Batch, layer: int) -> None:
    """Every row equals the model's hidden state at its (doc, position), its token that of the doc."""
    docs = store.docs(sorted(set(rows.doc_ids.tolist())))
    for doc in docs:
        mask = rows.doc_ids == doc.doc_id
        pos = rows.positions[mask].long()
        assert torch.equal(rows.token_ids[mask], torch.tensor(doc.token_ids, dtype=torch.int32)[pos])
        want = hidden(model, list(doc.token_ids), layer)[pos]
        torch.testing.assert_close(rows.activations[mask].float(), want, rtol=0, atol=1e-6)


def assert_same_rows(a: Path, b: Path) -> None:
    (_, ra), (_, rb) = all_rows(a), all_rows(b)
    assert ra.activations.numpy().tobytes() == rb.activations.numpy().tobytes()
    for name in ("doc_ids", "positions", "token_ids"):
        assert torch.equal(getattr(ra, name), getattr(rb, name)), name


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def one_error_line(err: str, prog: str = "saescope capture") -> str:
    """The one error line on stderr (progress bars, which also go there, aside)."""
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)  # cursor moves of nested progress bars
    lines = [line for line in re.split(r"[\r\n]+", plain) if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------ correctness


def test_rows_equal_the_models_hidden_states(base_store: Path, corpus: Path, reference_model: Any) -> None:
    store, rows = all_rows(base_store)
    assert len(store) == 1500 and store.complete
    assert_rows_recomputed(reference_model, store, rows, layer=1)
    pairs = list(zip(rows.doc_ids.tolist(), rows.positions.tolist()))
    assert len(set(pairs)) == len(pairs) == 1500
    # the inputs in order, each with every storable position except the last one, cut at 1500 rows
    doc_ids = sorted(set(rows.doc_ids.tolist()))
    assert doc_ids == list(range(len(doc_ids)))
    for doc in store.docs(doc_ids):
        assert doc.token_ids[0] == BOS and len(doc.token_ids) == 32 and doc.text and doc.source
        got = rows.positions[rows.doc_ids == doc.doc_id].tolist()
        full = storable(list(doc.token_ids))
        assert got == full if doc.doc_id != doc_ids[-1] else got == full[: len(got)]
    # consecutive windows continue the token stream (documents packed, separated by EOS)
    docs = store.docs(doc_ids)
    stream = [t for d in docs for t in d.token_ids[1:]]
    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    tok = tiny_tokenizer()
    expected: list[int] = []
    for i, text in enumerate(texts):
        expected += ([EOS] if i else []) + tok(text, add_special_tokens=False)["input_ids"]
        if len(expected) >= len(stream):
            break
    assert stream == expected[: len(stream)]


def test_manifest_and_shards_follow_the_contract(
    base_store: Path, tiny_model_dir: Path, corpus: Path
) -> None:
    manifest = json.loads((base_store / "manifest.json").read_text())
    assert manifest["format"] == "saescope.activations/1"
    assert manifest["model"] == str(tiny_model_dir.resolve())
    assert manifest["revision"] is None
    assert manifest["hookpoint"] == "model.layers.1" and manifest["hookpoint_alias"] == "resid_post:1"
    assert (manifest["d_model"], manifest["dtype"], manifest["rows"]) == (32, "float32", 1500)
    assert manifest["capture"] == to_jsonable(
        settings(tiny_model_dir.resolve(), corpus.resolve(), base_store, tokens=1500)
    )
    assert sum(s["rows"] for s in manifest["shards"]) == 1500
    for shard in manifest["shards"]:
        path = base_store / shard["path"]
        assert file_sha256(path) == shard["sha256"]
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
        assert set(tensors) == {"activations", "token_ids", "doc_ids", "positions"}
        assert tensors["activations"].shape == (shard["rows"], 32)
        assert tensors["activations"].dtype == torch.float32
        assert tensors["token_ids"].dtype == torch.int32 and tensors["positions"].dtype == torch.int32
        assert tensors["doc_ids"].dtype == torch.int64


def test_stats_describe_the_stored_rows(base_store: Path) -> None:
    store, rows = all_rows(base_store)
    acts = rows.activations.double()
    stats = store.stats
    assert stats.count == 1500
    torch.testing.assert_close(stats.mean.double(), acts.mean(0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(stats.var.double(), acts.var(0, unbiased=False), rtol=1e-7, atol=1e-12)


def test_bos_is_stored_only_when_asked(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path, base_store: Path, reference_model: Any
) -> None:
    _, without = all_rows(base_store)
    assert 0 not in without.positions.tolist()
    capture(settings(tiny_model_dir, corpus, tmp_path / "bos", tokens=200, include_bos=True))
    store, rows = all_rows(tmp_path / "bos")
    assert_rows_recomputed(reference_model, store, rows, layer=1)
    for doc in store.docs(sorted(set(rows.doc_ids.tolist()))):
        got = rows.positions[rows.doc_ids == doc.doc_id].tolist()
        assert got[0] == 0 and rows.token_ids[rows.doc_ids == doc.doc_id][0] == BOS
        full = storable(list(doc.token_ids), include_bos=True)
        assert got == full[: len(got)]


def test_sample_fraction_keeps_about_that_fraction(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path, reference_model: Any
) -> None:
    capture(settings(tiny_model_dir, corpus, tmp_path / "s", tokens=600, sample_fraction=0.25))
    store, rows = all_rows(tmp_path / "s")
    assert len(store) == 600
    assert_rows_recomputed(reference_model, store, rows, layer=1)
    doc_ids = sorted(set(rows.doc_ids.tolist()))
    kept = total = 0
    for doc in store.docs(doc_ids[:-1]):  # the last one is cut at the target
        got = rows.positions[rows.doc_ids == doc.doc_id].tolist()
        full = storable(list(doc.token_ids))
        assert got == sorted(set(got)) and set(got) <= set(full)
        assert abs(len(got) - 0.25 * len(full)) <= 0.5
        kept, total = kept + len(got), total + len(full)
    assert total > 2000 and abs(kept / total - 0.25) < 0.01
    assert len(doc_ids) > 3 * 600 / 31  # ~4x as many inputs as without sampling


# ------------------------------------------------------------------------- resume, extend, refuse


def test_sigkill_then_rerun_equals_an_uninterrupted_capture(
    tmp_path: Path, wide_model_dir: Path, corpus: Path
) -> None:
    killed, direct = tmp_path / "killed", tmp_path / "direct"
    cfg = settings(
        wide_model_dir, corpus, killed, hookpoints=("resid_post:0",), tokens=10_000, context_len=64
    )
    command = [sys.executable, "-m", "saescope", *cli_args(cfg)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    log_path = tmp_path / "killed.log"  # a file, not a pipe: a full pipe would stall the child
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    rank_file = killed / "ranks" / "rank-0.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if json.loads(rank_file.read_text())["shards"]:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        assert proc.poll() is None, f"the capture ended before it could be killed: {log_path.read_text()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    # the rank file is the commit point (manifest.json may lag one shard behind it)
    interrupted = json.loads(rank_file.read_text())
    assert 0 < interrupted["rows"] < 10_000 and not interrupted["complete"]

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert f"stored 10,000 rows of resid_post:0 (d_model 256) in {killed}" in rerun.stdout
    resumed = read_manifest(killed)
    assert resumed.complete and resumed.rows == 10_000
    assert [s.to_dict() for s in resumed.shards[: len(interrupted["shards"])]] == interrupted["shards"]
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp")]

    capture(
        settings(wide_model_dir, corpus, direct, hookpoints=("resid_post:0",), tokens=10_000, context_len=64)
    )
    assert_same_rows(killed, direct)
    store, rows = all_rows(killed)
    pairs = set(zip(rows.doc_ids.tolist(), rows.positions.tolist()))
    assert len(pairs) == 10_000
    ids = sorted(set(rows.doc_ids.tolist()))
    assert [d.text for d in store.docs(ids)] == [d.text for d in ActivationStore(direct).docs(ids)]


def test_the_last_forward_runs_only_over_the_inputs_it_stores(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A capture of 40 rows with a batch of 8 windows (~31 rows each) runs two windows through the
    model, not eight; every window that went through the model has rows in the store."""
    seen: list[int] = []
    real = saescope.positions.collate

    def spy(batch: Any, pad_id: int, device: torch.device) -> Any:
        seen.append(len(batch))
        return real(batch, pad_id, device)

    monkeypatch.setattr(saescope.positions, "collate", spy)
    capture(settings(tiny_model_dir, corpus, tmp_path / "small", tokens=40, batch_size=8))
    assert seen == [2]
    capture(settings(tiny_model_dir, corpus, tmp_path / "big", tokens=300, batch_size=8))
    assert seen[1] == 8 and seen[2] < 8
    (_, small), (_, big) = all_rows(tmp_path / "small"), all_rows(tmp_path / "big")
    assert len(set(big.doc_ids.tolist())) == seen[1] + seen[2]
    assert torch.equal(small.activations, big.activations[:40])


def test_a_corrupt_store_is_neither_resumed_nor_extended(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path
) -> None:
    out = tmp_path / "flipped"
    capture(settings(tiny_model_dir, corpus, out, tokens=1000))
    shard = out / read_manifest(out).shards[0].path
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    before = snapshot(out / "shards")
    with pytest.raises(StoreError, match=r"cannot resume or extend: .*sha256 mismatch"):
        capture(settings(tiny_model_dir, corpus, out, tokens=2000))
    assert snapshot(out / "shards") == before


def test_more_tokens_extend_the_store(tmp_path: Path, tiny_model_dir: Path, corpus: Path) -> None:
    out, direct = tmp_path / "grown", tmp_path / "direct"
    capture(settings(tiny_model_dir, corpus, out, tokens=1000))
    first = snapshot(out / "shards")
    _, small = all_rows(out)
    result = capture(settings(tiny_model_dir, corpus, out, tokens=2000))
    assert [s.rows for s in result.stores] == [2000]
    assert {k: v for k, v in snapshot(out / "shards").items() if k in first} == first
    store, grown = all_rows(out)
    assert len(store) == 2000 and store.complete

    # A direct capture holds the same rows, except that the input cut at 1000 rows stays cut (the
    # store resumes after the last input it committed): compare against a direct capture of enough
    # rows, with that input's tail taken out.
    capture(settings(tiny_model_dir, corpus, direct, tokens=2000 + 32))
    _, ref = all_rows(direct)
    cut = int(small.doc_ids[-1])
    cut_positions = set(small.positions[small.doc_ids == cut].tolist())
    keep = torch.tensor(
        [d != cut or p in cut_positions for d, p in zip(ref.doc_ids.tolist(), ref.positions.tolist())]
    )
    for name in ("activations", "doc_ids", "positions", "token_ids"):
        assert torch.equal(getattr(grown, name), getattr(ref, name)[keep][:2000]), name
    assert torch.equal(grown.activations[:1000], small.activations)

    # asking for fewer or as many rows again changes nothing
    before = snapshot(out / "shards")
    assert [s.rows for s in capture(settings(tiny_model_dir, corpus, out, tokens=1500)).stores] == [2000]
    assert snapshot(out / "shards") == before


def test_other_settings_are_refused_and_the_store_untouched(
    tmp_path: Path,
    tiny_model_dir: Path,
    corpus: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "acts"
    cfg = settings(tiny_model_dir, corpus, out, tokens=300)
    assert cli.main(cli_args(cfg)) == 0
    capsys.readouterr()
    before = snapshot(out)
    assert cli.main([*cli_args(cfg), "--context-len", "16"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "other settings" in line and "context_len: 32 there, 16 here" in line
    assert snapshot(out) == before
    # a relative path to the same model and corpus is the same setting
    monkeypatch.chdir(tmp_path)
    model, text = Path(os.path.relpath(tiny_model_dir)), Path(os.path.relpath(corpus))
    same = settings(model, text, Path("acts"), tokens=300)
    assert cli.main(cli_args(same)) == 0
    assert "stored 300 rows" in capsys.readouterr().out
    assert snapshot(out / "shards") == {
        k[len("shards/") :]: v for k, v in before.items() if k.startswith("shards/")
    }


def test_several_hookpoints_give_sibling_stores(
    tmp_path: Path,
    tiny_model_dir: Path,
    corpus: Path,
    reference_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "acts"
    hookpoints = ("resid_post:0", "mlp_out:1", "resid_pre:2")
    cfg = settings(tiny_model_dir, corpus, out, hookpoints=hookpoints, tokens=400)
    assert cli.main(cli_args(cfg)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["mlp_out_1", "resid_post_0", "resid_pre_2"]
    assert printed == [
        f"stored 400 rows of {h} (d_model 32) in {out / h.replace(':', '_')}" for h in hookpoints
    ]
    stores = {p.name: all_rows(p) for p in out.iterdir()}
    for alias, hookpoint in zip(hookpoints, ["model.layers.0", "model.layers.1.mlp", "model.layers.2:input"]):
        store, rows = stores[alias.replace(":", "_")]
        assert store.hookpoint == hookpoint and store.manifest.hookpoint_alias == alias
        assert len(store) == 400 and store.complete
    base_rows = stores["resid_post_0"][1]
    for _, rows in stores.values():
        for field in ("doc_ids", "positions", "token_ids"):
            assert torch.equal(getattr(rows, field), getattr(base_rows, field))
    # resid_pre:2 is the output of layer 1; mlp_out:1 is read with a hook of our own
    store, rows = stores["resid_post_0"]
    assert_rows_recomputed(reference_model, store, rows, layer=0)
    store, rows = stores["resid_pre_2"]
    assert_rows_recomputed(reference_model, store, rows, layer=1)
    store, rows = stores["mlp_out_1"]
    seen: list[torch.Tensor] = []
    handle = reference_model.model.layers[1].mlp.register_forward_hook(lambda _m, _a, o: seen.append(o))
    try:
        for doc in store.docs(sorted(set(rows.doc_ids.tolist()))):
            seen.clear()
            hidden(reference_model, list(doc.token_ids), 0)
            mask = rows.doc_ids == doc.doc_id
            want = seen[0][0][rows.positions[mask].long()]
            torch.testing.assert_close(rows.activations[mask], want, rtol=0, atol=1e-6)
    finally:
        handle.remove()

    # an --out holding the store of one hookpoint is not filled with sibling stores
    single = tmp_path / "single"
    capture(settings(tiny_model_dir, corpus, single, tokens=100))
    before = snapshot(single)
    assert cli.main(cli_args(dataclasses.replace(cfg, out=single))) == 2
    assert "holds the store of one hookpoint" in one_error_line(capsys.readouterr().err)
    assert snapshot(single) == before


def test_disk_full_keeps_what_was_written_and_the_rerun_completes(
    tmp_path: Path,
    wide_model_dir: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, direct = tmp_path / "acts", tmp_path / "direct"
    cfg = settings(wide_model_dir, corpus, out, hookpoints=("resid_post:0",), tokens=3000, context_len=64)
    real_write_temp = saescope.store.writer.write_temp

    def full_at_second_shard(final: Path, chunks: Any) -> Any:
        if final.name.startswith("shard-r0-00001"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_temp(final, chunks)

    monkeypatch.setattr(saescope.store.writer, "write_temp", full_at_second_shard)
    assert cli.main(cli_args(cfg)) == 2
    line = one_error_line(capsys.readouterr().err)
    kept = read_manifest(out)
    assert len(kept.shards) == 1 and 0 < kept.rows < 3000
    assert "disk full" in line and f"{kept.rows} rows are safely stored" in line
    ActivationStore(out, verify="full")

    monkeypatch.setattr(saescope.store.writer, "write_temp", real_write_temp)
    assert cli.main(cli_args(cfg)) == 0
    capture(
        settings(wide_model_dir, corpus, direct, hookpoints=("resid_post:0",), tokens=3000, context_len=64)
    )
    assert_same_rows(out, direct)


# ------------------------------------------------------------------------------------------ ranks


def test_torchrun_two_ranks_write_one_store(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path, reference_model: Any
) -> None:
    out = tmp_path / "acts"
    proc = torchrun_two_ranks(cli_args(settings(tiny_model_dir, corpus, out, tokens=1000)), tmp_path)
    # rank 0 reports the whole store, once
    assert proc.stdout.splitlines() == [f"stored 1,000 rows of resid_post:1 (d_model 32) in {out}"]

    store, rows = all_rows(out)
    manifest = store.manifest
    assert len(store) == 1000 and manifest.complete and manifest.header.world_size == 2
    assert_rows_recomputed(reference_model, store, rows, layer=1)
    assert len(set(zip(rows.doc_ids.tolist(), rows.positions.tolist()))) == 1000
    for rank in (0, 1):
        shards = [s for s in manifest.shards if s.rank == rank]
        assert sum(s.rows for s in shards) == 500
        doc_ids = []
        for shard in shards:
            with safe_open(str(out / shard.path), framework="pt") as f:
                doc_ids += f.get_tensor("doc_ids").tolist()
        doc_ids = sorted(set(doc_ids))
        # rank r takes inputs r, r + 2, r + 4, … in order
        assert doc_ids == list(range(rank, rank + 2 * len(doc_ids), 2))
    acts = rows.activations.double()
    torch.testing.assert_close(store.stats.mean.double(), acts.mean(0), rtol=1e-9, atol=1e-12)
    assert manifest.stats["count"] == 1000


# ------------------------------------------------------------------------------------- bad input


def test_unknown_model_and_hookpoint_fail_before_anything_is_written(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "acts"
    assert cli.main(cli_args(settings(tmp_path / "no-model", corpus, out))) == 2
    assert "cannot load model" in one_error_line(capsys.readouterr().err)
    assert cli.main(cli_args(settings(tiny_model_dir, corpus, out, hookpoints=("resid_post:9",)))) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "unknown hookpoint 'resid_post:9'" in line
    assert all(f"{form}:0..3" in line for form in ("resid_pre", "resid_post", "mlp_out", "attn_out"))
    assert not out.exists()


def test_missing_or_empty_corpus_leaves_no_store_behind(
    tmp_path: Path, tiny_model_dir: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "acts"
    assert cli.main(cli_args(settings(tiny_model_dir, tmp_path / "missing.jsonl", out))) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cli.main(cli_args(settings(tiny_model_dir, empty, out))) == 2
    assert "is empty" in one_error_line(capsys.readouterr().err)
    assert not out.exists()
    # the corrected command then works on the same --out
    assert cli.main(cli_args(settings(tiny_model_dir, corpus, out, tokens=100))) == 0
    assert read_manifest(out).rows == 100


def test_bytes_that_are_not_utf8_are_replaced_with_a_warning(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Le caf\u00e9 est sur la rivi\u00e8re, the cat is on the mat.\n".encode("latin-1") * 20)
    with caplog.at_level(logging.WARNING):
        result: CaptureResult = capture(settings(tiny_model_dir, path, tmp_path / "acts", tokens=100))
    assert result.stores[0].rows == 100
    assert any("not valid UTF-8" in r.getMessage() for r in caplog.records)
    store, _ = all_rows(tmp_path / "acts")
    assert "\ufffd" in store.docs([0])[0].text


def test_a_corrupt_shard_is_named_when_training_from_it(
    tmp_path: Path, base_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acts = tmp_path / "acts"
    shutil.copytree(base_store, acts)
    shard = acts / read_manifest(acts).shards[0].path
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    argv = ["train", "--acts", str(acts), "--out", str(tmp_path / "sae"), "--latents", "64", "--k", "4"]
    assert cli.main([*argv, "--device", "cpu"]) == 2
    line = one_error_line(capsys.readouterr().err, "saescope train")
    assert "shards/shard-r0-00000.safetensors" in line and "corrupt" in line


def test_a_wrong_dataset_fails_before_the_model_loads(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(saescope.capture, "load_model", lambda *a: pytest.fail("the model was loaded"))
    with pytest.raises(SaescopeError, match="does not exist"):
        capture(settings(tiny_model_dir, tmp_path / "missing.txt", tmp_path / "out"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(SaescopeError, match="empty"):
        capture(settings(tiny_model_dir, tmp_path / "empty.txt", tmp_path / "out"))
    assert not (tmp_path / "out").exists()
