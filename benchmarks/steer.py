"""Steering speed on CPU: generated tokens per second with and without an intervention (batch 1
and 8), against `model.generate` as the baseline of the loop itself; and `saescope effects` on one
text: the batched, prefix-cached ablations against the same ablations recomputed whole, and the one
backward pass of attribution.

Targets (issue 12): at most 10% overhead from an intervention; at least 15 steered tokens/s at
batch 1 for smollm2-135m. Two interventions are timed: an unconditional `add` (no SAE encoding
needed) and a `clamp` (the SAE encodes every covered position).

Uses the demo's SAE when there is one (`--sae`), else a random-init TopK SAE of the demo's shape
(4608 latents, k=32, resid_post:15): speed does not depend on training.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from saescope.bound import BoundSAE, bind_sae
from saescope.config import ModelSettings
from saescope.hooks import patch_activations
from saescope.sae import SAEConfig, get_architecture
from saescope.sae.formats import save_sae
from saescope.sae.init import initialize
from saescope.steer.edit import Steering
from saescope.steer.effects import active_pairs, clean_pass, effect_tokens, latent_effects
from saescope.steer.generate import Sampling, generate
from saescope.steer.interventions import Intervention
from saescope.steer.steering import make_steering, patch_for, prompt_batch

PROMPTS = [
    "The history of the city begins",
    "In the morning, the scientists",
    "My favourite recipe for dinner is",
    "The function returns a list of",
    "When the train arrived at the station,",
    "The best way to learn a language",
    "Once upon a time, in a small village",
    "The results of the experiment show that",
]
TEXT = "The Eiffel Tower is a wrought-iron lattice tower in Paris, named after the engineer Gustave"


def random_sae(folder: Path) -> Path:
    cfg = SAEConfig(
        architecture="topk",
        d_in=576,
        d_sae=4608,
        k=32,
        model="smollm2-135m",
        hookpoint="model.layers.15",
        hookpoint_alias="resid_post:15",
    )
    sae = get_architecture("topk")(cfg)
    initialize(sae, generator=torch.Generator().manual_seed(0))
    return save_sae(sae, folder / "sae")


class Rate(NamedTuple):
    """Tokens per second of one generation."""

    wall: float
    """Per second of wall time (what a user sees on an idle machine)."""
    cpu: float
    """Per second of this process's CPU time (steady when other processes load the machine)."""


def measured(tokens: int, fn: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Rate(tokens / (time.perf_counter() - wall), tokens / (time.process_time() - cpu))


def generation_rate(
    bound: BoundSAE, rows: int, steering: Steering | None, new_tokens: int
) -> Callable[[], Rate]:
    """A function timing one generation of `rows` prompts through our loop."""
    batch = prompt_batch(bound, PROMPTS[:rows])
    patch = patch_for(bound, steering, batch)
    sampling = Sampling(max_new_tokens=new_tokens)

    def run() -> None:
        out = generate(bound.loaded_model, batch, sampling, patch)
        # a row that reaches EOS early keeps its place in every later forward pass (the batch
        # costs the same), so the batch is timed as rows × new_tokens positions; all rows
        # stopping early would make the timing unfair
        longest = max(len(c.token_ids) for c in out.completions)
        assert longest == new_tokens, "every row stopped early: timing would be unfair"

    return lambda: measured(rows * new_tokens, run)


def hf_rate(bound: BoundSAE, rows: int, new_tokens: int) -> Callable[[], Rate]:
    """The same for `model.generate` (greedy, KV cache): the baseline of the loop itself."""
    batch = prompt_batch(bound, PROMPTS[:rows])
    pad = bound.loaded_model.tokenizer.pad_token_id

    def run() -> None:
        with torch.no_grad():
            bound.loaded_model.model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )

    return lambda: measured(rows * new_tokens, run)


def interleaved_medians(timers: dict[str, Callable[[], Rate]], runs: int) -> dict[str, Rate]:
    """Median rates of each timer over `runs` rounds, every round running each once (after one
    warm-up round), so that load from other processes falls on all of them alike."""
    for timer in timers.values():
        timer()
    rates: dict[str, list[Rate]] = {name: [] for name in timers}
    for _ in range(runs):
        for name, timer in timers.items():
            rates[name].append(timer())
    return {
        name: Rate(statistics.median(r.wall for r in values), statistics.median(r.cpu for r in values))
        for name, values in rates.items()
    }


def overhead(plain: float, steered: float) -> float:
    """Extra time per token of the steered run, in percent."""
    return 100 * (plain / steered - 1)


def generation_figures(bound: BoundSAE, new_tokens: int, runs: int) -> None:
    latent = 7
    add = make_steering(bound, [Intervention(latent, "add", 8.0)])
    clamp = make_steering(bound, [Intervention(latent, "clamp", 8.0)])
    print(
        f"\ngeneration, {new_tokens} new tokens per prompt, greedy, KV cache (median of {runs}, interleaved)"
    )
    print("tokens/s of wall time | of CPU time; overhead vs unsteered in CPU time")
    print(f"{'batch':>5} {'model.generate':>16} {'unsteered':>16} {'add':>24} {'clamp':>24}")
    for rows in (1, 8):
        timers = {
            "hf": hf_rate(bound, rows, new_tokens),
            "plain": generation_rate(bound, rows, None, new_tokens),
            "add": generation_rate(bound, rows, add, new_tokens),
            "clamp": generation_rate(bound, rows, clamp, new_tokens),
        }
        r = interleaved_medians(timers, runs)
        cells = [f"{r[k].wall:6.1f} | {r[k].cpu:6.1f}" for k in ("hf", "plain", "add", "clamp")]
        add_cost, clamp_cost = (overhead(r["plain"].cpu, r[k].cpu) for k in ("add", "clamp"))
        print(
            f"{rows:>5} {cells[0]:>16} {cells[1]:>16} {cells[2]:>15} ({add_cost:+5.1f}%)"
            f" {cells[3]:>15} ({clamp_cost:+5.1f}%)"
        )


def naive_ablation_seconds(bound: BoundSAE, batch_size: int) -> tuple[float, int]:
    """The same ablations with every copy of the text recomputed whole (no prefix cache)."""
    ids = effect_tokens(bound.loaded_model.tokenizer, TEXT, None, True)
    seq = torch.tensor(ids)
    clean = clean_pass(bound, seq)
    positions, latents, values = active_pairs(bound, clean.activations, skip_first=True)
    model, w_dec = bound.loaded_model.model, bound.sae.W_dec
    started = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(positions), batch_size):
            p, i, a = (t[first : first + batch_size] for t in (positions, latents, values))
            change = -(a[:, None] * w_dec[i])

            def ablate(act: torch.Tensor, p: torch.Tensor = p, change: torch.Tensor = change) -> torch.Tensor:
                out = act.clone()
                out[torch.arange(len(p)), p] += change
                return out

            with patch_activations(model, bound.hookpoint, ablate):
                model(input_ids=seq[None, :-1].expand(len(p), -1), use_cache=False).logits.log_softmax(-1)
    return time.perf_counter() - started, len(positions)


def effects_figures(bound: BoundSAE, batch_size: int) -> None:
    latent_effects(bound, TEXT, batch_size=batch_size)  # warm-up
    result = latent_effects(bound, TEXT, batch_size=batch_size)
    naive, pairs = naive_ablation_seconds(bound, batch_size)
    cached = result.ablation_seconds
    print(f"\neffects on one text: {len(result.tokens)} tokens, {pairs} active (position, latent) pairs")
    print(f"  attribution (one forward + backward): {result.attribution_seconds:7.2f} s")
    print(
        f"  ablations, prefix-cached batches:     {cached:7.2f} s  ({1000 * cached / pairs:.1f} ms per pair)"
    )
    print(
        f"  ablations, whole text recomputed:     {naive:7.2f} s  (baseline; {naive / cached:.2f}x the time)"
    )
    print(f"  correlation of ablation and attribution: {result.correlation:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", type=Path, default=Path("runs/demo/sae"))
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="ablated copies per pass (effects)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        sae_dir = args.sae if (args.sae / "sae.safetensors").exists() else random_sae(Path(tmp))
        bound = bind_sae(sae_dir, settings=ModelSettings(device="cpu"))
        print(
            f"CPU, {torch.get_num_threads()} threads; {bound.sae.cfg.model} @ {bound.hookpoint.alias}; "
            f"SAE {sae_dir} ({bound.sae.d_sae} latents, k={bound.sae.cfg.k})"
        )
        generation_figures(bound, args.new_tokens, args.runs)
        effects_figures(bound, args.batch_size)


if __name__ == "__main__":
    main()
