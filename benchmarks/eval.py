"""Evaluation throughput on CPU for the demo SAE, with the cost split by forward pass.

`saescope eval` does, per batch of held-out text: one forward pass stopped at the hookpoint (the
reconstruction and sparsity metrics), then four full forward passes (clean, SAE spliced, zero
ablation, mean ablation) for the downstream metrics. This times each kind of pass separately on
the same batches, and the whole `evaluate()` call, and prints tokens per second.

Needs the demo's SAE (`make demo`, or --sae).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from saescope.bound import bind_sae, heldout_corpus
from saescope.config import EvalConfig, ModelSettings
from saescope.evals import Sums, eval_inputs, evaluate, reconstruction_passes, splice
from saescope.hooks import patch_activations


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", type=Path, default=Path("runs/demo/sae"))
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    if not (args.sae / "sae.safetensors").exists():
        raise SystemExit(f"no SAE at {args.sae}: run `make demo` first or pass --sae")
    bound = bind_sae(args.sae, settings=ModelSettings(device="cpu"))
    sae, loaded, hp = bound.sae, bound.loaded_model, bound.hookpoint
    corpus, start = heldout_corpus(sae)
    inputs = eval_inputs(corpus, loaded.tokenizer, start, args.tokens)
    sums = Sums(d_sae=sae.d_sae)
    t = time.perf_counter()
    batches = reconstruction_passes(bound, inputs, args.batch_size, sums)
    reconstruction_seconds = time.perf_counter() - t
    tokens = sum(int(b.sae_mask.sum()) for b in batches)
    print(
        f"CPU, {torch.get_num_threads()} threads; {sae.cfg.model} @ {hp.alias}; SAE {args.sae} "
        f"({sae.d_sae} latents); {tokens:,} evaluation tokens in {len(batches)} batches",
        flush=True,
    )

    times = dict.fromkeys(("clean", "sae spliced", "zero ablation", "mean ablation"), 0.0)
    times = {"reconstruction (to hookpoint)": reconstruction_seconds, **times}
    mean = torch.zeros(sae.d_in)
    with torch.inference_mode():
        for b in batches:
            inputs_ = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "use_cache": False}
            t = time.perf_counter()
            loaded.model(**inputs_)
            times["clean"] += time.perf_counter() - t
            for label, name in (("sae spliced", "sae"), ("zero ablation", "zero"), ("mean ablation", "mean")):
                t = time.perf_counter()
                with patch_activations(loaded.model, hp, splice(sae, b.sae_mask, name, mean)):
                    loaded.model(**inputs_)
                times[label] += time.perf_counter() - t
    total = sum(times.values())
    print(f"| {'pass':30} | {'seconds':>8} | {'share':>6} | {'tokens/s':>9} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 8}|{'-' * 11}|")
    for label, sec in times.items():
        print(f"| {label:30} | {sec:8.2f} | {sec / total:6.1%} | {tokens / sec:9,.0f} |")
    print(f"| {'sum of passes':30} | {total:8.2f} | {1:6.0%} | {tokens / total:9,.0f} |")
    print(
        f"spliced / clean forward cost: {times['sae spliced'] / times['clean']:.2f}x "
        f"(the SAE itself adds {times['sae spliced'] - times['clean']:.2f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp:  # keep the demo's own eval.json as it is
        copy = Path(tmp) / args.sae.name
        copy.mkdir()
        for name in ("cfg.json", "sae.safetensors"):
            shutil.copy(args.sae / name, copy / name)
        t = time.perf_counter()
        evaluate(EvalConfig(saes=(copy,), tokens=args.tokens, batch_size=args.batch_size, device="cpu"))
        whole = time.perf_counter() - t
    print(
        f"whole `saescope eval` (model load, metrics, plots included): {whole:.1f} s"
        f" = {tokens / whole:,.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
