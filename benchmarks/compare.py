"""Figures of `saescope compare` and of the absorption and sparse-probing metrics, each beside a
baseline measured in the same run.

1. Matching two 65,536-latent SAEs with d_in 2,048 (`--latents`, `--d-in`) on this CPU: SAE B is
   SAE A with its latents permuted, half of them nudged (cosine ≈ 0.9 with their original) and the
   other half replaced by fresh random directions — so the answer is known: the assignment must
   recover the planted half. `match_decoders` (the path `saescope compare` takes: a bfloat16
   screen on 256 random directions in blocks of `--chunk-mb`, candidates rescored in float32 at
   full width, a one-to-one assignment on the candidate graph) is timed whole, with its peak
   extra memory (the process's resident set sampled every 20 ms, minus what it held before the
   call) and its CPU seconds (on a shared machine the wall time includes the other processes'
   share of the cores; CPU time does not, and a run on 2 cores of its own takes between half of
   it and all of it). Baselines, same run, same inputs:
   - the dense float32 cosine matrix the naive way needs (latents² × 4 bytes: its size is stated,
     not allocated) and the float32 block screen at full width (exact: no projection, no
     bfloat16) timed on `--naive-rows` rows of A (half planted, half not) and scaled to all rows
     (its cost is linear in the rows), with how often our best match is the exact one there;
   - the exact Hungarian on the dense matrix at `--hungarian-latents` latents (scipy), against
     our path at the same size: what the candidate graph costs in optimality there.
2. Absorption and sparse probing of the demo SAE (`--sae`, default runs/demo/sae) on the CPU:
   the first-letter words read once (shared by both, as `saescope eval --metrics` does), then
   `absorption.measure` and `probing.measure`, each timed, with their headline numbers. Nothing is
   written beside the SAE.

    python benchmarks/compare.py                       # both parts (several minutes on 2 cores)
    python benchmarks/compare.py --skip-metrics        # matching only
    python benchmarks/compare.py --latents 16384       # a smaller matching
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from saescope.compare import absorption, probing
from saescope.compare.matching import match_decoders, screen, unit_rows
from saescope.config import ModelSettings
from saescope.config.compare import AbsorptionSettings

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident() -> int:
    """The process's resident set now (bytes)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@contextmanager
def peak_memory() -> Iterator[dict[str, int]]:
    """The resident set's peak above its level at entry, sampled every 20 ms (`found["peak"]`)."""
    found = {"peak": 0}
    start = resident()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            found["peak"] = max(found["peak"], resident() - start)
            done.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        done.set()
        thread.join()
        found["peak"] = max(found["peak"], resident() - start)


CPU_SECONDS: dict[str, float] = {}
"""Label → CPU seconds (every thread of this process) of the last `timed` call with that label."""


def timed(fn: Callable[[], Any], label: str = "") -> tuple[Any, float]:
    """(result, wall seconds); with a label, its CPU seconds go to `CPU_SECONDS` — on a shared
    machine the wall time counts the other processes' share of the cores, the CPU time does not."""
    started, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if label:
        CPU_SECONDS[label] = time.process_time() - cpu
    return out, time.perf_counter() - started


def load() -> str:
    """The machine's load, in words (the wall times above are of a machine this busy)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def planted_pair(latents: int, d_in: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, B, partner): B[partner[i]] is A[i] nudged for the first half of A's latents (−1 for the
    rest, whose rows in B are fresh random directions)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(latents, d_in, generator=gen)
    a /= a.norm(dim=1, keepdim=True)
    b = torch.randn(latents, d_in, generator=gen)
    b /= b.norm(dim=1, keepdim=True)
    half = latents // 2
    b[:half] = a[:half] + 0.48 * b[:half]  # cosine ≈ 0.9 with the original
    order = torch.randperm(latents, generator=gen)
    b = b[order]
    partner = torch.full((latents,), -1, dtype=torch.int64)
    where = torch.empty_like(order)
    where[order] = torch.arange(latents)
    partner[:half] = where[:half]
    return a, b, partner


def screens(a: torch.Tensor, b: torch.Tensor, args: argparse.Namespace) -> tuple[Any, float, float]:
    """The exact float32 full-width screen of rows `a` against all of `b` (its candidates and
    seconds), and the seconds of the bfloat16 full-width screen of the same rows."""
    exact, seconds = timed(lambda: screen(a, b, args.candidates, args.chunk_mb, dtype=torch.float32), "f32")
    _, low = timed(lambda: screen(a, b, args.candidates, args.chunk_mb), "bf16")
    return exact[0], seconds, low


def matching(args: argparse.Namespace) -> None:
    n, d = args.latents, args.d_in
    print(f"\n## matching {n:,} × {n:,} latents, d_in {d:,} ({torch.get_num_threads()} torch threads)")
    (a, b, partner), seconds = timed(lambda: planted_pair(n, d))
    print(f"built the planted pair in {seconds:.1f} s (decoders: {2 * a.numel() * 4 / MIB:,.0f} MiB float32)")
    with peak_memory() as memory:
        m, ours = timed(lambda: match_decoders(a, b, args.candidates, chunk_mb=args.chunk_mb), "match")
    cpu = CPU_SECONDS["match"]
    planted = partner >= 0
    got = dict(zip(m.assignment.latent_a.tolist(), m.assignment.latent_b.tolist()))
    recovered = sum(got.get(i) == int(partner[i]) for i in planted.nonzero().flatten().tolist())
    a_best_ok = int((m.a_to_b.latent[planted] == partner[planted]).sum())
    shared = ", ".join(f"≥{t}: {f:.3f}" for t, f in m.shared.items())
    print(
        f"match_decoders ({m.assignment.method}, {args.candidates} candidates, screened on "
        f"{m.screened_on or 'all'} dimensions, chunk {args.chunk_mb} MiB, {load()}): "
        f"{ours:.1f} s wall, {cpu:.1f} CPU s (on 2 cores of its own: between {cpu / 2:.0f} and "
        f"{cpu:.0f} s), peak extra memory {memory['peak'] / MIB:,.0f} MiB"
    )
    print(
        f"  planted pairs recovered by the assignment: {recovered:,} of {int(planted.sum()):,}; "
        f"best match A→B right for {a_best_ok:,}; shared {shared}; "
        f"{m.assignment.fallback_pairs:,} latents paired after the candidate matching; summed cosine "
        f"{m.assignment.total:,.1f} of at most {m.assignment.upper_bound:,.1f}"
    )
    dense_gib = n * n * 4 / (1 << 30)
    rows = min(args.naive_rows, n)
    sample = torch.arange(0, n, max(1, n // rows))[:rows]  # both halves: planted and unrelated
    truth, naive, low = screens(unit_rows(a[sample]), unit_rows(b), args)
    print(
        f"baseline: the dense float32 cosine matrix needs {dense_gib:,.1f} GiB (not allocated); the exact "
        f"float32 block screen at full width took {naive:.2f} s ({CPU_SECONDS['f32']:.1f} CPU s) on {rows:,} "
        f"rows → {naive * n / rows:,.0f} s ({CPU_SECONDS['f32'] * n / rows:,.0f} CPU s) for all {n:,} "
        f"(bfloat16 at full width, same rows: {low:.2f} s → {low * n / rows:,.0f} s, "
        f"{CPU_SECONDS['bf16'] * n / rows:,.0f} CPU s)"
    )
    best, strong = truth.latent[:, 0], truth.cosine[:, 0] >= 0.5
    same = m.a_to_b.latent[sample] == best
    print(
        f"  on those {rows:,} rows our best match equals the exact one for {int(same.sum()):,} "
        f"({int(same[strong].sum()):,} of the {int(strong.sum()):,} whose best cosine is ≥ 0.5); where it "
        f"differs, ours is lower by at most {float((truth.cosine[:, 0] - m.a_to_b.cosine[sample]).max()):.3f}"
    )
    del a, b
    h = args.hungarian_latents
    a, b, _ = planted_pair(h, d, seed=1)
    exact, hungarian = timed(lambda: match_decoders(a, b), "hungarian")
    sparse, candidate = timed(lambda: match_decoders(a, b, args.candidates, dense_limit=1), "candidates")
    print(
        f"baseline at {h:,} × {h:,}: exact Hungarian on the dense matrix {hungarian:.1f} s "
        f"({CPU_SECONDS['hungarian']:.1f} CPU s; summed cosine {exact.assignment.total:,.2f}); our candidate "
        f"path {candidate:.1f} s ({CPU_SECONDS['candidates']:.1f} CPU s; summed cosine "
        f"{sparse.assignment.total:,.2f}; same pairs for "
        f"{int((exact.assignment.latent_b == sparse.assignment.latent_b).sum()):,} of {h:,} latents)"
    )


def metrics(args: argparse.Namespace) -> None:
    from saescope.bound import bind_sae

    print(f"\n## absorption and sparse probing of {args.sae} ({torch.get_num_threads()} torch threads)")
    (bound, seconds) = timed(lambda: bind_sae(args.sae, settings=ModelSettings(device="cpu")))
    print(f"model and SAE loaded in {seconds:.1f} s ({bound.sae.d_sae:,} latents, {bound.hookpoint.alias})")
    words, read = timed(lambda: absorption.word_activations(bound, AbsorptionSettings()), "words")
    print(
        f"first-letter words read in {read:.1f} s: {len(words.train):,} training, {len(words.test):,} "
        f"held-out, of {words.vocabulary:,} letter-only tokens"
    )
    found, absorbed = timed(lambda: absorption.measure(bound, words=words), "absorption")
    skipped = ", ".join(f"{s.letter} ({s.reason})" for s in found.skipped) or "none"
    print(
        f"absorption in {absorbed:.1f} s: mean fraction {found.mean_fraction}, full-absorption rate "
        f"{found.full_rate} over {len(found.letters)} letters; skipped: {skipped}"
    )
    probed, seconds_probing = timed(lambda: probing.measure(bound, words=words), "probing")
    print(f"sparse probing in {seconds_probing:.1f} s:")
    for t in probed.tasks:
        if not t.measured:
            print(f"  {t.task}: not measured ({t.reason})")
            continue
        ks = " ".join(f"k={k} {v:.3f}" for k, v in t.accuracy.items())
        print(
            f"  {t.task}: {ks}; ceiling {t.ceiling:.3f}; floor k=1 {t.floor[1]:.3f} "
            f"({t.test_examples:,} held-out examples, classes {', '.join(t.classes[:6])})"
        )
    total = read + absorbed + seconds_probing
    cpu = sum(CPU_SECONDS[k] for k in ("words", "absorption", "probing"))
    print(
        f"absorption + probing together: {total:.1f} s wall, {cpu:.1f} CPU s (on 2 cores of its own: "
        f"between {cpu / 2:.0f} and {cpu:.0f} s; target ≤ 180 s), model load not counted; {load()}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latents", type=int, default=65_536)
    p.add_argument("--d-in", type=int, default=2_048)
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--chunk-mb", type=int, default=256)
    p.add_argument("--naive-rows", type=int, default=2_048)
    p.add_argument("--hungarian-latents", type=int, default=4_096)
    p.add_argument("--sae", type=Path, default=Path("runs/demo/sae"))
    p.add_argument("--skip-matching", action="store_true")
    p.add_argument("--skip-metrics", action="store_true")
    args = p.parse_args()
    if not args.skip_matching:
        matching(args)
    if not args.skip_metrics:
        if not (args.sae / "sae.safetensors").exists():
            raise SystemExit(f"no SAE at {args.sae}: run `make demo` first or pass --sae")
        metrics(args)


if __name__ == "__main__":
    main()
