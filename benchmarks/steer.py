"""Steering speed on CPU: generated tokens per second with and without an intervention (batch 1
and 8), against `model.generate` as the baseline of the loop itself; `saescope effects` on one text:
the batched, prefix-cached ablations against the same ablations recomputed whole, and the one
backward pass of attribution; and the command line against the server for the same work.

Targets (issue 12): at most 10% overhead from an intervention; at least 15 steered tokens/s at
batch 1 for smollm2-135m. Two interventions are timed: an unconditional `add` (no SAE encoding
needed) and a `clamp` (the SAE encodes every covered position).

Command line vs server (issue 17): `saescope steer --json` as a subprocess and a real
`saescope serve` process answering POST /api/steer, the same prompt, edit and length, in
interleaved rounds; each reports its own generation speed (model load excluded: the command line's
load is read from its log and shown apart), and the command line must be within 10% of the
server. The same for `saescope effects` against POST /api/effects (its ablation and attribution
seconds). Both sides run on the same --threads (default 0: the command's own default).

Uses the demo's SAE when there is one (`--sae`), else a random-init TopK SAE of the demo's shape
(4608 latents, k=32, resid_post:15): speed does not depend on training.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

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


# ----- the command line against the server ------------------------------------------------------
CLI_PROMPT = "The history of the city begins"
LOADED = re.compile(r"loaded .* in ([0-9.]+) s")


class Side(NamedTuple):
    """One command-line or server run of the same generation."""

    tokens_per_second: float
    """Steered tokens per second of generation (model load excluded)."""
    wall: float
    """Seconds of the whole command or request."""
    load: float | None
    """Seconds the command line spent loading the model (None for the server: loaded before)."""


def cli_steer(sae: Path, edit: str, new_tokens: int, threads: int) -> Side:
    """`saescope steer --json` as a subprocess."""
    argv = [sys.executable, "-m", "saescope", "steer", str(sae), "--prompt", CLI_PROMPT, "--steer", edit]
    argv += ["--max-new-tokens", str(new_tokens), "--no-controls", "--target", " the", "--no-stream"]
    argv += ["--threads", str(threads), "--json"]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"saescope steer failed: {proc.stderr[-2000:]}")
    loaded = LOADED.search(proc.stderr)
    rate = json.loads(proc.stdout)["tokens_per_second"]["steered"]
    return Side(rate, wall, float(loaded.group(1)) if loaded else None)


def cli_effects(sae: Path, threads: int) -> tuple[float, float]:
    """(ablation + attribution seconds, wall seconds) of `saescope effects --json` as a subprocess."""
    argv = [sys.executable, "-m", "saescope", "effects", str(sae), "--text", TEXT, "--threads", str(threads)]
    started = time.perf_counter()
    proc = subprocess.run([*argv, "--json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"saescope effects failed: {proc.stderr[-2000:]}")
    seconds = json.loads(proc.stdout)["seconds"]
    return seconds["ablation"] + seconds["attribution"], wall


@contextmanager
def served(run: Path, threads: int) -> Iterator[str]:
    """`saescope serve RUN --port 0` as its own process; yields its address once the model is loaded."""
    import httpx

    command = [sys.executable, "-m", "saescope", "serve", str(run), "--port", "0", "--threads", str(threads)]
    command += ["--max-effects-tokens", "256"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if "saescope serving on http://" in line:
                url = line.split()[-1]
                break
        else:
            raise SystemExit("saescope serve did not start")
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
        while not httpx.get(f"{url}/api/status", timeout=30).json()["loaded"]:
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def server_steer(url: str, latent: int, value: float, new_tokens: int) -> Side:
    """POST /api/steer of the same generation."""
    import httpx

    body: dict[str, Any] = {
        "prompts": [CLI_PROMPT],
        "interventions": [{"latent": latent, "mode": "add", "value": value}],
        "max_new_tokens": new_tokens,
        "controls": False,
        "targets": [" the"],
    }
    started = time.perf_counter()
    reply = httpx.post(f"{url}/api/steer", json=body, timeout=600)
    wall = time.perf_counter() - started
    reply.raise_for_status()
    rate = next(v["tokens_per_second"] for v in reply.json()["variants"] if v["variant"] == "steered")
    return Side(rate, wall, None)


def server_effects(url: str) -> tuple[float, float]:
    """(ablation + attribution seconds, wall seconds) of POST /api/effects on the same text."""
    import httpx

    started = time.perf_counter()
    reply = httpx.post(f"{url}/api/effects", json={"text": TEXT}, timeout=600)
    wall = time.perf_counter() - started
    reply.raise_for_status()
    seconds = reply.json()["seconds"]
    return seconds["ablation"] + seconds["attribution"], wall


def cli_against_server(sae_dir: Path, new_tokens: int, runs: int, threads: int, scratch: Path) -> None:
    """The command line and the server, the same generation and effects, interleaved (see the module
    docstring)."""
    run = scratch / "run"
    shutil.copytree(sae_dir, run / "sae")
    latent, value = 7, 8.0
    cli: list[Side] = []
    server: list[Side] = []
    cli_fx: list[tuple[float, float]] = []
    server_fx: list[tuple[float, float]] = []
    with served(run, threads) as url:
        server_steer(url, latent, value, new_tokens)  # warm-up
        server_effects(url)
        for _ in range(runs):
            cli.append(cli_steer(run / "sae", f"{latent}:add:{value:g}", new_tokens, threads))
            server.append(server_steer(url, latent, value, new_tokens))
            cli_fx.append(cli_effects(run / "sae", threads))
            server_fx.append(server_effects(url))
    shown = threads or "the default"
    print(
        f"\ncommand line vs server, {new_tokens} steered tokens, batch 1, threads {shown} (median of {runs})"
    )
    c_rate = statistics.median(s.tokens_per_second for s in cli)
    s_rate = statistics.median(s.tokens_per_second for s in server)
    c_wall = statistics.median(s.wall for s in cli)
    s_wall = statistics.median(s.wall for s in server)
    loads = [s.load for s in cli if s.load is not None]
    load = f"{statistics.median(loads):.1f} s" if loads else "not logged"
    print(f"  steer    command line {c_rate:6.1f} tok/s (whole command {c_wall:.1f} s, model load {load})")
    print(f"           server       {s_rate:6.1f} tok/s (whole request {s_wall:.1f} s)")
    print(f"           command line / server = {c_rate / s_rate:.2f} ({within(c_rate / s_rate)} 10%)")
    c_fx = statistics.median(f for f, _ in cli_fx)
    s_fx = statistics.median(f for f, _ in server_fx)
    c_fx_wall = statistics.median(w for _, w in cli_fx)
    s_fx_wall = statistics.median(w for _, w in server_fx)
    print(
        f"  effects  command line {c_fx:6.2f} s of ablation + attribution (whole command {c_fx_wall:.1f} s)"
    )
    print(f"           server       {s_fx:6.2f} s (whole request {s_fx_wall:.1f} s)")
    print(f"           server / command line time = {s_fx / c_fx:.2f} ({within(s_fx / c_fx)} 10%)")


def within(ratio: float) -> str:
    """Whether a speed ratio (command line over server) is within 10%."""
    return "within" if ratio >= 0.9 else "NOT within"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", type=Path, default=Path("runs/demo/sae"))
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="ablated copies per pass (effects)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default 0: saescope's default)")
    p.add_argument("--only-compare", action="store_true", help="only the command line against the server")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sae_dir = args.sae if (args.sae / "sae.safetensors").exists() else random_sae(Path(tmp))
        if not args.only_compare:
            bound = bind_sae(sae_dir, settings=ModelSettings(device="cpu", threads=args.threads))
            print(
                f"CPU, {torch.get_num_threads()} threads; {bound.sae.cfg.model} @ {bound.hookpoint.alias}; "
                f"SAE {sae_dir} ({bound.sae.d_sae} latents, k={bound.sae.cfg.k})"
            )
            generation_figures(bound, args.new_tokens, args.runs)
            effects_figures(bound, args.batch_size)
        cli_against_server(sae_dir, args.new_tokens, args.runs, args.threads, Path(tmp))


if __name__ == "__main__":
    main()
