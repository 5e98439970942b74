"""TopK SAE training-step throughput: saescope's Triton path against plain-torch bf16 autocast.

GPU mode (default): for each shape (d_in, latents, k, batch), full training steps on synthetic
activations (randn) — forward, MSE loss, backward, optimizer — for
  naive  : the seed-style TopK SAE (dense encoder, torch.topk, scatter to dense, dense decoder
           GEMM) under bf16 autocast with torch.optim.Adam: what our GPU target calls
           "seed-style bf16 autocast" (no decoder projection or renorm);
  triton : saescope's TopKSAE with kernel="triton" under bf16 autocast and FusedAdam with the
           decoder gradient projection and unit-norm renormalisation fused in;
printing ms/step, tokens/s, the ratio, peak memory and MFU_enc = 2·d·n·tok/s ÷ 989 TFLOP/s. For the
first shape also: a sweep of kernel launch settings (the best are used for the steps), each stage
timed alone with CUDA events (triton.testing.do_bench, median, L2 flushed between runs), full-size
correctness checks of each kernel against torch, and a loss-curve comparison with the torch sparse
path. A compact table is printed last; everything also goes to $OUT/train_step_gpu.json if $OUT
is set.

CPU mode (`--cpu`): the demo shape (576, 4608, 32, 4096), TopKSAE with kernel="reference" (dense
autograd) against kernel="torch" (sparse autograd), torch.optim.Adam, a few steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saescope.sae import SAEConfig
from saescope.sae.init import initialize
from saescope.sae.topk import TopKSAE

DEV = "cuda"  # `--dry-run` runs the GPU code path on CPU tensors under the Triton interpreter
PEAK_BF16 = 989e12  # H100 SXM dense bf16 (the MFU_enc denominator)
GPU_SHAPES = [(2048, 65536, 64, 8192), (3072, 65536, 64, 8192), (4096, 131072, 64, 4096)]
CPU_SHAPE = (576, 4608, 32, 4096)


def log(*args: Any) -> None:
    print(*args, flush=True)


class NaiveTopK(nn.Module):
    """Seed-style TopK SAE: every latent computed, the top k kept densely, a dense decoder GEMM."""

    def __init__(self, d: int, n: int, k: int):
        super().__init__()
        self.k = k
        self.b_pre = nn.Parameter(torch.zeros(d))
        self.enc = nn.Linear(d, n)
        self.W_dec = nn.Parameter(self.enc.weight.data.clone())

    def forward(self, x: Tensor) -> Tensor:
        pre = self.enc(x - self.b_pre)
        values, ids = pre.topk(self.k, dim=-1)
        dense = torch.zeros_like(pre).scatter_(-1, ids, F.relu(values))
        return dense @ self.W_dec + self.b_pre


def make_sae(d: int, n: int, k: int, device: str, kernel: str, seed: int = 0) -> TopKSAE:
    sae = TopKSAE(SAEConfig(architecture="topk", d_in=d, d_sae=n, k=k), device=device)
    initialize(sae, generator=torch.Generator(device=device).manual_seed(seed))
    sae.kernel = kernel
    return sae


def time_steps(step: Callable[[int], None], warmup: int, iters: int, cuda: bool) -> list[float]:
    """Per-step wall times in ms (CUDA events on GPU, perf_counter on CPU), after warm-up."""
    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        for i in range(iters):
            starts[i].record()
            step(warmup + i)
            ends[i].record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) for s, e in zip(starts, ends)]
    times = []
    for i in range(iters):
        t0 = time.perf_counter()
        step(warmup + i)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def summarise(
    name: str, d: int, n: int, batch: int, times: list[float], peak: float | None
) -> dict[str, Any]:
    ms = statistics.median(times)
    tps = batch / (ms / 1e3)
    row = {
        "path": name,
        "ms_per_step": round(ms, 2),
        "ms_spread": round(max(times) - min(times), 2),
        "tok_per_s": round(tps),
        "mfu_enc": round(2 * d * n * tps / PEAK_BF16, 4),
    }
    if peak is not None:
        row["peak_mem_gib"] = round(peak / 2**30, 2)
    return row


# ----- GPU -----------------------------------------------------------------------------------------
def gpu_naive_step(d: int, n: int, k: int, xs: list[Tensor]) -> Callable[[int], None]:
    model = NaiveTopK(d, n, k).to(DEV)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(i: int) -> None:
        x = xs[i % len(xs)]
        with torch.autocast(DEV, dtype=torch.bfloat16):
            loss = (model(x) - x).pow(2).sum(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def gpu_saescope_step(
    d: int, n: int, k: int, xs: list[Tensor], kernel: str, losses: list[float] | None = None, lr: float = 1e-4
) -> Callable[[int], None]:
    from saescope.kernels.fused_adam import FusedAdam

    sae = make_sae(d, n, k, DEV, kernel)
    if kernel == "triton":
        opt: torch.optim.Optimizer = FusedAdam(sae.parameters(), lr=lr, decoder=sae.W_dec, impl="triton")
    else:
        opt = torch.optim.Adam(sae.parameters(), lr=lr, fused=DEV == "cuda")

    def step(i: int) -> None:
        x = xs[i % len(xs)]
        with torch.autocast(DEV, dtype=torch.bfloat16):
            out = sae(x)
            loss = (out.recon - x).pow(2).sum(-1).mean()
        loss.backward()
        if kernel != "triton":
            sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if kernel != "triton":
            sae.set_decoder_norm_to_unit_norm()
        if losses is not None:
            losses.append(loss.item())

    return step


def empty_cache() -> None:
    if DEV == "cuda":
        torch.cuda.empty_cache()


def fmt_sweep(sweep: dict[tuple[int, ...], float]) -> str:
    return ", ".join(f"{c}: {v:.3f}" for c, v in sorted(sweep.items(), key=lambda item: item[1]))


def bench(fn: Callable[[], Any], rep: int = 60) -> float:
    """Median ms of fn (CUDA events, L2 flushed between calls); one timed call in a dry run."""
    if DEV != "cuda":
        fn()
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=10, rep=rep, return_mode="median"))


def rel_err(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@torch.no_grad()
def sweep_and_breakdown(d: int, n: int, k: int, batch: int, results: dict[str, Any]) -> None:
    """Kernel settings sweep, per-stage timings and full-size checks at one shape."""
    from saescope.kernels import fused_adam, triton_adam, triton_sparse, triton_topk

    torch.manual_seed(0)
    sae = make_sae(d, n, k, DEV, "triton")
    x = torch.randn(batch, d, device=DEV)
    bf = torch.bfloat16
    centered = (x - sae.b_dec).to(bf)
    W_enc_bf = sae.W_enc.detach().to(bf)
    b_enc_bf = sae.b_enc.detach().to(bf)
    pre = torch.addmm(b_enc_bf, centered, W_enc_bf)
    pre32 = pre.float()
    stages: dict[str, float] = {}
    checks: dict[str, Any] = {}

    # Selection: correctness at full size, then the launch-settings sweep.
    ids = triton_topk.topk_indices(pre, k)
    ref_vals = pre.float().topk(k).values.sort(-1).values
    checks["topk_bf16_values_equal"] = bool(
        torch.equal(pre.gather(-1, ids).float().sort(-1).values, ref_vals)
    )
    ids32 = triton_topk.topk_indices(pre32, k)
    checks["topk_fp32_values_equal"] = bool(
        torch.equal(pre32.gather(-1, ids32).sort(-1).values, pre32.topk(k).values.sort(-1).values)
    )
    counts = triton_topk.select_rows(pre, k, None, triton_topk.DEFAULT_CONFIG, torch.empty_like(ids))
    cap = triton_topk.candidate_capacity(k)
    checks["topk_rows_on_exact_path"] = int(((counts < k) | (counts > cap)).sum())
    checks["topk_candidates_mean"] = round(float(counts.float().mean()), 1)
    topk_sweep: dict[tuple[int, ...], float] = {}
    for setting in [
        (1024, 4, 4096),
        (2048, 4, 4096),
        (512, 2, 4096),
        (1024, 2, 4096),
        (512, 4, 4096),
        (1024, 4, 2048),
    ]:
        cfg = triton_topk.TopKConfig(block_n=setting[0], num_warps=setting[1], sample=setting[2])
        topk_sweep[setting] = bench(lambda cfg=cfg: triton_topk.topk_indices(pre, k, config=cfg), rep=40)
    block_n, warps, sample = min(topk_sweep, key=topk_sweep.__getitem__)
    triton_topk.DEFAULT_CONFIG = triton_topk.DEFAULT_CONFIG._replace(
        block_n=block_n, num_warps=warps, sample=sample
    )
    log("topk sweep (block_n, warps, sample -> ms):", fmt_sweep(topk_sweep))

    acts = pre.gather(-1, ids).relu()
    W_dec = sae.W_dec.detach()
    gather_sweep: dict[tuple[int, ...], float] = {}
    for bk, bd, nw in [(64, 64, 2), (64, 128, 4), (64, 32, 1), (64, 64, 1), (32, 64, 2), (64, 128, 2)]:
        cfg = triton_sparse.DEFAULT_CONFIG._replace(gather_block_k=bk, gather_block_d=bd, gather_warps=nw)
        gather_sweep[(bk, bd, nw)] = bench(
            lambda cfg=cfg: triton_sparse.gather_rows(acts, ids, W_dec, torch.float32, config=cfg), rep=40
        )
    bk, bd, nw = min(gather_sweep, key=gather_sweep.__getitem__)
    triton_sparse.DEFAULT_CONFIG = triton_sparse.DEFAULT_CONFIG._replace(
        gather_block_k=bk, gather_block_d=bd, gather_warps=nw
    )
    log("gather sweep (block_k, block_d, warps -> ms):", fmt_sweep(gather_sweep))

    recon = triton_sparse.gather_rows(acts, ids, W_dec, torch.float32)
    checks["decode_fwd_rel_err"] = rel_err(
        recon, F.embedding_bag(ids, W_dec, per_sample_weights=acts.float(), mode="sum")
    )
    grad_out = torch.randn(batch, d, device=DEV) / batch
    grad_bf = grad_out.to(bf)  # what the decoder backward gathers under autocast
    g_sel = torch.randn(batch, k, device=DEV)
    triton_sparse.clear_plan_cache()
    plan = triton_sparse.latent_plan(ids, n)
    latent_sweep: dict[tuple[int, ...], float] = {}
    for be, tb, nw in [
        (4, 2048, 4),
        (8, 2048, 4),
        (2, 2048, 4),
        (4, 2048, 2),
        (4, 4096, 4),
        (4, 1024, 2),
        (2, 1024, 2),
    ]:
        cfg = triton_sparse.DEFAULT_CONFIG._replace(latent_block_e=be, latent_tile_bytes=tb, latent_warps=nw)

        def both(cfg: triton_sparse.SparseConfig = cfg) -> None:
            triton_sparse.latent_rows(plan, acts, grad_bf, torch.float32, W=W_dec, config=cfg)
            triton_sparse.latent_rows(plan, g_sel, centered, torch.float32, with_sums=True, config=cfg)

        latent_sweep[(be, tb, nw)] = bench(both, rep=40)
    be, tb, nw = min(latent_sweep, key=latent_sweep.__getitem__)
    triton_sparse.DEFAULT_CONFIG = triton_sparse.DEFAULT_CONFIG._replace(
        latent_block_e=be, latent_tile_bytes=tb, latent_warps=nw
    )
    log("latent-rows sweep, decoder + encoder (block_e, tile bytes, warps -> ms):", fmt_sweep(latent_sweep))

    # Full-size backward checks against dense torch products (fp32, TF32 off).
    torch.backends.cuda.matmul.allow_tf32 = False
    dec = triton_sparse.latent_rows(plan, acts, grad_out, torch.float32, W=W_dec)
    sub = torch.arange(0, batch, 16, device=DEV)  # a row subset keeps the dense check small
    codes = torch.zeros(batch, n, device=DEV).scatter_(1, ids, acts.float())
    checks["dW_dec_rel_err"] = rel_err(dec.rows, codes.t() @ grad_out)
    assert dec.dots is not None
    checks["d_acts_rel_err"] = rel_err(
        dec.dots[sub], torch.bmm(W_dec[ids[sub]], grad_out[sub].unsqueeze(-1)).squeeze(-1)
    )
    enc = triton_sparse.latent_rows(plan, g_sel, centered, torch.float32, with_sums=True)
    gcodes = torch.zeros(batch, n, device=DEV).scatter_(1, ids, g_sel)
    checks["dW_enc_rel_err"] = rel_err(enc.rows, gcodes.t() @ centered.float())
    assert enc.coef_sums is not None
    checks["db_enc_rel_err"] = rel_err(enc.coef_sums, gcodes.sum(0))
    dec_bf = triton_sparse.latent_rows(plan, acts, grad_bf, torch.float32, W=W_dec)
    checks["dW_dec_from_bf16_grad_rel_err"] = rel_err(dec_bf.rows, codes.t() @ grad_out)
    torch.backends.cuda.matmul.allow_tf32 = True
    del codes, gcodes

    # Stages, each alone.
    stages["x - b_dec, cast bf16"] = bench(lambda: (x - sae.b_dec).to(bf))
    stages["W_enc fp32->bf16 cast"] = bench(lambda: sae.W_enc.detach().to(bf))
    stages["encoder GEMM addmm bf16 (+bias)"] = bench(lambda: torch.addmm(b_enc_bf, centered, W_enc_bf))
    stages["encoder GEMM mm bf16 (no bias)"] = bench(lambda: centered @ W_enc_bf)
    stages["topk triton bf16"] = bench(lambda: triton_topk.topk_indices(pre, k))
    stages["topk torch bf16"] = bench(lambda: pre.topk(k, sorted=False))
    stages["topk triton fp32"] = bench(lambda: triton_topk.topk_indices(pre32, k))
    stages["topk torch fp32"] = bench(lambda: pre32.topk(k, sorted=False))
    aux_mask = torch.rand(n, device=DEV) < 0.1
    aux_k = min(256, n // 20)
    stages[f"topk masked triton (aux-k: k={aux_k}, 10% allowed)"] = bench(
        lambda: triton_topk.topk_indices(pre, aux_k, mask=aux_mask)
    )
    stages["topk masked torch (masked_fill + topk)"] = bench(
        lambda: pre.masked_fill(~aux_mask, float("-inf")).topk(aux_k, sorted=False)
    )
    aux_ids = triton_topk.topk_indices(pre, aux_k, mask=aux_mask)
    aux_ref = pre.float().masked_fill(~aux_mask, float("-inf")).topk(aux_k).values.sort(-1).values
    checks["topk_masked_values_equal"] = bool(
        torch.equal(pre.gather(-1, aux_ids).float().sort(-1).values, aux_ref)
    )
    stages["gather selected + relu"] = bench(lambda: pre.gather(-1, ids).relu())
    stages["decode fwd triton (W_dec fp32)"] = bench(
        lambda: triton_sparse.gather_rows(acts, ids, W_dec, torch.float32)
    )
    stages["decode fwd embedding_bag fp32"] = bench(
        lambda: F.embedding_bag(ids, W_dec, per_sample_weights=acts.float(), mode="sum")
    )

    def fresh_plan() -> None:
        triton_sparse.clear_plan_cache()
        triton_sparse.latent_plan(ids, n)

    stages["plan: sort ids by latent"] = bench(fresh_plan)
    stages["decoder bwd triton (dW_dec + d acts), bf16 grad"] = bench(
        lambda: triton_sparse.latent_rows(plan, acts, grad_bf, torch.float32, W=W_dec)
    )
    stages["decoder bwd triton, fp32 grad (not used)"] = bench(
        lambda: triton_sparse.latent_rows(plan, acts, grad_out, torch.float32, W=W_dec)
    )
    stages["encoder bwd triton (dW_enc + db_enc)"] = bench(
        lambda: triton_sparse.latent_rows(plan, g_sel, centered, torch.float32, with_sums=True)
    )
    stages["d b_dec = -W_enc @ db_enc"] = bench(lambda: sae.W_enc.detach() @ enc.coef_sums)
    params = list(sae.parameters())
    for p in params:
        p.grad = torch.empty_like(p).normal_()
    fused = fused_adam.FusedAdam(params, lr=1e-4, decoder=sae.W_dec)
    stages["optimizer FusedAdam (+proj+renorm fused)"] = bench(fused.step)
    torch_opt = torch.optim.Adam(params, lr=1e-4, fused=True)

    def torch_opt_step() -> None:
        sae.remove_gradient_parallel_to_decoder_directions()
        torch_opt.step()
        sae.set_decoder_norm_to_unit_norm()

    stages["optimizer torch Adam fused + proj + renorm"] = bench(torch_opt_step)
    stages["memcpy 1 GiB d2d (bandwidth probe)"] = bench(lambda: pre.clone())
    for p in params:
        p.grad = None
    ours = [
        "x - b_dec, cast bf16",
        "W_enc fp32->bf16 cast",
        "encoder GEMM addmm bf16 (+bias)",
        "topk triton bf16",
        "gather selected + relu",
        "decode fwd triton (W_dec fp32)",
        "plan: sort ids by latent",
        "decoder bwd triton (dW_dec + d acts), bf16 grad",
        "encoder bwd triton (dW_enc + db_enc)",
        "d b_dec = -W_enc @ db_enc",
        "optimizer FusedAdam (+proj+renorm fused)",
    ]
    stages["SUM of our stages"] = sum(stages[s] for s in ours)
    results["stages_ms"] = {s: round(v, 3) for s, v in stages.items()}
    results["checks"] = checks
    results["sweeps_ms"] = {
        name: {str(c): round(v, 4) for c, v in sweep.items()}
        for name, sweep in (("topk", topk_sweep), ("gather", gather_sweep), ("latent_rows", latent_sweep))
    }
    results["chosen"] = {
        "topk": tuple(triton_topk.DEFAULT_CONFIG),
        "sparse": tuple(triton_sparse.DEFAULT_CONFIG),
        "adam": tuple(triton_adam.DEFAULT_CONFIG),
    }
    log("checks:", json.dumps(checks))
    log(f"stage breakdown at d={d} n={n} k={k} B={batch} (ms, median, each stage alone):")
    for s, v in stages.items():
        log(f"  {s:<46} {v:8.3f}")
    empty_cache()


def loss_curve_check(d: int, n: int, k: int, batch: int, steps: int = 30) -> dict[str, Any]:
    """Same init, same batches: triton path vs the torch sparse path, losses step by step."""
    gen = torch.Generator(device=DEV).manual_seed(1)
    # Low-rank data: there is something to learn, so the loss moves within a few steps.
    basis = torch.randn(64, d, device=DEV, generator=gen)
    xs = [torch.randn(batch, 64, device=DEV, generator=gen) @ basis / 8 for _ in range(4)]
    curves = {}
    for kernel in ("triton", "torch"):
        losses: list[float] = []
        step = gpu_saescope_step(d, n, k, xs, kernel, losses, lr=1e-3)
        for i in range(steps):
            step(i)
        curves[kernel] = losses
        del step
        empty_cache()
    rel = [abs(a - b) / abs(b) for a, b in zip(curves["triton"], curves["torch"])]
    return {
        "steps": steps,
        "triton": [round(v, 5) for v in curves["triton"][::5]],
        "torch": [round(v, 5) for v in curves["torch"][::5]],
        "max_rel_diff": round(max(rel), 5),
    }


def run_gpu(args: argparse.Namespace) -> dict[str, Any]:
    import triton

    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if DEV == "cuda" else "CPU (Triton interpreter, dry run)"
    log(f"{name} torch {torch.__version__} triton {triton.__version__}")
    results: dict[str, Any] = {"device": name, "shapes": {}}
    d, n, k, batch = args.shapes[0]
    if not args.no_breakdown:
        sweep_and_breakdown(d, n, k, batch, results)
        results["loss_curve"] = lc = loss_curve_check(d, n, k, batch)
        log("loss curve (every 5th step):", json.dumps(lc))
    for d, n, k, batch in args.shapes:
        key = f"d={d} n={n} k={k} B={batch}"
        xs = [torch.randn(batch, d, device=DEV) for _ in range(3)]
        rows = []
        for path in args.paths:
            empty_cache()
            if DEV == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                step = (
                    gpu_naive_step(d, n, k, xs) if path == "naive" else gpu_saescope_step(d, n, k, xs, path)
                )
                times = time_steps(step, args.warmup, args.iters, cuda=DEV == "cuda")
                peak = torch.cuda.max_memory_allocated() if DEV == "cuda" else None
                rows.append(summarise(path, d, n, batch, times, peak))
                del step
            except Exception as exc:  # report and go on: one failing path must not hide the others
                rows.append({"path": path, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            log(key, json.dumps(rows[-1]))
        results["shapes"][key] = rows
        del xs
    return results


# ----- CPU -----------------------------------------------------------------------------------------
def run_cpu(args: argparse.Namespace) -> dict[str, Any]:
    d, n, k, batch = CPU_SHAPE
    log(f"CPU ({torch.get_num_threads()} threads) torch {torch.__version__}")
    xs = [torch.randn(batch, d) for _ in range(2)]
    results: dict[str, Any] = {"device": "cpu", "shapes": {}}
    rows = []
    for kernel in ("reference", "torch"):
        sae = make_sae(d, n, k, "cpu", kernel)
        opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

        def step(i: int, sae: TopKSAE = sae, opt: torch.optim.Optimizer = opt) -> None:
            x = xs[i % len(xs)]
            out = sae(x)
            (out.recon - x).pow(2).sum(-1).mean().backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sae.set_decoder_norm_to_unit_norm()

        rows.append(summarise(kernel, d, n, batch, time_steps(step, 1, args.cpu_iters, cuda=False), None))
        log(f"d={d} n={n} k={k} B={batch}", json.dumps(rows[-1]))
    results["shapes"][f"d={d} n={n} k={k} B={batch}"] = rows
    return results


def print_table(results: dict[str, Any]) -> None:
    """The compact summary: one row per (shape, path); the ratio is against the shape's first path."""
    head = ("shape (d, n, k, B)", "path", "ms/step", "tok/s", "ratio", "MFU_enc", "peak GiB")
    widths = (30, 9, 8, 9, 6, 7, 8)
    log("")
    log(f"SAE training step on {results['device']}: median ms/step, tokens/s,")
    log("MFU_enc = 2·d·n·tok/s / 989 TFLOP/s, ratio = tok/s over the shape's first path")
    log("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    log("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for shape, rows in results["shapes"].items():
        base = next((r["tok_per_s"] for r in rows if "tok_per_s" in r), None)
        for r in rows:
            if "error" in r:
                log(f"| {shape:<30} | {r['path']:<9} | error: {r['error'][:80]}")
                continue
            cells = (
                shape,
                r["path"],
                f"{r['ms_per_step']:.2f}",
                f"{r['tok_per_s']:,}",
                f"{r['tok_per_s'] / base:.2f}x" if base else "-",
                f"{100 * r['mfu_enc']:.1f}%" if results["device"] != "cpu" else "-",
                f"{r['peak_mem_gib']:.2f}" if "peak_mem_gib" in r else "-",
            )
            log(
                "| "
                + " | ".join(
                    c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
                )
                + " |"
            )


def dry_run_setup(args: argparse.Namespace) -> None:
    """Exercise every line of the GPU mode on CPU: tiny shapes, kernels under the Triton interpreter."""
    global DEV
    if os.environ.get("TRITON_INTERPRET") != "1":
        sys.exit("--dry-run needs TRITON_INTERPRET=1 in the environment (set before Triton is imported)")
    import saescope.kernels as kernels

    DEV = "cpu"
    kernels.resolve_impl = lambda impl, device: impl  # route kernel="triton" to the kernels on CPU
    args.shapes = [(24, 96, 4, 32), (20, 80, 3, 16)]
    args.warmup, args.iters = 1, 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="CPU mode at the demo shape")
    parser.add_argument(
        "--paths", nargs="+", default=["naive", "triton", "torch"], help="naive, triton, torch"
    )
    parser.add_argument("--shapes", type=json.loads, default=GPU_SHAPES, help="JSON list of [d, n, k, B]")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--cpu-iters", type=int, default=3)
    parser.add_argument("--no-breakdown", action="store_true", help="skip the sweep, stages and checks")
    parser.add_argument(
        "--dry-run", action="store_true", help="the GPU code path on tiny CPU tensors (interpreter)"
    )
    args = parser.parse_args()
    if args.dry_run:
        dry_run_setup(args)
    elif not args.cpu and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --cpu (or --dry-run)")
    results = run_cpu(args) if args.cpu else run_gpu(args)
    out_dir = os.environ.get("OUT")
    if out_dir:
        with open(os.path.join(out_dir, "train_step_gpu.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    print_table(results)


if __name__ == "__main__":
    main()
