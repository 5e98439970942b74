"""Whole `saescope train` runs compared, each side measured in the same run of this script.

CPU (default), at the demo's shape (d_in 576, 4608 latents, k 32, batch 4096):
  1. tokens/s and peak memory (max RSS of the training process) per architecture, the sparse
     `torch` kernels (the CPU fast path) beside the plain-torch dense `reference`;
  2. quality on real activations: FVU and dead fraction after a fixed token budget for TopK with
     and without the aux-k loss (needs a store of real activations: --acts, e.g. runs/demo/acts).
GPU (--gpu-loop): whole `saescope train` runs at the reference shape (d_in 2048, 65,536 latents, k 64,
  batch 8192) from a synthetic store, the Triton kernels beside the plain-torch reference.
GPU (--gpu-quality --acts STORE): TopK trained by `saescope train` with the Triton kernels and with
  the plain-torch reference (both bf16 autocast) on the same real activations and token budget;
  FVU of both SAEs on the same rows. (Training-step throughput on GPU: benchmarks/train_step_gpu.py.)

Each run is a separate `python -m saescope train` process. Its throughput is the training loop's
after its first logged window (a step on CPU, 50 steps on GPU; it pays compilation and autotuning),
read from its `metrics.csv` (tokens and elapsed seconds of each window); the trainer's own figure
counts from the start (sampling, initialisation and the first step included). Its memory is the
process's peak RSS (and peak GPU memory on CUDA).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ARCHS = ("topk", "batchtopk", "relu", "jumprelu")
RUNNER = (
    "import resource, runpy, sys\n"
    "sys.argv = ['saescope'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('saescope', run_name='__main__')\n"
    "finally:\n"
    "    print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "    import torch\n"
    "    if torch.cuda.is_initialized():\n"
    "        print('MAXGPU_B', torch.cuda.max_memory_allocated(), file=sys.stderr)\n"
)


def run_train(**options: object) -> dict[str, float]:
    """Run `saescope train` in a fresh process with `--name value` for each option (`name_x` ->
    `--name-x`; no checkpoints unless asked); parse its summary line and peak memory; `tok_s` is the
    rate after the first logged window (`steady_rate`; the trainer's own figure if it logged one)."""
    options = {"checkpoint_every": 0, **options}
    args = [str(a) for key, value in options.items() for a in ("--" + key.replace("_", "-"), value)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, "train", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"saescope train failed:\n{proc.stderr[-3000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    m = re.search(r"FVU ([\d.]+)\s+L0 ([\d.]+)\s+dead ([\d.]+)%\s+\(([\d,]+) tokens, ([\d,]+) tok/s\)", line)
    rss = re.search(r"MAXRSS_KB (\d+)", proc.stderr)
    if not m or not rss:
        raise SystemExit(f"cannot parse: {line!r}")
    gpu = re.search(r"MAXGPU_B (\d+)", proc.stderr)
    steady = steady_rate(Path(str(options["out"])))
    return {
        "gpu_gb": int(gpu.group(1)) / 2**30 if gpu else 0.0,
        "fvu": float(m.group(1)),
        "l0": float(m.group(2)),
        "dead": float(m.group(3)) / 100,
        "tokens": int(m.group(4).replace(",", "")),
        "tok_s": steady or float(m.group(5).replace(",", "")),
        "rss_gb": int(rss.group(1)) / 2**20,
    }


def synthetic_store(folder: Path, rows: int, d: int) -> Path:
    """Random rows with a few dominant directions (throughput does not depend on the values)."""
    from saescope.store import DocRecord, StoreWriter

    g = torch.Generator().manual_seed(0)
    basis = torch.randn(64, d, generator=g)
    with StoreWriter(
        folder,
        model="synthetic",
        revision=None,
        hookpoint="synthetic",
        hookpoint_alias="synthetic",
        d_model=d,
        dtype="bfloat16",
        capture={},
        identity={"synthetic": d},
        shard_rows=65536,
        target_rows=rows,
    ) as w:
        for doc in range(0, rows // 256):
            x = torch.randn(256, 64, generator=g).relu() @ basis + 0.1 * torch.randn(256, d, generator=g)
            pos = torch.arange(256, dtype=torch.int32)
            w.add(
                x,
                torch.zeros(256, dtype=torch.int32),
                torch.full((256,), doc),
                pos,
                [DocRecord(doc, [0] * 256, "", "synthetic")],
            )
    return folder


def metrics_rows(sae_folder: Path) -> list[dict[str, float]]:
    with open(sae_folder / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def steady_rate(sae_folder: Path) -> float | None:
    """tokens/s from the end of the first logged window to the end of the run."""
    rows = metrics_rows(sae_folder)
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"])


def cpu_throughput(store: Path, tmp: Path, steps: int) -> None:
    print(
        f"\n1. CPU throughput, whole `saescope train` runs: d_in 576, 4608 latents, k 32, batch 4096, "
        f"{steps} steps, {torch.get_num_threads()} threads",
        flush=True,
    )
    print(f"| {'architecture':12} | {'kernel':9} | {'tok/s':>8} | {'peak RSS GiB':>12} | {'speed-up':>8} |")
    print(f"|{'-' * 14}|{'-' * 11}|{'-' * 10}|{'-' * 14}|{'-' * 10}|")
    for arch in ARCHS:
        res = {}
        for kernel in ("reference", "torch"):
            res[kernel] = run_train(
                acts=store,
                out=tmp / f"{arch}-{kernel}",
                arch=arch,
                latents=4608,
                **({"k": 32} if arch in ("topk", "batchtopk") else {}),
                batch_size=4096,
                tokens=steps * 4096,
                kernel=kernel,
                log_every=1,
                device="cpu",
            )
        for kernel in ("reference", "torch"):
            r = res[kernel]
            speed = r["tok_s"] / res["reference"]["tok_s"]
            print(
                f"| {arch:12} | {kernel:9} | {r['tok_s']:8,.0f} | {r['rss_gb']:12.2f} | {speed:7.2f}x |",
                flush=True,
            )


def aux_quality(
    store: Path, tmp: Path, tokens: int, dead_tokens: int, latents: int, k: int, lr: float
) -> None:
    print(
        f"\n2. TopK ({latents} latents, k {k}, lr {lr}) with and without aux-k on real activations ({store}):"
        f" {tokens:,} tokens, batch 2048, dead after {dead_tokens:,} tokens",
        flush=True,
    )
    print(f"| {'aux-k':18} | {'FVU':>7} | {'dead %':>7} | {'L0':>5} |")
    print(f"|{'-' * 20}|{'-' * 9}|{'-' * 9}|{'-' * 7}|")
    for label, aux in (("off (--aux-k 0)", "0"), ("on (k_aux d_in/2)", None)):
        aux_k = {} if aux is None else {"aux_k": aux}
        r = run_train(
            acts=store,
            out=tmp / f"aux-{aux}",
            arch="topk",
            latents=latents,
            k=k,
            batch_size=2048,
            tokens=tokens,
            dead_tokens=dead_tokens,
            lr=lr,
            device="cpu",
            **aux_k,
        )
        print(f"| {label:18} | {r['fvu']:7.4f} | {100 * r['dead']:7.2f} | {r['l0']:5.1f} |", flush=True)


def gpu_quality(store: Path, tmp: Path, tokens: int) -> None:
    from saescope.sae.formats import load_sae
    from saescope.store import ActivationStore

    print(
        f"\nGPU: {torch.cuda.get_device_name()}; TopK 4608 latents k 32 on {store},"
        f" {tokens:,} tokens, batch 4096"
    )
    x = (
        ActivationStore(store)
        .get(torch.arange(min(16384, ActivationStore(store).rows)))
        .activations.float()
        .cuda()
    )
    results = {}
    for kernel in ("reference", "triton"):
        out = tmp / f"gpu-{kernel}"
        r = run_train(
            acts=store,
            out=out,
            arch="topk",
            latents=4608,
            k=32,
            batch_size=4096,
            tokens=tokens,
            kernel=kernel,
            device="cuda",
        )
        sae = load_sae(out, device="cuda")
        with torch.no_grad():
            recon = sae(x).recon
        fvu = float((x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
        results[kernel] = fvu
        print(
            f"  {kernel:9}: FVU on 16k store rows {fvu:.5f} (training-window FVU {r['fvu']:.4f}), "
            f"{r['tok_s']:,.0f} tok/s",
            flush=True,
        )
    rel = abs(results["triton"] - results["reference"]) / results["reference"]
    print(f"  equal quality: |FVU_triton - FVU_reference| / FVU_reference = {rel:.2%} (target < 1%)")
    print(json.dumps(results))


def window_rates(sae_folder: Path) -> list[float]:
    """tokens/s of each logging window of a run after the first, from its metrics.csv."""
    rows = metrics_rows(sae_folder)
    return [
        (b["tokens"] - a["tokens"]) / (b["elapsed_s"] - a["elapsed_s"]) for a, b in itertools.pairwise(rows)
    ]


def gpu_loop(tmp: Path, steps: int) -> None:
    """Whole `saescope train` runs at the reference shape on a synthetic 1 GiB store."""
    d, n, k, batch = 2048, 65536, 64, 8192
    store = synthetic_store(tmp / "gpu-loop-store", 32 * batch, d)
    print(
        f"\nGPU: {torch.cuda.get_device_name()}; whole `saescope train`, TopK d_in {d}, {n:,} latents,"
        f" k {k}, batch {batch}, {steps} steps from a store ({32 * batch:,} rows); tok/s after the"
        " first 50-step window, from metrics.csv",
        flush=True,
    )
    print(f"| {'kernel':9} | {'tok/s':>9} | {'peak GPU GiB':>12} | {'speed-up':>8} |")
    print(f"|{'-' * 11}|{'-' * 11}|{'-' * 14}|{'-' * 10}|")
    res, windows = {}, {}
    for kernel in ("reference", "triton"):
        res[kernel] = r = run_train(
            acts=store,
            out=tmp / f"loop-{kernel}",
            arch="topk",
            latents=n,
            k=k,
            batch_size=batch,
            tokens=steps * batch,
            kernel=kernel,
            log_every=50,
            device="cuda",
        )
        speed = r["tok_s"] / res["reference"]["tok_s"]
        print(f"| {kernel:9} | {r['tok_s']:9,.0f} | {r['gpu_gb']:12.2f} | {speed:7.2f}x |", flush=True)
        windows[kernel] = window_rates(tmp / f"loop-{kernel}")
    for kernel, rates in windows.items():
        print(f"  {kernel} tok/s per 50-step window: {', '.join(f'{r:,.0f}' for r in rates)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acts", type=Path, default=Path("runs/demo/acts"), help="a store of real activations")
    p.add_argument("--steps", type=int, default=12, help="steps per CPU throughput run")
    # A latent counts as dead after --dead-tokens without firing: keep that window long against a
    # latent's natural firing interval, or rare latents count as dead (and aux-k then pulls them
    # towards the residual of all tokens). A high lr makes some latents die within the budget.
    p.add_argument("--aux-tokens", type=int, default=1_200_000)
    p.add_argument("--dead-tokens", type=int, default=100_000)
    p.add_argument("--aux-latents", type=int, default=4608)
    p.add_argument("--aux-k", type=int, default=32)
    p.add_argument("--aux-lr", type=float, default=3e-3)
    p.add_argument("--gpu-quality", action="store_true")
    p.add_argument("--gpu-tokens", type=int, default=400_000)
    p.add_argument("--gpu-loop", action="store_true", help="whole-train throughput at the reference shape")
    p.add_argument("--gpu-loop-steps", type=int, default=300)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="saescope-bench-") as t:
        tmp = Path(t)
        if args.gpu_quality or args.gpu_loop:
            if args.gpu_quality:
                gpu_quality(args.acts, tmp, args.gpu_tokens)
            if args.gpu_loop:
                gpu_loop(tmp, args.gpu_loop_steps)
            return
        if not args.skip_throughput:
            cpu_throughput(synthetic_store(tmp / "synthetic", 4096 * (args.steps + 1), 576), tmp, args.steps)
        if (args.acts / "manifest.json").exists():
            aux_quality(
                args.acts, tmp, args.aux_tokens, args.dead_tokens, args.aux_latents, args.aux_k, args.aux_lr
            )
        else:
            print(f"\n2. skipped: no store at {args.acts} (run `make demo` or pass --acts)")


if __name__ == "__main__":
    main()
