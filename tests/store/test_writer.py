"""StoreWriter: resume, extension, truncation, foreign stores, leftovers, disk full, crashes, ranks."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from saescope import files
from saescope.errors import StoreError
from saescope.store import ActivationStore, RunningStats, merge_manifest, read_manifest

from .synthetic import IDENTITY, doc, expected, feed, open_writer

HERE = Path(__file__).resolve().parent


def _all_rows(out: Path):
    store = ActivationStore(out, verify="full")
    return store, store.get(np.arange(len(store)))


def _assert_store_equals(out: Path, exp, dtype: torch.dtype = torch.float32) -> ActivationStore:
    store, got = _all_rows(out)
    assert len(store) == len(exp.doc_ids)
    assert torch.equal(got.activations, exp.activations.to(dtype))
    assert torch.equal(got.doc_ids, exp.doc_ids)
    assert torch.equal(got.positions, exp.positions)
    assert torch.equal(got.token_ids, exp.token_ids)
    return store


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _check_stats(store: ActivationStore) -> None:
    acts = store.get(np.arange(len(store))).activations.double().numpy()
    stats = store.stats
    assert stats.count == len(store)
    np.testing.assert_allclose(stats.mean.numpy(), acts.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.var.numpy(), acts.var(0), rtol=1e-9)
    assert stats.mean_squared_norm == pytest.approx(float(np.mean(np.sum(acts**2, 1))), rel=1e-10)


def test_rows_round_trip_and_target_truncates_the_last_doc(tmp_path) -> None:
    with open_writer(tmp_path / "a", target_rows=100, shard_rows=30) as w:
        feed(w, docs_per_add=3)
        assert w.done and w.rows_accepted == 100
    assert w.rows_committed == 100
    store = _assert_store_equals(tmp_path / "a", expected(100))
    last = int(store.get([99]).doc_ids[0])
    assert w.next_doc == last + 1
    assert store.complete
    _check_stats(store)


def test_reopening_a_complete_store_changes_nothing(tmp_path) -> None:
    out = tmp_path / "a"
    with open_writer(out, target_rows=120) as w:
        feed(w)
    shards = [s.sha256 for s in read_manifest(out).shards]
    with open_writer(out, target_rows=120) as w:
        assert w.done and w.rows_committed == 120
        feed(w)
    assert [s.sha256 for s in read_manifest(out).shards] == shards
    assert read_manifest(out).complete


def test_more_tokens_extend_the_store(tmp_path) -> None:
    out = tmp_path / "a"
    with open_writer(out, target_rows=150) as w:
        feed(w)
    first = read_manifest(out)
    truncated = first.shards[-1].last_doc
    with open_writer(out, target_rows=300) as w:
        assert not w.done and w.next_doc == truncated + 1
        feed(w)
    m = read_manifest(out)
    assert m.rows == 300 and m.complete and m.shards[: len(first.shards)] == first.shards
    store, got = _all_rows(out)
    # every doc whole except the one cut at 150 rows, which stays cut: no row twice, none made up
    pairs = set(zip(got.doc_ids.tolist(), got.positions.tolist()))
    assert len(pairs) == 300
    for d in set(got.doc_ids.tolist()) - {truncated, int(got.doc_ids[-1])}:
        mask = got.doc_ids == d
        assert torch.equal(got.activations[mask], doc(d).activations)
    _check_stats(store)


def test_replayed_docs_are_ignored_on_resume(tmp_path) -> None:
    out = tmp_path / "a"
    with open_writer(out, target_rows=400, shard_rows=30) as w:
        feed(w, docs_per_add=4, max_docs=24)
    assert not read_manifest(out).complete
    with open_writer(out, target_rows=400, shard_rows=30) as w:
        assert w.next_doc > 0
        feed(w, docs_per_add=4, start=0)  # the caller replays from the first doc
    store = _assert_store_equals(out, expected(400))
    _check_stats(store)


def test_an_exception_drops_pending_rows_and_resume_counts_stats_once(tmp_path) -> None:
    out = tmp_path / "a"
    with pytest.raises(RuntimeError), open_writer(out, target_rows=500, shard_rows=35) as w:
        feed(w, docs_per_add=3, max_docs=30)
        accepted = w.rows_accepted
        raise RuntimeError("model crashed")
    # the shards already cut were written; the open one was dropped
    m = read_manifest(out)
    assert m.rows > 0 and 0 < accepted - m.rows < 35 + 13  # 13: the longest synthetic doc
    with open_writer(out, target_rows=500, shard_rows=35) as w:
        feed(w, docs_per_add=5)
    store = _assert_store_equals(out, expected(500))
    _check_stats(store)


def test_a_tiny_queue_budget_still_writes_everything(tmp_path) -> None:
    with open_writer(tmp_path / "a", target_rows=200, max_queue_bytes=1) as w:
        feed(w, docs_per_add=2)
    _assert_store_equals(tmp_path / "a", expected(200))


def test_foreign_settings_are_refused_and_left_untouched(tmp_path) -> None:
    out = tmp_path / "x" / "acts"
    with open_writer(out, target_rows=100) as w:
        feed(w, max_docs=5)
    before = _snapshot(out)
    with pytest.raises(StoreError) as e:
        open_writer(out, target_rows=100, identity={**IDENTITY, "context_len": 64})
    assert str(e.value) == (
        f"{out} holds a store made with other settings (context_len: 32 there, 64 here); use another --out"
    )
    with pytest.raises(StoreError, match=r"\(dtype: float32 there, bfloat16 here\)"):
        open_writer(out, target_rows=100, dtype="bfloat16")
    with pytest.raises(StoreError, match=r"\(model: tiny-model there, other here\)"):
        open_writer(out, target_rows=100, model="other")
    with pytest.raises(StoreError, match=r"\(world_size: 1 there, 2 here\)"):
        open_writer(out, target_rows=100, rank=1, world_size=2)
    assert _snapshot(out) == before


def test_folders_that_are_not_stores_are_refused(tmp_path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(StoreError, match="is not an activation store; use another --out"):
        open_writer(tmp_path / "notes", target_rows=10)
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["todo.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_writer(tmp_path / "file", target_rows=10)


def test_leftovers_of_a_crash_are_removed_and_logged(tmp_path, caplog) -> None:
    out = tmp_path / "a"
    with open_writer(out, target_rows=300) as w:
        feed(w, max_docs=15)
    planted = [
        "shards/.shard-r0-00009.safetensors.11-22.tmp",
        "docs/.docs-r0-00009.parquet.11-22.tmp",
        "shards/shard-r0-00042.safetensors",
        "docs/docs-r0-00042.parquet",
        "ranks/.rank-0.json.11-22.tmp",
        ".manifest.json.11-22.tmp",
        ".stats.safetensors.11-22.tmp",
    ]
    foreign = ["shards/shard-r1-00000.safetensors", "notes.txt"]
    for rel in planted + foreign:
        (out / rel).write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, logger="saescope.store.writer"):
        w = open_writer(out, target_rows=300)
        w.abort()
    for rel in planted:
        assert not (out / rel).exists(), rel
        assert any(rel.split("/")[-1] in r.getMessage() for r in caplog.records), rel
    for rel in foreign:
        assert (out / rel).exists(), rel
    ActivationStore(out, verify="full")


def test_invalid_rows_are_refused(tmp_path) -> None:
    with open_writer(tmp_path / "a", target_rows=100) as w:
        d = doc(1)  # 12 rows
        with pytest.raises(StoreError, match="do not fit this store"):
            w.add(torch.zeros(12, 5), d.token_ids, d.doc_ids, d.positions, [d.record])
        with pytest.raises(ValueError, match="no DocRecord"):
            w.add(d.activations, d.token_ids, d.doc_ids, d.positions, [])
        with pytest.raises(ValueError, match="increasing doc_id"):
            w.add(d.activations, d.token_ids, torch.tensor([5] * 6 + [4] * 6), d.positions, [])
        with pytest.raises(ValueError, match="12 activation rows but 11 token_ids"):
            w.add(d.activations, d.token_ids[:11], d.doc_ids, d.positions, [d.record])
        w.add(d.activations, d.token_ids, d.doc_ids + 2, d.positions, [d.record._replace(doc_id=3)])
        with pytest.raises(ValueError, match="doc ids must increase"):
            w.add(d.activations, d.token_ids, d.doc_ids, d.positions, [d.record])
        assert w.rows_accepted == 12


def test_disk_full_keeps_committed_shards_and_resumes(tmp_path, monkeypatch) -> None:
    out = tmp_path / "a"
    real_write_all = files.write_all

    def full_disk(f, data):
        if ".shard-r0-00002" in str(f.name):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(f, data)

    monkeypatch.setattr(files, "write_all", full_disk)
    with pytest.raises(StoreError) as e, open_writer(out, target_rows=300, shard_rows=40) as w:
        feed(w, docs_per_add=3)
    committed = read_manifest(out)
    assert len(committed.shards) == 2
    assert str(e.value) == (
        f"disk full while writing {out / 'shards/shard-r0-00002.safetensors'}; {committed.rows} rows are "
        "safely stored — free space and rerun the same command to resume"
    )
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or "00002" in p.name]
    ActivationStore(out, verify="full")
    monkeypatch.setattr(files, "write_all", real_write_all)
    with open_writer(out, target_rows=300, shard_rows=40) as w:
        feed(w, docs_per_add=3)
    assert read_manifest(out).shards[:2] == committed.shards
    _check_stats(_assert_store_equals(out, expected(300)))


CRASH_CHILD = textwrap.dedent(
    """
    import json, os, pathlib, random, signal, sys, time
    import numpy as np
    import torch
    torch.set_num_threads(1)  # no thread pool in this process: fork stays safe
    sys.path.insert(0, sys.argv[1])
    import synthetic
    from saescope.store import ActivationStore
    from saescope.store.docs import docs_parquet
    docs_parquet([])  # pyarrow imports pandas on first use (~1 s): once here, not in every child
    out = pathlib.Path(sys.argv[2])
    trials, seed, target = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

    def committed():
        try:
            return json.loads((out / "ranks" / "rank-0.json").read_text())["rows"]
        except (OSError, ValueError):
            return 0

    rng = random.Random(seed)
    exp = synthetic.expected(target)
    results = []
    for _ in range(trials):
        before = committed()
        # kill once some more rows are committed, plus a random delay: anywhere inside a commit
        goal = before + rng.randint(1, max(1, (target - before) // 3))
        pid = os.fork()
        if pid == 0:
            try:
                w = synthetic.open_writer(out, target_rows=target, shard_rows=25)
                synthetic.feed(w, docs_per_add=3)
                w.close()
            finally:
                os._exit(0)
        exited = False
        while committed() < goal and not exited:
            exited = os.waitpid(pid, os.WNOHANG)[0] != 0
            time.sleep(0.0005)
        if not exited:
            time.sleep(rng.uniform(0, 0.01))
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        # what a reader sees after the kill: consistent, checksums right, stats of exactly its rows
        store = ActivationStore(out, verify="full")
        got = store.get(np.arange(len(store)))
        ok = bool(torch.equal(got.activations, exp.activations[: len(store)]))
        ok &= store.stats.count == len(store)
        results.append(dict(killed=not exited, rows=len(store), committed=committed(), ok=ok))
    print(json.dumps(results))
    """
)


@pytest.fixture
def fast_tmp(tmp_path):
    """A tmpfs folder when there is one: the crash test commits many tiny shards (fsync-bound on disk)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="saescope-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_kill_and_resume_equals_an_uninterrupted_run(fast_tmp) -> None:
    """SIGKILL a capturing process at random moments; resuming must give the uninterrupted store."""
    out, target = fast_tmp / "crashed", 800
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(HERE), str(out), "6", "1234", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    trials = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(t["ok"] for t in trials), trials
    assert sum(t["killed"] and 0 < t["committed"] < target for t in trials) >= 3, trials
    rows = [t["committed"] for t in trials]
    assert rows == sorted(rows)  # every restart resumed; none lost committed rows

    with open_writer(out, target_rows=target, shard_rows=25) as w:
        feed(w, docs_per_add=3)
    reference = fast_tmp / "reference"
    with open_writer(reference, target_rows=target, shard_rows=25) as w:
        feed(w, docs_per_add=3)

    crashed, ref = read_manifest(out), read_manifest(reference)
    # same rows, same shard boundaries, byte-identical shards and docs tables
    assert [(s.path, s.rows, s.sha256, s.docs_sha256) for s in crashed.shards] == [
        (s.path, s.rows, s.sha256, s.docs_sha256) for s in ref.shards
    ]
    assert not list(out.rglob("*.tmp"))
    assert sorted(p.name for p in out.rglob("*")) == sorted(p.name for p in reference.rglob("*"))
    store = _assert_store_equals(out, expected(target))
    _check_stats(store)
    assert crashed.stats == pytest.approx(ref.stats, rel=1e-12)


def test_two_ranks_and_merge_manifest(tmp_path) -> None:
    out = tmp_path / "a"
    writers = [
        open_writer(out, target_rows=150 + 40 * r, rank=r, world_size=2, shard_rows=30) for r in (0, 1)
    ]
    threads = [threading.Thread(target=feed, args=(w,), kwargs={"docs_per_add": 3}) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writers[0].close()
    assert not read_manifest(out).complete  # rank 1 has not closed yet
    writers[1].close()
    m = merge_manifest(out)
    assert m.complete and m.rows == 150 + 190
    assert [(s.rank, s.index) for s in m.shards] == sorted((s.rank, s.index) for s in m.shards)
    store, got = _all_rows(out)
    for r in (0, 1):
        exp = expected(150 + 40 * r, rank=r, world_size=2)
        mine = torch.tensor([s.rank == r for s in m.shards for _ in range(s.rows)])
        assert torch.equal(got.activations[mine], exp.activations)
        assert torch.equal(got.doc_ids[mine], exp.doc_ids)
        assert (got.doc_ids[mine] % 2 == r).all()
    assert len(set(zip(got.doc_ids.tolist(), got.positions.tolist()))) == m.rows
    _check_stats(store)
    merged = RunningStats(store.d_model)
    for w in writers:
        merged.merge(w.stats)
    assert merged.summary() == pytest.approx(m.stats, rel=1e-12)
    assert [d.doc_id for d in store.docs([0, 1, 2, 3])] == [0, 1, 2, 3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_cuda_rows_are_copied_without_changing_them(tmp_path, dtype) -> None:
    out = tmp_path / "gpu"
    with open_writer(out, target_rows=400, dtype=dtype) as w:
        ids = iter(range(10_000))
        while not w.done:
            batch = [doc(next(ids)) for _ in range(4)]
            acts = torch.cat([b.activations for b in batch]).cuda()
            w.add(
                acts,
                torch.cat([b.token_ids for b in batch]),
                torch.cat([b.doc_ids for b in batch]),
                torch.cat([b.positions for b in batch]),
                [b.record for b in batch],
            )
            acts.fill_(float("nan"))  # the caller reuses its buffer: the stored rows must not change
    store = _assert_store_equals(out, expected(400), getattr(torch, dtype))
    _check_stats(store)
