"""Circuit figures, one subcommand (and one function) per figure, baselines measured in the same run.

  training : transcoders at every layer trained in ONE pass over the model (`saescope train --arch
             transcoder --hookpoint mlp_in:*`) against capture alone — the same forward passes
             producing the same (MLP input, MLP output) pairs of every layer through the same shuffle
             buffer, with nothing trained. Default: SmolLM2-135M (the embedded model, 30 layers,
             d_model 576), 4,608 latents (expansion 8), k 32, on CPU.
             Prints tokens per second of each and their ratio.

  graph    : the attribution graph of a 16-token prompt through 30 transcoders of 4,608 latents (k
             32) on a random-init model of SmolLM2-135M's shape (speed does not depend on training),
             with the edges of the 500 most influential latents: wall time of each phase, peak
             memory (max RSS), replacement score, and the 20-node check against the real model.
             Target: at most 60 s on 2 CPU cores. Prints wall and CPU time of each phase, and the
             load average (wall time on shared cores says little without it).

Usage: python benchmarks/circuit.py training [--tokens N] [--latents N] [--device cpu]
       python benchmarks/circuit.py graph [--layers 30] [--latents 4608] [--tokens 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from saescope.config import TrainConfig
from saescope.distributed import DistInfo
from saescope.models import resolve_device
from saescope.train.sources import ModelSource
from saescope.train.trainer import train


def training(args: argparse.Namespace) -> None:
    """Figure 1: every layer's transcoder in one pass, against capture alone (same settings)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=args.model,
            architecture="transcoder",
            hookpoint="mlp_in:*",
            latents=(args.latents,),
            k=(args.k,),
            tokens=args.tokens,
            batch_size=args.batch_size,
            context_len=args.context_len,
            device=args.device,
            checkpoint_every=0,
            log_every=max(1, args.tokens // args.batch_size),
            out=Path(tmp) / "transcoders",
        )
        device = resolve_device(cfg.device)
        one = DistInfo(rank=0, world_size=1, local_rank=0)
        steps = cfg.tokens // cfg.batch_size  # type: ignore[operator]
        source = ModelSource(cfg, one, device, transcode=True)
        rows = 0
        for batch in source.batches(cfg.batch_size, 0, one, device, steps * cfg.batch_size):
            rows += len(batch)
        capture_rate = rows / (time.perf_counter() - source.ready_at)
        del source
        result = train(cfg)
        rate = result.saes[0].tokens_per_second
        layers = len(result.saes)
        mean_fvu = sum(s.fvu for s in result.saes) / layers
    print(
        f"model {args.model}: {layers} layers, {args.latents} latents, k {args.k},"
        f" {steps} steps of {args.batch_size} tokens"
    )
    print(f"capture alone (pairs of every layer, same passes and buffer): {capture_rate:,.0f} tok/s")
    print(
        f"transcoders of every layer, one pass: {rate:,.0f} tok/s ({rate / capture_rate:.2f}x capture alone)"
    )
    print(f"mean training FVU over layers (last logged window): {mean_fvu:.3f}")
    print(f"torch threads: {torch.get_num_threads()}, device {device}")


def graph(args: argparse.Namespace) -> None:
    """Figure 2: one attribution graph of the demo model's shape (module docstring)."""
    import resource
    from types import SimpleNamespace

    from transformers import LlamaConfig, LlamaForCausalLM

    from saescope.circuit.attribution import GraphSettings, transcoder_graph
    from saescope.circuit.prune import graph_scores, prune
    from saescope.circuit.validation import validate
    from saescope.sae import SAEConfig, get_architecture

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=args.layers,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    transcoders = {}
    for layer in range(args.layers):
        cfg = SAEConfig(
            architecture="transcoder",
            d_in=576,
            d_sae=args.latents,
            k=32,
            d_out=576,
            model="random",
            hookpoint=f"model.layers.{layer}.mlp:input",
            hookpoint_alias=f"mlp_in:{layer}",
        )
        tc = get_architecture("transcoder")(cfg)
        with torch.no_grad():
            rows = torch.randn(args.latents, 576)
            tc.W_enc.copy_((rows / rows.norm(dim=1, keepdim=True)).t())
            tc.W_dec.copy_(1e-3 * torch.randn(args.latents, 576))
        transcoders[layer] = tc.eval()
    ids = torch.randint(0, 49152, (args.tokens,)).tolist()
    loaded = SimpleNamespace(model=model, name="random-smollm2-shape")
    started, cpu = time.perf_counter(), time.process_time()
    built = transcoder_graph(
        loaded,
        transcoders,
        ids,
        "random",
        [str(i) for i in ids],
        None,
        GraphSettings(max_feature_nodes=args.feature_nodes, batch_size=args.batch_size),
    )
    graph_seconds, graph_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    pruned = prune(built.graph)
    scores = graph_scores(built.graph)
    prune_seconds, prune_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    checked = validate(built.graph, built.edits, model, 20)
    check_seconds, check_cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    g = built.graph
    print(
        f"{args.layers} transcoders of {args.latents} latents (k 32), {args.tokens}-token prompt, "
        f"{g.active_latents:,} active latents, edges of {len(g.indices('latent'))} latents, "
        f"{args.threads} threads"
    )
    print(
        f"wall: graph {graph_seconds:.1f} s; pruning + scores {prune_seconds:.1f} s; "
        f"20-node check {check_seconds:.1f} s"
    )
    print(
        f"cpu (all threads): graph {graph_cpu:.1f} s; pruning + scores {prune_cpu:.1f} s; "
        f"20-node check {check_cpu:.1f} s"
    )
    load = os.getloadavg()[0]
    print(
        f"total {graph_seconds + prune_seconds + check_seconds:.1f} s wall (target <= 60 s), "
        f"{graph_cpu + prune_cpu + check_cpu:.1f} s cpu; 1-minute load average at the end {load:.1f} "
        f"on {os.cpu_count()} cores; peak memory (max RSS) {peak:,.0f} MiB"
    )
    print(
        f"replacement score {scores.replacement:.3f}, completeness {scores.completeness:.3f}; kept "
        f"{int(pruned.nodes.sum())} nodes, {int(pruned.edges.sum())} edges; "
        f"replacement gap {built.replacement_gap:.1e}"
    )
    r = "not measured" if checked.correlation is None else f"{checked.correlation:.3f}"
    print(f"predicted vs measured ablation correlation (random weights, no meaning): {r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    figures = parser.add_subparsers(dest="figure", required=True)
    fig = figures.add_parser("training", help=training.__doc__)
    fig.add_argument("--model", default="smollm2-135m")
    fig.add_argument("--tokens", type=int, default=16_384)
    fig.add_argument("--batch-size", type=int, default=1024)
    fig.add_argument("--latents", type=int, default=4608)
    fig.add_argument("--k", type=int, default=32)
    fig.add_argument("--context-len", type=int, default=256)
    fig.add_argument("--device", default="cpu")
    fig.set_defaults(run=training)
    fig = figures.add_parser("graph", help=graph.__doc__)
    fig.add_argument("--layers", type=int, default=30)
    fig.add_argument("--latents", type=int, default=4608)
    fig.add_argument("--tokens", type=int, default=16)
    fig.add_argument("--feature-nodes", type=int, default=500)
    fig.add_argument("--batch-size", type=int, default=64)
    fig.add_argument("--threads", type=int, default=2)
    fig.set_defaults(run=graph)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
