"""Capture throughput: `saescope capture` against the usual way (whole forward, torch.save), in one run.

CPU (default): SmolLM2-135M (the embedded model) at resid_post:15 on the built-in corpus.
  ours      : the capture loop of `saescope capture` (forward stopped after layer 15, sampled rows
              handed to the background store writer, shards on disk)
  baseline  : the Llama-3 "features from scratch" write-up's way — `output_hidden_states=True`
              over the whole model, then `torch.save` of the selected rows per batch
GPU (--gpu): a random-init Llama-3-8B-shaped model in bf16, 16 × 1024 tokens per batch
  forward_only : forward hook on layer 15 that stops the forward, activations copied to the host
                 (the "hook_stop" rate: the ceiling for capture)
  hidden_states: output_hidden_states=True, copied to the host (the baseline)
  ours         : the full capture loop writing the store to disk
Prints rows (= tokens) per second and the ratios. Both sides read the same model inputs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from saescope import distributed
from saescope.capture import open_writers, run_capture
from saescope.config import CaptureConfig
from saescope.data import batched, collate, iter_model_inputs
from saescope.hookpoints import resolve_hookpoints
from saescope.models import LoadedModel, load_model


def byte_tokenizer():
    """An offline byte-level tokenizer (for the random-init GPU model, which has no tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({"<bos>": 256, "<eos>": 257, "<pad>": 258})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


def time_ours(cfg: CaptureConfig, loaded: LoadedModel) -> tuple[float, int]:
    shutil.rmtree(cfg.out, ignore_errors=True)
    dist = distributed.init("cpu")
    hps = resolve_hookpoints(loaded.model, cfg.hookpoints)
    writers = open_writers(cfg, loaded, hps, dist)
    sync()
    t = time.perf_counter()
    try:
        run_capture(cfg, loaded, hps, writers, dist)
    finally:
        for w in writers:
            w.close()  # waits until every shard is on disk
    sync()
    return time.perf_counter() - t, writers[0].rows_committed


def time_baseline(
    cfg: CaptureConfig, loaded: LoadedModel, layer: int, rows_wanted: int, folder: Path
) -> tuple[float, int]:
    """output_hidden_states over the whole model, torch.save of the selected rows per batch."""
    folder.mkdir(parents=True, exist_ok=True)
    tok = loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    inputs = iter_model_inputs(cfg, tok)
    rows = 0
    sync()
    t = time.perf_counter()
    with torch.inference_mode():
        for i, batch in enumerate(batched(inputs, cfg.batch_size)):
            b = collate(batch, pad, loaded.device)
            out = loaded.model(
                input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True
            )
            acts = out.hidden_states[layer + 1][b.rows.to(loaded.device), b.cols.to(loaded.device)]
            torch.save(acts.to(torch.bfloat16).cpu(), folder / f"layer_{layer}_batch_{i}.pt")
            rows += len(acts)
            if rows >= rows_wanted:
                break
    sync()
    return time.perf_counter() - t, rows


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    os.sync()


def cpu_main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="saescope-bench-"))
    cfg = CaptureConfig(
        model="smollm2-135m",
        dataset="builtin",
        hookpoints=("resid_post:15",),
        tokens=args.tokens,
        out=tmp / "acts",
        context_len=256,
        batch_size=8,
        device="cpu",
    )
    loaded = load_model(cfg)
    print(
        f"CPU, {torch.get_num_threads()} threads; smollm2-135m @ resid_post:15; {args.tokens:,} rows each",
        flush=True,
    )
    warm = CaptureConfig(**{**cfg.__dict__, "tokens": 2048, "out": tmp / "warm"})
    time_ours(warm, loaded)
    results = []
    for _ in range(args.repeats):
        t_ours, n_ours = time_ours(cfg, loaded)
        t_base, n_base = time_baseline(cfg, loaded, 15, args.tokens, tmp / "baseline")
        results.append((n_ours / t_ours, n_base / t_base))
        print(
            f"  ours {n_ours / t_ours:8.0f} rows/s   baseline {n_base / t_base:8.0f} rows/s   "
            f"ratio {t_base / n_base * n_ours / t_ours:.2f}x",
            flush=True,
        )
    ratios = sorted(r[0] / r[1] for r in results)
    print(
        f"\nCPU capture: ours / baseline = {ratios[len(ratios) // 2]:.2f}x median of {len(ratios)} "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}x; target >= 2x); median ours "
        f"{sorted(r[0] for r in results)[len(results) // 2]:.0f} rows/s"
    )
    shutil.rmtree(tmp, ignore_errors=True)


def gpu_main(args: argparse.Namespace) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = True
    bs, T, layer = 16, 1024, 15
    mcfg = LlamaConfig(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=128256,
        max_position_embeddings=4096,
    )
    mcfg._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = LlamaForCausalLM(mcfg).to(torch.bfloat16).eval().requires_grad_(False)
    loaded = LoadedModel(
        model=model,
        tokenizer=byte_tokenizer(),
        name="random-llama3-8b",
        revision=None,
        device=torch.device("cuda"),
        dtype=torch.bfloat16,
    )
    print(
        torch.cuda.get_device_name(),
        torch.__version__,
        "random-init Llama-3-8B shape @ resid_post:15",
        flush=True,
    )
    ids = torch.randint(0, 128000, (bs, T), device="cuda")
    grabbed: dict[str, torch.Tensor] = {}

    class Stop(Exception):
        pass

    def hook(mod, inp, out):
        grabbed["x"] = out[0] if isinstance(out, tuple) else out
        raise Stop

    def forward_only() -> None:
        h = model.model.layers[layer].register_forward_hook(hook)
        try:
            with torch.no_grad():
                model(ids)
        except Stop:
            pass
        finally:
            h.remove()
        grabbed["x"].cpu()

    def hidden_states() -> None:
        with torch.no_grad():
            model(ids, output_hidden_states=True).hidden_states[layer + 1].cpu()

    rates = {}
    for name, fn in [("forward_only", forward_only), ("hidden_states", hidden_states)]:
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.gpu_iters):
            fn()
        torch.cuda.synchronize()
        rates[name] = args.gpu_iters * bs * T / (time.perf_counter() - t)
        print(f"  {name:14s} {rates[name]:10.0f} tok/s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="saescope-bench-", dir=args.tmp))
    tokens = args.gpu_iters * bs * T
    cfg = CaptureConfig(
        model="random",
        dataset="builtin",
        hookpoints=("resid_post:15",),
        tokens=tokens,
        out=tmp / "acts",
        context_len=T,
        batch_size=bs,
        device="cuda",
        shard_mb=512,
    )
    warm = CaptureConfig(**{**cfg.__dict__, "tokens": 2 * bs * T, "out": tmp / "warm"})
    time_ours(warm, loaded)
    t, n = time_ours(cfg, loaded)
    rates["ours"] = n / t
    print(
        f"  {'ours (to disk)':14s} {rates['ours']:10.0f} tok/s  ({n:,} rows, {n * 4096 * 2 / 2**30:.1f} GiB)"
    )
    print(
        f"\nGPU capture to disk / forward-only early stop = {rates['ours'] / rates['forward_only']:.1%}"
        f" (target >= 90%); / output_hidden_states = {rates['ours'] / rates['hidden_states']:.2f}x"
    )
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=8192, help="rows per CPU measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--gpu", action="store_true", help="the GPU measurement instead")
    p.add_argument("--gpu-iters", type=int, default=30)
    p.add_argument("--tmp", default=None, help="folder for the GPU store (needs ~4 GiB per 30 iters)")
    args = p.parse_args()
    if args.gpu:
        if not torch.cuda.is_available():
            sys.exit("--gpu needs CUDA")
        gpu_main(args)
    else:
        cpu_main(args)


if __name__ == "__main__":
    main()
