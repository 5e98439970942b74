"""Training defaults at every budget: `saescope train` with no learning-rate options against a
learning-rate sweep, on real activations, at 300k and 3M tokens.

The issue: at 300k tokens the old defaults (a fixed 100-step warm-up, longer than the whole 73-step
run, and the long-run learning rate 2e-4·√(2^14/latents) of Gao et al. 2024) ended at FVU 0.53
where a hand-picked learning rate reached 0.16. The defaults now derive both from the run's length
and width (`saescope.train.schedule`); the target is an FVU within 10% of the best learning rate
of the sweep, at both budgets.

For each budget this trains, in the same run of this script and on the same store (TopK, 4608
latents, k 32, batch 4096 unless told otherwise): the new defaults (no --lr, no --warmup-steps);
the old defaults (--lr 2e-4·√(2^14/latents) --warmup-steps 100); and the sweep, each learning rate
with the default warm-up. It prints each run's FVU on a fixed sample of 32,768 store rows, pooled
as `saescope eval` computes it (the criterion: one fixed set of rows, so the figures compare
without batch noise), and the FVU of the last logged training window (what `saescope train`
prints: the mean of each batch's FVU, which weights the rare high-variance batches less and so
reads higher).

The store: `runs/demo/acts` (200,000 rows of SmolLM2-135M resid_post:15 from `make demo`) or
--acts. On 2 CPU cores the 300k budget takes about 8 minutes, the 3M one about an hour: run one
at a time with --budget, e.g. in the background (nohup).
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch

from saescope.config import TrainConfig
from saescope.sae.formats import load_sae
from saescope.store import ActivationStore
from saescope.train import train
from saescope.train.schedule import default_peak_lr, default_warmup_steps, long_run_lr

BUDGETS = {"300k": 300_000, "3M": 3_000_000}
SWEEPS = {
    "300k": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
    "3M": (1e-3, 2e-3, 4e-3, 8e-3),
}
"""Learning rates of each budget's sweep: factors of 2 on both sides of its best (at 3M tokens a
run takes about 10 minutes on 2 cores, so its sweep is one value shorter)."""
EVAL_ROWS = 32_768
TARGET = 0.10
"""The defaults' FVU may exceed the sweep's best by at most this fraction."""


class Result(NamedTuple):
    """One training run of the table."""

    label: str
    """Which settings (new defaults, old defaults, sweep)."""
    lr: float
    """Its peak learning rate."""
    warmup: int
    """Its warm-up steps."""
    fvu: float
    """FVU of the saved SAE on the fixed store sample."""
    train_fvu: float
    """FVU of the last logged training window, as `saescope train` reports it."""
    minutes: float
    """Wall-clock minutes of the run."""


def eval_rows(store: Path) -> torch.Tensor:
    """A fixed sample of the store's rows (raw activations: the saved SAE folds the scale in)."""
    s = ActivationStore(store)
    g = torch.Generator().manual_seed(1234)
    idx = torch.randperm(s.rows, generator=g)[: min(EVAL_ROWS, s.rows)].sort().values
    return s.get(idx).activations.float()


@torch.no_grad()
def fvu_on(sae_dir: Path, x: torch.Tensor) -> float:
    sae = load_sae(sae_dir)
    err = sum(float((c - sae(c).recon).pow(2).sum()) for c in x.split(4096))
    return err / float((x - x.mean(0)).pow(2).sum())


def run(
    label: str, store: Path, out: Path, tokens: int, args: argparse.Namespace, x: torch.Tensor, **lr: float
) -> Result:
    cfg = TrainConfig(
        acts=store,
        out=out,
        architecture="topk",
        latents=(args.latents,),
        k=(args.k,),
        batch_size=args.batch_size,
        tokens=tokens,
        device="cpu",
        checkpoint_every=0,
        **lr,  # type: ignore[arg-type]
    )
    t = time.perf_counter()
    (trained,) = train(cfg).saes
    minutes = (time.perf_counter() - t) / 60
    steps = tokens // args.batch_size
    peak = cfg.lr or default_peak_lr(args.latents, steps)
    warmup = default_warmup_steps(steps) if cfg.warmup_steps is None else cfg.warmup_steps
    result = Result(label, peak, warmup, fvu_on(out, x), trained.fvu, minutes)
    print(
        f"| {label:24} | {result.lr:9.3g} | {warmup:7d} | {result.fvu:10.4f} | {trained.fvu:11.4f} |"
        f" {minutes:7.1f} |",
        flush=True,
    )
    return result


def budget(name: str, store: Path, tmp: Path, args: argparse.Namespace, x: torch.Tensor) -> None:
    tokens = BUDGETS[name]
    steps = tokens // args.batch_size
    print(
        f"\n{name} tokens: {steps} steps of {args.batch_size}, TopK {args.latents} latents k {args.k},"
        f" store {store}; FVU on {len(x):,} store rows",
        flush=True,
    )
    header = ["settings".ljust(24), f"{'peak lr':>9}", "warm-up", "FVU (rows)", "FVU (train)", "minutes"]
    print("| " + " | ".join(header) + " |")
    print(f"|{'-' * 26}|{'-' * 11}|{'-' * 9}|{'-' * 12}|{'-' * 13}|{'-' * 9}|")
    new = run("defaults (no lr options)", store, tmp / f"{name}-new", tokens, args, x)
    old = None
    if not args.no_old:
        old_lr = {"lr": long_run_lr(args.latents), "warmup_steps": 100}
        old = run("old defaults", store, tmp / f"{name}-old", tokens, args, x, **old_lr)
    rates = args.lrs or SWEEPS[name]
    sweep = [run(f"sweep lr {lr:g}", store, tmp / f"{name}-{lr:g}", tokens, args, x, lr=lr) for lr in rates]
    best = min(sweep, key=lambda r: r.fvu)
    edge = best in (sweep[0], sweep[-1]) and best.fvu < new.fvu  # the optimum may lie beyond it
    excess = new.fvu / best.fvu - 1
    print(
        f"{name}: best of the sweep lr {best.lr:g} FVU {best.fvu:.4f}"
        f"{' (at the edge of the sweep: widen it)' if edge else ''}; defaults (lr {new.lr:.3g}) FVU"
        f" {new.fvu:.4f} = {100 * excess:+.1f}% ({'within' if excess <= TARGET else 'NOT within'}"
        f" {100 * TARGET:.0f}%);"
        + (f" old defaults FVU {old.fvu:.4f} = {100 * (old.fvu / best.fvu - 1):+.1f}%;" if old else "")
        + f" in training-window FVU: defaults {new.train_fvu:.4f},"
        f" best {min(r.train_fvu for r in sweep):.4f}",
        flush=True,
    )
    if not math.isfinite(new.fvu):
        raise SystemExit("the default run diverged")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acts", type=Path, default=Path("runs/demo/acts"), help="a store of real activations")
    p.add_argument("--budget", choices=[*BUDGETS, "all"], default="all")
    p.add_argument("--latents", type=int, default=4608)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lrs", type=float, nargs="+", help="the sweep's learning rates (default: per budget)")
    p.add_argument("--no-old", action="store_true", help="skip the old defaults' run")
    args = p.parse_args()
    if not (args.acts / "manifest.json").exists():
        raise SystemExit(f"no store at {args.acts}: run `make demo` or pass --acts")
    logging.basicConfig(level=logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    x = eval_rows(args.acts)
    names = list(BUDGETS) if args.budget == "all" else [args.budget]
    with tempfile.TemporaryDirectory(prefix="saescope-defaults-") as t:
        for name in names:
            budget(name, args.acts, Path(t), args, x)


if __name__ == "__main__":
    main()
