"""How fast shuffled activation rows come out of the store, against `.pt` chunk files.

The baseline is the loader of the Llama-3 "features from scratch" write-up (the "write-up" below).

Writes a store of `--gb` GB of bf16 rows (d_model `--d-model`) to a temporary folder (or uses
`--store PATH`), then measures rows/s and GB/s of `random` and `buffer` batches at batch sizes
4096 and 8192, with the page cache warm and — where the kernel lets us evict the files
(`posix_fadvise(DONTNEED)` on clean pages) — cold. In the same run it measures the baseline seed
000 used: one `.pt` file per chunk of 4006 rows, each sampled row a `torch.load` of its file
(measured on a small sample and extrapolated per row), and the rate SAE training consumes: a
plain-torch TopK step of the demo SAE on this CPU, and the GPU target of 850k rows/s.

    python benchmarks/store_read.py [--gb 2] [--d-model 2048] [--store PATH] [--device cuda]
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from saescope.store import ActivationStore, DocRecord, StoreWriter

GPU_TARGET_ROWS_PER_S = 850_000  # target: TopK d=2048 n=65536 k=64 batch 8192 on one H100
CONTEXT = 256


def residency(paths: list[Path]) -> float:
    """Fraction of the files' pages in the page cache (mincore), or NaN where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        page = mmap.PAGESIZE
        resident = total = 0
        for path in paths:
            size = path.stat().st_size
            with open(path, "rb") as f:
                mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
            anchor = ctypes.c_char.from_buffer(mm)
            pages = (size + page - 1) // page
            vec = (ctypes.c_ubyte * pages)()
            rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec)
            del anchor
            mm.close()
            if rc != 0:
                return float("nan")
            resident += sum(v & 1 for v in vec)
            total += pages
        return resident / max(total, 1)
    except (OSError, AttributeError, ValueError, TypeError):
        return float("nan")


def evict(paths: list[Path]) -> bool:
    """Drop the files from the page cache (clean pages only; no root needed)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(64 << 20):
                pass


def make_store(out: Path, gb: float, d_model: int, device: str = "cpu") -> tuple[int, float]:
    """Write `gb` GB of bf16 rows through StoreWriter, the rows coming from `device` as in a
    capture (CUDA: pinned non-blocking copies, statistics reduced on the GPU); returns (rows, seconds)."""
    rows = int(gb * 1e9) // (d_model * 2)
    shard_rows = (256 << 20) // (d_model * 2)
    block = torch.randn(16 * CONTEXT, d_model, device=device).to(torch.bfloat16)  # 16 inputs' rows
    tokens = torch.randint(0, 50_000, (16 * CONTEXT,), dtype=torch.int32)
    positions = torch.arange(CONTEXT, dtype=torch.int32).repeat(16)
    start = time.perf_counter()
    with StoreWriter(
        out,
        model="benchmark",
        revision=None,
        hookpoint="model.layers.0",
        hookpoint_alias="resid_post:0",
        d_model=d_model,
        dtype="bfloat16",
        capture={"benchmark": True},
        identity={"benchmark": True},
        shard_rows=shard_rows,
        target_rows=rows,
    ) as w:
        doc = 0
        while not w.done:
            doc_ids = torch.arange(doc, doc + 16, dtype=torch.int64).repeat_interleave(CONTEXT)
            records = [
                DocRecord(d, tokens[:CONTEXT].tolist(), f"doc {d}", "benchmark") for d in range(doc, doc + 16)
            ]
            w.add(block, tokens, doc_ids, positions, records)
            doc += 16
    return rows, time.perf_counter() - start


def rate(batches: Iterator[torch.Tensor], warmup: int, seconds: float, max_batches: int) -> tuple[float, int]:
    """Rows per second over batches after `warmup` ones, for about `seconds` (at most max_batches)."""
    for _ in range(warmup):
        next(batches)
    n = count = 0
    start = time.perf_counter()
    for batch in batches:
        if batch.is_cuda:
            torch.cuda.synchronize()
        n += batch.shape[0]
        count += 1
        if time.perf_counter() - start >= seconds or count >= max_batches:
            break
    return n / (time.perf_counter() - start), count


def pt_chunk_rows_per_s(d_model: int, workdir: Path, files: int = 4, loads: int = 24) -> float:
    """The write-up's loader: each sampled row is a `torch.load` of its whole `.pt` chunk (4006 rows)."""
    chunk = torch.randn(4006, d_model).to(torch.bfloat16)
    paths = []
    for i in range(files):
        p = workdir / f"layer_16_batch_{i}.pt"
        torch.save(chunk, p)
        paths.append(p)
    rng = np.random.default_rng(0)
    for p in paths:  # page cache warm, as for the store's warm numbers
        torch.load(p, weights_only=True)
    start = time.perf_counter()
    for _ in range(loads):
        p = paths[int(rng.integers(files))]
        row = torch.load(p, map_location="cpu", weights_only=True)[int(rng.integers(4006))]
        assert row.shape == (d_model,)
    return loads / (time.perf_counter() - start)


def cpu_training_rows_per_s(steps: int = 3) -> tuple[float, str]:
    """Rows/s of a TopK SAE training step of the demo shape (d 576, 4608 latents, k 32, batch 4096)
    on this CPU, with saescope's sparse CPU kernels (plain dense torch if they are unavailable)."""
    torch.manual_seed(0)
    d, n, k, b = 576, 4608, 32, 4096
    W_enc = torch.nn.Parameter(torch.randn(d, n) / d**0.5)
    b_enc = torch.nn.Parameter(torch.zeros(n))
    W_dec = torch.nn.Parameter(W_enc.detach().T.clone())
    b_dec = torch.nn.Parameter(torch.zeros(d))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-4)
    x = torch.randn(b, d)
    try:
        from saescope.kernels import sparse_decode, sparse_encode, topk_indices

        def recon_of(x: torch.Tensor) -> torch.Tensor:
            sel, idx, _ = sparse_encode(
                x, W_enc, b_enc, b_dec, lambda p: topk_indices(p, k, "torch"), impl="torch"
            )
            return sparse_decode(sel.relu(), idx, W_dec, impl="torch") + b_dec

        how = "saescope.kernels impl=torch"
    except ImportError:

        def recon_of(x: torch.Tensor) -> torch.Tensor:
            vals, idx = ((x - b_dec) @ W_enc + b_enc).topk(k, dim=1)
            return (vals.relu().unsqueeze(2) * W_dec[idx]).sum(1) + b_dec

        how = "dense plain torch"

    def step() -> None:
        loss = (recon_of(x) - x).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
    return steps * b / (time.perf_counter() - start), how


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gb", type=float, default=2.0, help="size of the store to create (GB)")
    parser.add_argument("--d-model", type=int, default=2048)
    parser.add_argument("--store", type=Path, help="use this existing store instead of creating one")
    parser.add_argument("--dir", type=Path, help="where to create the temporary store (default: system temp)")
    parser.add_argument("--batch-sizes", default="4096,8192")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per warm configuration")
    parser.add_argument(
        "--device", default="cpu", help="also move batches to this device (cuda: pinned + non_blocking)"
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the cold page-cache measurement")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="saescope-bench-", dir=args.dir))
    table: list[tuple[str, str, int, float, float, int]] = []
    try:
        if args.store is None:
            path = tmp / "acts"
            print(f"writing a {args.gb:g} GB bf16 store (d_model {args.d_model}) to {path} ...", flush=True)
            rows, seconds = make_store(path, args.gb, args.d_model, args.device)
            nbytes = rows * args.d_model * 2
            print(
                f"  wrote {rows:,} rows from {args.device} in {seconds:.1f} s: "
                f"{rows / seconds:,.0f} rows/s, "
                f"{nbytes / seconds / 1e9:.2f} GB/s (float64 stats, sha256, fsync, commit per 256 MiB shard)"
            )
        else:
            path = args.store
        store = ActivationStore(path)
        shards = [path / s.path for s in store.manifest.shards]
        row_bytes = store.d_model * store.dtype.itemsize
        total_gb = store.rows * row_bytes / 1e9
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
        print(
            f"store: {store.rows:,} rows × {store.d_model} {store.manifest.dtype} = {total_gb:.2f} GB in "
            f"{len(shards)} shards; RAM {ram:.0f} GB; {torch.get_num_threads()} torch threads; "
            f"device {args.device}"
        )
        sizes = [int(s) for s in args.batch_sizes.split(",")]

        def measure(label: str, mode: str, bs: int, seconds: float, max_batches: int, warmup: int) -> None:
            it = store.batches(bs, shuffle=mode, seed=0, epochs=None, device=args.device)  # type: ignore[arg-type]
            try:
                r, count = rate(it, warmup, seconds, max_batches)
            finally:
                it.close()
            table.append((label, mode, bs, r, r * row_bytes / 1e9, count))
            print(
                f"  {label:5s} {mode:6s} batch {bs:5d}: {r:12,.0f} rows/s  {r * row_bytes / 1e9:6.2f} GB/s",
                flush=True,
            )

        if not args.no_cold and evict(shards):
            print(
                "cold: page cache after posix_fadvise(DONTNEED): "
                f"{residency(shards):.0%} of the store resident"
            )
            for mode, seconds, max_batches in (("random", 4.0, 8), ("buffer", 30.0, store.rows // sizes[0])):
                evict(shards)
                measure("cold", mode, sizes[0], seconds, max_batches, warmup=0)
        warm(shards)
        print(f"warm: {residency(shards):.0%} of the store in the page cache")
        for mode in ("random", "buffer"):
            for bs in sizes:
                measure("warm", mode, bs, args.seconds, 10_000, warmup=2)

        pt_rate = pt_chunk_rows_per_s(store.d_model, tmp)
        print(f"write-up baseline (torch.load of a 4006-row .pt per sampled row): {pt_rate:,.1f} rows/s")
        cpu_rate, how = cpu_training_rows_per_s()
        print(
            "CPU TopK SAE training, demo shape (d 576, 4608 latents, k 32, batch 4096; "
            f"{how}): {cpu_rate:,.0f} rows/s"
        )

        best = max(r for label, mode, _bs, r, _g, _c in table if label == "warm" and mode == "random")
        print()
        print(
            "| page cache | mode | batch | rows/s | GB/s | × write-up | "
            f"× GPU target ({GPU_TARGET_ROWS_PER_S:,}) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, mode, bs, r, g, _count in table:
            print(
                f"| {label} | {mode} | {bs} | {r:,.0f} | {g:.2f} | {r / pt_rate:,.0f}× | "
                f"{r / GPU_TARGET_ROWS_PER_S:.2f}× |"
            )
        print(f"| warm | write-up .pt | 1 | {pt_rate:,.1f} | {pt_rate * row_bytes / 1e9:.4f} | 1× | – |")
        print(
            f"| need | CPU demo training | 4096 | {cpu_rate:,.0f} | {cpu_rate * 576 * 2 / 1e9:.3f} | – | – |"
        )
        print(
            f"| need | GPU trainer target | 8192 | {GPU_TARGET_ROWS_PER_S:,} | "
            f"{GPU_TARGET_ROWS_PER_S * row_bytes / 1e9:.2f} | – | 1× |"
        )
        print(
            f"\nbest warm random read: {best / pt_rate:,.0f}× the write-up's loader, "
            f"{best / cpu_rate:,.0f}× what CPU demo training consumes, "
            f"{best / GPU_TARGET_ROWS_PER_S:.2f}× the GPU target"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
