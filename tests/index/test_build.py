"""`saescope index`: every nonzero exactly, the files' contract, store = text, several SAEs in one
pass, resume after SIGKILL, two torchrun ranks = one process, and folders it must refuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from saescope.capture import capture
from saescope.config import CaptureConfig
from saescope.index import LatentIndexError, read_header
from saescope.index.finalize import remove_temp_files
from saescope.index.sentences import ends_sentence
from saescope.store.docs import DocsTable
from tests.builders import torchrun_two_ranks

from .builders import all_postings, build, dense_of, settings, table_of, write_corpus
from .reference import Reference

D_SAE = 48


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def assert_same_index(a: Path, b: Path) -> None:
    """Same postings, tokens, documents, statistics and relations."""
    for x, y in zip(all_postings(a), all_postings(b)):
        assert np.array_equal(x, y)
    for folder in ("tokens", "docs"):
        assert table_of(a, folder).equals(table_of(b, folder)), folder
    for name in ("latents", "top", "cooccurrence", "neighbours", "token_counts", "map", "logits"):
        assert pq.read_table(a / f"{name}.parquet").equals(pq.read_table(b / f"{name}.parquet")), name


def cli_args(sae: Path, out: Path, corpus: Path, **kw: object) -> list[str]:
    cfg = settings([sae], [out], corpus, **kw)
    args = ["index", str(sae), "--out", str(out), "--dataset", str(corpus), "--device", "cpu"]
    for name in (
        "tokens",
        "context_len",
        "batch_size",
        "chunk_tokens",
        "bucket_latents",
        "map",
        "map_clusters",
    ):
        args += ["--" + name.replace("_", "-"), str(getattr(cfg, name))]
    return args


# ------------------------------------------------------------------------------------- contents


def test_every_nonzero_round_trips_exactly(built: Path, ref: Reference) -> None:
    assert np.array_equal(dense_of(built, ref.keys, D_SAE), ref.dense)
    assert (ref.dense > 0).sum() == read_header(built).nonzeros == 600 * 5  # TopK: k per token
    for path in sorted((built / "postings").glob("*.parquet")):
        table = pq.read_table(path)
        latent, token = table.column("latent").to_numpy(), table.column("token").to_numpy()
        bucket = int(path.stem.split("-")[1])
        assert set(latent // 8) == {bucket}
        assert np.all(np.lexsort((token, latent)) == np.arange(len(latent)))  # sorted by (latent, token)
        assert table.schema.field("activation").type == "halffloat"


def test_float32_values_are_kept_exactly(world: dict[str, Path], ref: Reference, tmp_path: Path) -> None:
    build([world["sae"]], [tmp_path / "index"], world["corpus"], batch_size=1, values="float32")
    assert np.array_equal(dense_of(tmp_path / "index", ref.keys, D_SAE), ref.exact)
    assert not np.array_equal(ref.exact, ref.dense)  # float16 would not have been


def naive_sentence_starts(tokenizer: object, ids: list[int]) -> list[int]:
    """Where each position's sentence starts, from each token's text, one position at a time."""
    specials = set(tokenizer.all_special_ids)  # type: ignore[attr-defined]
    starts, current = [], 0
    for p in range(len(ids)):
        if p > 0 and (ids[p - 1] in specials or ends_sentence(tokenizer.decode([ids[p - 1]]))):  # type: ignore[attr-defined]
            current = p
        starts.append(current)
    return starts


def test_tokens_and_docs_tables_hold_every_indexed_token(
    built: Path, ref: Reference, world: dict[str, Path]
) -> None:
    tokens = table_of(built, "tokens")
    assert tokens.column("token").to_numpy().tolist() == ref.keys.tolist()
    assert tokens.column("doc_id").to_numpy().tolist() == ref.doc_ids.tolist()
    assert tokens.column("position").to_numpy().tolist() == ref.positions.tolist()
    assert tokens.column("token_id").to_numpy().tolist() == ref.token_ids.tolist()
    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    starts = {d: naive_sentence_starts(tokenizer, ids) for d, ids in ref.docs.items()}
    want = [d * ref.stride + starts[d][p] for d, p in zip(ref.doc_ids, ref.positions)]
    assert tokens.column("sentence").to_numpy().tolist() == want
    records = {}
    for path in (built / "docs").glob("*.parquet"):
        table = DocsTable.read(path)
        records.update({d: table.get(d) for d in table.doc_ids})
    assert sorted(records) == sorted(ref.docs)
    assert all(list(records[d].token_ids) == ref.docs[d] for d in ref.docs)


def test_index_json_follows_the_contract(built: Path, ref: Reference, world: dict[str, Path]) -> None:
    header = json.loads((built / "index.json").read_text())
    assert header["format"] == "saescope.index/1"
    assert header["sae"] == str(world["sae"].resolve())
    assert header["cfg"] == json.loads((world["sae"] / "cfg.json").read_text())
    assert (header["model"], header["hookpoint"]) == (str(world["model"]), "model.layers.1")
    assert (header["tokens"], header["docs"], header["d_sae"]) == (600, len(ref.docs), D_SAE)
    assert header["complete"] and header["source"] == "text" and header["start"] == 0
    assert not [p for p in ("progress", "chunks", "parts") if (built / p).exists()]


# ----------------------------------------------------------------------------------- sources


def test_a_store_gives_the_same_index_as_its_text(
    world: dict[str, Path], built: Path, tmp_path: Path
) -> None:
    acts = tmp_path / "acts"
    capture(
        CaptureConfig(
            model=str(world["model"]),
            dataset=str(world["corpus"]),
            hookpoints=("resid_post:1",),
            device="cpu",
            context_len=24,
            batch_size=1,
            store_dtype="float32",
            tokens=600,
            out=acts,
        )
    )
    out = tmp_path / "index"
    result = build([world["sae"]], [out], None, acts=acts, batch_size=1)
    assert read_header(out).source == "store" and result.indexes[0].tokens == 600
    for name in ("postings", "tokens", "docs"):
        if name == "postings":
            for x, y in zip(all_postings(out), all_postings(built)):
                assert np.array_equal(x, y)
        else:
            assert table_of(out, name).equals(table_of(built, name)), name
    assert pq.read_table(out / "latents.parquet").equals(pq.read_table(built / "latents.parquet"))


def test_several_saes_share_one_pass(world: dict[str, Path], built: Path, tmp_path: Path) -> None:
    both = build(
        [world["sae"], world["other_sae"]], [tmp_path / "a", tmp_path / "b"], world["corpus"], batch_size=1
    )
    alone = build([world["other_sae"]], [tmp_path / "c"], world["corpus"], batch_size=1)
    assert [s.tokens for s in both.indexes] == [600, 600] and alone.indexes[0].tokens == 600
    assert_same_index(tmp_path / "a", built)
    assert_same_index(tmp_path / "b", tmp_path / "c")


# ------------------------------------------------------------------------------ resume, ranks


def run_until(command: list[str], cwd: Path, ready: Callable[[], bool], log: Path) -> None:
    """Start `command`, SIGKILL it as soon as `ready()`; fails if it ends first."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    with log.open("wb") as f:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=f)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.002)
        assert proc.poll() is None, f"the build ended before it could be killed: {log.read_text()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def committed_chunks(out: Path) -> int:
    try:
        return len(json.loads((out / "progress" / "rank-0.json").read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_build_killed_anywhere_resumes_to_the_same_index(world: dict[str, Path], tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs=160, seed=3)
    killed, direct = tmp_path / "killed", tmp_path / "direct"
    options = {"tokens": 2000, "chunk_tokens": 64, "bucket_latents": 2}
    command = [sys.executable, "-m", "saescope", *cli_args(world["sae"], killed, corpus, **options)]
    run_until(command, tmp_path, lambda: committed_chunks(killed) >= 2, tmp_path / "kill1.log")
    assert not read_header(killed, complete=False).complete
    run_until(
        command,
        tmp_path,
        lambda: len(list((killed / "postings").glob("*.parquet"))) >= 3,
        tmp_path / "kill2.log",
    )
    progress = json.loads((killed / "progress" / "rank-0.json").read_text())
    assert progress["done"] and progress["tokens"] == 2000  # every chunk committed, compaction under way
    assert not (killed / "latents.parquet").exists()
    resumed = build([world["sae"]], [killed], corpus, **options)  # the same command, run in-process
    assert resumed.indexes[0].tokens == 2000
    build([world["sae"]], [direct], corpus, **options)
    assert_same_index(killed, direct)
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp")]


def test_a_rank_removes_only_its_own_temporary_files(tmp_path: Path) -> None:
    names = [".bucket-00001.parquet.12-34.tmp", ".bucket-00002.parquet.56-78.tmp", "bucket-00001.parquet"]
    for name in names:
        (tmp_path / name).write_text("x")
    remove_temp_files(tmp_path, {"bucket-00001.parquet"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    remove_temp_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["bucket-00001.parquet"]


def test_two_torchrun_ranks_build_what_one_process_builds(
    world: dict[str, Path], built: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    proc = torchrun_two_ranks(cli_args(world["sae"], out, world["corpus"], batch_size=1), tmp_path)
    assert len(proc.stdout.splitlines()) == 1  # rank 0 reports, once
    assert read_header(out).world_size == 2
    assert_same_index(out, built)


# ------------------------------------------------------------------------------------ refusals


def test_folders_holding_something_else_are_refused_untouched(
    world: dict[str, Path], built: Path, tmp_path: Path
) -> None:
    before = snapshot(built)
    with pytest.raises(LatentIndexError, match="holds the index of another SAE"):
        build([world["other_sae"]], [built], world["corpus"], batch_size=1)
    with pytest.raises(LatentIndexError, match=r"other settings \(.*target_tokens"):
        build([world["sae"]], [built], world["corpus"], batch_size=1, tokens=500)
    again = build([world["sae"]], [built], world["corpus"], batch_size=1)  # the same command: nothing to do
    assert again.tokens_per_second == 0 and again.indexes[0].tokens == 600
    assert snapshot(built) == before
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(LatentIndexError, match="not empty and holds no latent index"):
        build([world["sae"]], [tmp_path / "stuff"], world["corpus"])
    assert [p.name for p in (tmp_path / "stuff").iterdir()] == ["notes.txt"]
