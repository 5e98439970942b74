"""`saescope train`: the training loop, for one SAE or a sweep trained from one pass over the data.

Stages, each a small function: open the activation source → build one `SAERun` per (stream, width,
k) → restore the newest checkpoint (`--resume`) → loop over batches (every SAE sees every batch) →
save each SAE with its input normalisation folded in. A stream is a hookpoint an SAE reads — or, for
a transcoder, the input it reads and the output it reconstructs (sources.py): a hookpoint naming
every layer (`mlp_in:*`) trains one dictionary per layer from the same forward passes, each in a
folder of its own (`saescope.runs.hookpoint_folder`). Under torchrun every rank reads its slice
of each global batch and DDP averages gradients. Knows nothing about how batches are produced
(sources.py), what the loss is (losses.py), how weights are updated (optim.py), how the learning
rate follows the steps (schedule.py), or which architecture it trains (each brings its own
hyperparameters and penalty).

Throughput is reported once, the same everywhere (progress bar, `metrics.csv`, the final line):
tokens trained in this run ÷ wall-clock seconds since its activation source was ready (the store
opened and verified, or the model loaded) — the initialisation sample, the model's forward passes
when on the fly, set-up and every step, one-time costs (compilation, a first buffer fill) included.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import distributed
from ..config import TrainConfig, to_jsonable
from ..config.architectures import architecture_settings
from ..errors import CheckpointError, ConfigError, SaescopeError
from ..kernels import resolve_impl
from ..models import resolve_device
from ..runs import SAE_WEIGHTS, hookpoint_folder
from ..sae.base import LossTerms, SAEConfig, SparseAutoencoder
from ..sae.formats import save_sae
from ..sae.init import fold_input_scale, geometric_median, initialize
from ..sae.record import TrainingRecord
from ..sae.registry import get_architecture
from ..sae.transcoder import Transcoder
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .dead import DeadLatentTracker
from .logger import MetricsLogger
from .losses import AuxK, SAEObjective
from .optim import SAEOptimizer
from .schedule import (
    default_peak_lr,
    default_warmup_steps,
    learning_rate,
    sparsity_scale,
    sparsity_warmup_steps,
)
from .sources import ModelSource, StoreSource, Stream

log = logging.getLogger(__name__)

SAMPLE_BYTES = 256 * 2**20
"""The most memory the initialisation sample takes (float32 rows of every hookpoint)."""

# Settings that may change between a run and its resumption; everything else must match.
RESUMABLE_FIELDS = {"resume", "log_every", "checkpoint_every", "wandb_project", "device"}


class TrainedSAE(NamedTuple):
    """One trained SAE and how its training ended."""

    path: Path
    """Its folder (cfg.json, sae.safetensors, metrics.csv, training_curves.png)."""
    fvu: float
    """Fraction of variance unexplained of the last logged window: the mean of its training batches'
    FVUs (`saescope eval` pools all tokens instead, which weights high-variance tokens more and
    usually reads lower)."""
    l0: float
    """Mean active latents per token over that window."""
    dead_fraction: float
    """Share of latents that did not fire for --dead-tokens tokens (or the whole run, if shorter)."""
    tokens: int
    """Activations it was trained on (steps × batch size)."""
    tokens_per_second: float
    """Tokens trained in this run per wall-clock second since its activation source was ready (see
    the module docstring); the same figure as the last row of its `metrics.csv`."""


class TrainResult(NamedTuple):
    """The SAE(s) one `train` call trained."""

    saes: list[TrainedSAE]
    """One per SAE of the sweep (empty on torchrun ranks other than 0)."""

    def to_json(self) -> dict[str, Any]:
        return {"saes": [{**s._asdict(), "path": str(s.path)} for s in self.saes]}

    def render(self) -> str:
        return "\n".join(
            f"{s.path}: FVU {s.fvu:.4f}  L0 {s.l0:.1f}  dead {100 * s.dead_fraction:.2f}%"
            f"  ({s.tokens:,} tokens, {s.tokens_per_second:,.0f} tok/s)"
            for s in self.saes
        )


@dataclass
class SAERun:
    """One SAE of the sweep with everything that trains it."""

    name: str
    folder: Path
    stream: Stream
    """The columns of a batch it reads and those it reconstructs."""
    scale_in: float
    """The constant its input is multiplied by in training (E‖s·x‖² = 1; 1 without normalisation)."""
    scale_out: float
    """The same for what it reconstructs (scale_in for an SAE)."""
    sae: SparseAutoencoder
    objective: torch.nn.Module
    optimizer: SAEOptimizer
    tracker: DeadLatentTracker
    logger: MetricsLogger | None
    peak_lr: float
    num_dead: int = 0
    sums: Tensor | None = None
    """Loss terms summed since the last log line (on the device, so steps do not wait)."""
    last: dict[str, float] | None = None


# ----- set-up -----------------------------------------------------------------------------
def open_source(
    cfg: TrainConfig, dist: distributed.DistInfo, device: torch.device
) -> StoreSource | ModelSource:
    transcode = architecture_settings(cfg.architecture).transcodes
    if cfg.acts is not None:
        return StoreSource(cfg.acts, cfg.shuffle, cfg.train_seed, transcode=transcode)
    return ModelSource(cfg, dist, device, transcode=transcode)


def sweep(cfg: TrainConfig, d_in: int) -> list[tuple[int, int | None]]:
    """(latents, k) of every SAE to train."""
    widths = cfg.latents or (cfg.expansion_factor * d_in,)
    ks: tuple[int | None, ...] = cfg.k if get_architecture(cfg.architecture).takes_k else (None,)
    pairs = [(n, k) for n in widths for k in ks]
    for n, k in pairs:
        if k is not None and k > n:
            raise ConfigError(f"--k {k} is larger than the SAE width ({n} latents)")
    return pairs


def identity(cfg: TrainConfig) -> dict[str, Any]:
    settings = {k: v for k, v in to_jsonable(cfg).items() if k not in RESUMABLE_FIELDS}
    # A folder named relatively on one run and absolutely on the next is the same folder.
    for key in ("acts", "out"):
        if settings.get(key) is not None:
            settings[key] = str(Path(settings[key]).resolve())
    return settings


def initial_b_dec(cfg: TrainConfig, normed: Tensor) -> Tensor:
    """The decoder bias every SAE starts from, from a sample of (normalised) activations."""
    if cfg.b_dec_init == "geometric_median":
        return geometric_median(normed)
    if cfg.b_dec_init == "mean":
        return normed.mean(0)
    return torch.zeros(normed.shape[-1], device=normed.device)


def run_folders(cfg: TrainConfig, streams: list[Stream], pairs: list[tuple[int, int | None]]) -> list[Path]:
    """The folder of each (stream, width, k): --out itself for one SAE; a subfolder per stream
    (always for transcoders, so a set of one layer reads like a set) and per sweep member."""
    per_stream = len(streams) > 1 or architecture_settings(cfg.architecture).transcodes
    folders = []
    for stream in streams:
        base = cfg.output / hookpoint_folder(stream.input.alias) if per_stream else cfg.output
        for n, k in pairs:
            member = f"{cfg.architecture}-{n}" + (f"-k{k}" if k else "")
            folders.append(base if len(pairs) == 1 else base / member)
    return folders


def stream_config(
    cfg: TrainConfig, source: StoreSource | ModelSource, stream: Stream, n: int, k: int | None
) -> SAEConfig:
    """The SAEConfig of one dictionary of `stream` (its output named only when it transcodes)."""
    out = stream.output
    return SAEConfig(
        architecture=cfg.architecture,
        d_in=stream.input.width,
        d_sae=n,
        k=k,
        model=source.provenance.model,
        revision=source.provenance.revision,
        hookpoint=stream.input.name,
        hookpoint_alias=stream.input.alias,
        d_out=None if out is None else out.width,
        output_hookpoint="" if out is None else out.name,
        output_hookpoint_alias="" if out is None else out.alias,
        hyperparams=dict(cfg.arch_params),
    )


def build_runs(
    cfg: TrainConfig,
    source: StoreSource | ModelSource,
    scales: dict[str, float],
    sample: Tensor,
    device: torch.device,
    impl: str,
    dist: distributed.DistInfo,
    steps: int,
) -> list[SAERun]:
    streams = source.provenance.streams
    pairs = sweep(cfg, max(s.input.width for s in streams))
    cls = get_architecture(cfg.architecture)
    folders = iter(run_folders(cfg, streams, pairs))
    runs, i = [], 0
    for stream in streams:
        target = stream.target
        b_dec = initial_b_dec(cfg, target.of(sample).to(device) * scales[target.name])
        aux_k = AuxK(target.width // 2 if cfg.aux_k is None else cfg.aux_k, cfg.aux_coefficient)
        for n, k in pairs:
            folder = next(folders)
            sae = cls(stream_config(cfg, source, stream, n, k), device=device)
            seed = torch.Generator(device="cpu").manual_seed(cfg.train_seed + i)
            initialize(sae, generator=seed, b_dec=b_dec)
            runs.append(new_run(cfg, sae, aux_k, folder, stream, scales, device, impl, dist, steps))
            i += 1
    return runs


def new_run(
    cfg: TrainConfig,
    sae: SparseAutoencoder,
    aux_k: AuxK,
    folder: Path,
    stream: Stream,
    scales: dict[str, float],
    device: torch.device,
    impl: str,
    dist: distributed.DistInfo,
    steps: int,
) -> SAERun:
    """Everything that trains `sae`: its objective (DDP-wrapped under torchrun), optimiser, tracker."""
    n = sae.d_sae
    sae.kernel = impl
    objective: torch.nn.Module = SAEObjective(sae, aux_k)
    if dist.enabled:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = SAEOptimizer(
        sae,
        kind=cfg.optimizer,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
    )
    return SAERun(
        name=str(folder.relative_to(cfg.output)) if folder != cfg.output else cfg.output.name,
        folder=folder,
        stream=stream,
        scale_in=scales[stream.input.name],
        scale_out=scales[stream.target.name],
        sae=sae,
        objective=objective,
        optimizer=optimizer,
        tracker=DeadLatentTracker(n, cfg.dead_tokens, device),
        logger=None,
        peak_lr=cfg.lr or default_peak_lr(n, steps),
    )


def input_scales(cfg: TrainConfig, source: StoreSource | ModelSource, sample: Tensor) -> dict[str, float]:
    """Hookpoint name → the constant s with E‖s·x‖² = 1 there (1 when normalisation is off)."""
    scales = {}
    for columns in source.provenance.columns:
        if cfg.normalize == "none":
            scales[columns.name] = 1.0
            continue
        msn = source.mean_squared_norm(columns.name) or float(
            columns.of(sample).float().pow(2).sum(-1).mean()
        )
        if not math.isfinite(msn) or msn <= 0:
            raise ConfigError(
                f"cannot normalise: mean squared norm of the activations at {columns.alias} is {msn}"
            )
        scales[columns.name] = 1.0 / math.sqrt(msn)
    return scales


# ----- checkpoints ------------------------------------------------------------------------
def source_position(source: StoreSource | ModelSource) -> int | None:
    """Where an on-the-fly source resumes: the first model input it has not read (None for a store,
    whose position is the rows consumed)."""
    return source.next_doc if isinstance(source, ModelSource) else None


def checkpoint_state(
    cfg: TrainConfig, runs: list[SAERun], step: int, rows: int, scales: dict[str, float], next_doc: int | None
) -> dict[str, Any]:
    return {
        "identity": identity(cfg),
        "step": step,
        "rows_consumed": rows,
        "next_doc": next_doc,
        "scales": scales,
        "rng": torch.get_rng_state(),
        "runs": [
            {
                "name": r.name,
                "sae": dict(r.sae.state_dict()),
                # Flat tensors in each parameter's own layout (a torch state dict would come back
                # contiguous, and the fused update pairs a parameter with its moments by storage order).
                "optimizer": r.optimizer.state_tensors(),
                "tracker": r.tracker.state_dict(),
                "num_dead": r.num_dead,
            }
            for r in runs
        ],
    }


class Restored(NamedTuple):
    step: int
    """Optimisation steps done."""
    rows_consumed: int
    """Global rows of the data order consumed (where a store resumes)."""
    scales: dict[str, float]
    """The input scale of each hookpoint the run trained with."""
    next_doc: int | None
    """The first model input an on-the-fly source had not read (None for a store)."""


def restore(cfg: TrainConfig, runs: list[SAERun], ckpt_root: Path) -> Restored:
    """Load the newest checkpoint into `runs`."""
    path = latest_checkpoint(ckpt_root)
    if path is None:
        raise CheckpointError(f"--resume: no checkpoint in {ckpt_root}")
    _, state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("identity"), dict):
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint (it records no settings)")
    theirs, ours = state["identity"], identity(cfg)
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise CheckpointError(
                f"cannot resume from {path}: it was trained with {key}={theirs.get(key)!r},"
                f" now {key}={ours.get(key)!r}"
            )
    try:
        if [r["name"] for r in state["runs"]] != [r.name for r in runs]:
            raise CheckpointError(f"cannot resume from {path}: it holds other SAEs")
        for run, saved in zip(runs, state["runs"]):
            run.sae.load_state_dict(saved["sae"])
            run.optimizer.load_state_tensors(saved["optimizer"])
            run.tracker.load_state_dict(saved["tracker"])
            run.num_dead = int(saved["num_dead"])
        torch.set_rng_state(state["rng"])
        next_doc = state.get("next_doc")
        restored = Restored(
            int(state["step"]),
            int(state["rows_consumed"]),
            {str(k): float(v) for k, v in state["scales"].items()},
            None if next_doc is None else int(next_doc),
        )
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} does not fit these SAEs ({str(e).splitlines()[0][:120]})"
        ) from None
    log.info("resumed from %s (step %d)", path, restored.step)
    return restored


# ----- the loop ---------------------------------------------------------------------------
def total_steps(cfg: TrainConfig, source: StoreSource | ModelSource) -> int:
    if cfg.tokens is not None:
        tokens = cfg.tokens
    elif source.rows is not None:
        tokens = int(source.rows * (cfg.epochs or 1.0))
    else:
        tokens = 1_000_000
    steps = tokens // cfg.batch_size
    if steps < 1:
        raise ConfigError(f"the token budget ({tokens}) is smaller than one batch ({cfg.batch_size})")
    return steps


def autocast_context(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    mode = cfg.autocast if cfg.autocast != "auto" else ("bfloat16" if device.type == "cuda" else "none")
    if mode == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_step(
    run: SAERun, batch: Tensor, lr: float, global_batch: int, amp: Any, sparsity: float = 1.0
) -> None:
    """One step of `run` on `batch` (every hookpoint's raw activations side by side), its sparsity
    penalty scaled by `sparsity` (the warm-up's factor)."""
    x = run.stream.input.of(batch) * run.scale_in
    target = None if run.stream.output is None else run.stream.output.of(batch) * run.scale_out
    with amp:
        step_out = run.objective(x, run.tracker.dead_mask, run.num_dead, target, sparsity)
    step_out.terms.loss.backward()
    run.optimizer.step(lr)
    run.optimizer.zero_grad()
    run.tracker.update(step_out.out.latent_indices, step_out.out.latent_acts, global_batch)
    terms = torch.stack([t.detach().float() for t in step_out.terms])
    run.sums = terms if run.sums is None else run.sums + terms


def non_finite_error(run: SAERun, step: int, what: str, ckpt_root: Path) -> SaescopeError:
    last = latest_checkpoint(ckpt_root)
    kept = f"the last good checkpoint is kept in {last}" if last else "no checkpoint was written"
    return SaescopeError(
        f"{run.name}: {what} became non-finite by step {step}; {kept} — lower --lr or check the activations"
    )


def ensure_finite(run: SAERun, step: int, ckpt_root: Path) -> None:
    """Refuse to checkpoint or save weights that a non-finite loss has already corrupted."""
    if not all(bool(torch.isfinite(p).all()) for p in run.sae.parameters()):
        raise non_finite_error(run, step, "the weights", ckpt_root)


class Clock(NamedTuple):
    """Where this run's throughput is counted from (see the module docstring)."""

    started: float
    """`time.perf_counter()` when the run's activation source was ready."""
    start_step: int
    """The step it started from (0, or the checkpoint's step when resumed)."""
    batch_size: int
    """Rows per step."""

    def read(self, done: int) -> dict[str, float]:
        """`tokens_per_s` after step `done` (counted from step 0) and `elapsed_s`, both now."""
        elapsed = time.perf_counter() - self.started
        rate = (done - self.start_step) * self.batch_size / max(elapsed, 1e-9)
        return {"tokens_per_s": rate, "elapsed_s": elapsed}


def flush_metrics(
    run: SAERun,
    step: int,
    tokens: int,
    lr: float,
    steps_in_window: int,
    timing: dict[str, float],
    ckpt_root: Path,
) -> dict[str, float]:
    """Average the window's loss terms (one device sync), log them, refresh the dead count."""
    assert run.sums is not None
    means = (run.sums / steps_in_window).tolist()
    run.sums = None
    names = list(LossTerms._fields)
    metrics = {"step": step, "tokens": tokens, "lr": lr, **dict(zip(names, means))}
    if not all(math.isfinite(v) for v in means):
        raise non_finite_error(run, step, f"the loss ({means[0]})", ckpt_root)
    run.num_dead = run.tracker.count_dead()
    metrics["dead_fraction"] = run.tracker.dead_fraction()
    metrics.update(timing)
    run.last = metrics
    if run.logger is not None:
        run.logger.log(metrics)
    return metrics


def run_loop(
    cfg: TrainConfig,
    runs: list[SAERun],
    batches: Iterator[Tensor],
    steps: int,
    scales: dict[str, float],
    dist: distributed.DistInfo,
    device: torch.device,
    clock: Clock,
    source: StoreSource | ModelSource,
) -> None:
    """Train every run from `clock.start_step` to `steps` (the last step is always logged)."""
    amp = autocast_context(cfg, device)
    ckpt_root = cfg.output / "checkpoints"
    warmup = default_warmup_steps(steps) if cfg.warmup_steps is None else cfg.warmup_steps
    sparsity_warmup = sparsity_warmup_steps(steps)

    def lr_of(run: SAERun, step: int) -> float:
        return learning_rate(
            step,
            peak=run.peak_lr,
            total_steps=steps,
            warmup_steps=warmup,
            schedule=cfg.lr_schedule,
            min_ratio=cfg.lr_min_ratio,
        )

    bar = tqdm(
        total=steps, initial=clock.start_step, unit="step", disable=not dist.is_main, dynamic_ncols=True
    )
    window = 0
    try:
        for step in range(clock.start_step, steps):
            batch = next(batches).to(device=device, dtype=torch.float32, non_blocking=True)
            sparsity = sparsity_scale(step, sparsity_warmup)
            for run in runs:
                train_step(run, batch, lr_of(run, step), cfg.batch_size, amp, sparsity)
            window += 1
            done = step + 1
            if done % cfg.log_every == 0 or done == steps:
                timing = clock.read(done)  # one reading for every SAE of the sweep
                for run in runs:
                    m = flush_metrics(
                        run, done, done * cfg.batch_size, lr_of(run, step), window, timing, ckpt_root
                    )
                window = 0
                bar.set_postfix_str(
                    f"loss {m['loss']:.4g} FVU {m['fvu']:.3f} L0 {m['l0']:.1f}"
                    f" dead {100 * m['dead_fraction']:.1f}% {m['tokens_per_s']:,.0f} tok/s"
                )
            bar.update(1)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < steps:
                save_checkpoint_now(cfg, runs, done, scales, dist, source)
        for run in runs:
            ensure_finite(run, steps, ckpt_root)
    finally:
        # Closed before any error message, so the message is the last line on the terminal.
        bar.close()


def save_checkpoint_now(
    cfg: TrainConfig,
    runs: list[SAERun],
    done: int,
    scales: dict[str, float],
    dist: distributed.DistInfo,
    source: StoreSource | ModelSource,
) -> None:
    """Checkpoint every run after step `done` (rank 0 writes; every rank waits for it)."""
    ckpt_root = cfg.output / "checkpoints"
    for run in runs:
        ensure_finite(run, done, ckpt_root)
    if dist.is_main:
        state = checkpoint_state(cfg, runs, done, done * cfg.batch_size, scales, source_position(source))
        save_checkpoint(ckpt_root, done, state)
    distributed.barrier()


def finish(cfg: TrainConfig, run: SAERun, source: StoreSource | ModelSource, steps: int) -> TrainedSAE:
    """Save the SAE with the normalisation folded in, and close its logs."""
    final = copy.deepcopy(run.sae).float()
    details = dict(source.provenance.details)
    if isinstance(source, ModelSource):
        # The first model input training did not read: where held-out evaluation starts.
        details["next_doc"] = source.next_doc
    record = TrainingRecord.from_dict(
        {
            **details,
            "tokens": steps * cfg.batch_size,
            "steps": steps,
            "config": to_jsonable(cfg),
            "final_metrics": run.last or {},
        }
    )
    final.cfg = final.cfg.with_updates(training=record)
    if cfg.normalize == "none":
        pass
    elif isinstance(final, Transcoder):
        final.fold_scales(run.scale_in, run.scale_out)
    else:
        fold_input_scale(final, run.scale_in)
    save_sae(final, run.folder)
    if run.logger is not None:
        run.logger.close()
    last = run.last or {}
    return TrainedSAE(
        path=run.folder,
        fvu=float(last.get("fvu", float("nan"))),
        l0=float(last.get("l0", float("nan"))),
        dead_fraction=float(last.get("dead_fraction", float("nan"))),
        tokens=steps * cfg.batch_size,
        tokens_per_second=float(last.get("tokens_per_s", float("nan"))),
    )


def describe(
    cfg: TrainConfig, runs: list[SAERun], source: StoreSource | ModelSource, steps: int, impl: str
) -> None:
    """Log what is about to be trained, with the learning rate and warm-up it derived."""
    prov = source.provenance
    streams = [s.input.alias + (f" → {s.output.alias}" if s.output else "") for s in prov.streams]
    shown = ", ".join(streams[:4]) + (f", … ({len(streams)} in all)" if len(streams) > 4 else "")
    log.info(
        "training %d %s(s) on %s (%s, %d columns a row) for %d steps of %d rows; kernel %s",
        len(runs),
        cfg.architecture,
        shown,
        prov.model,
        prov.width,
        steps,
        cfg.batch_size,
        impl,
    )
    warmup = default_warmup_steps(steps) if cfg.warmup_steps is None else cfg.warmup_steps
    rates = ", ".join(sorted({f"{r.peak_lr:.3g}" for r in runs}))
    log.info(
        "peak learning rate %s%s, warm-up %d steps%s",
        rates,
        " (derived from the width and the steps; --lr sets it)" if cfg.lr is None else "",
        warmup,
        " (derived; --warmup-steps sets it)" if cfg.warmup_steps is None else "",
    )


def open_loggers(cfg: TrainConfig, runs: list[SAERun], start_step: int) -> None:
    for run in runs:
        run.logger = MetricsLogger(
            run.folder,
            resume_step=start_step if cfg.resume else None,
            wandb_project=cfg.wandb_project,
            wandb_config=to_jsonable(cfg),
        )


def train(cfg: TrainConfig) -> TrainResult:
    """Train the SAE(s) `cfg` describes; see the module docstring."""
    dist = distributed.init(cfg.device)
    device = resolve_device(cfg.device)
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} is not divisible by the {dist.world_size} ranks")
    impl = resolve_impl(cfg.kernel, device)
    source = open_source(cfg, dist, device)
    if not cfg.resume and dist.is_main:
        refuse_overwrite(cfg.output)
    steps = total_steps(cfg, source)
    # The initialisation sample: 32,768 rows, or 256 MiB of float32 rows of every hookpoint.
    wanted = min(32_768, max(1_024, SAMPLE_BYTES // (4 * source.provenance.width)))
    sample = source.sample(min(wanted, source.rows or steps * cfg.batch_size), seed=cfg.train_seed)
    scales = input_scales(cfg, source, sample)
    runs = build_runs(cfg, source, scales, sample, device, impl, dist, steps)
    del sample
    start_step, rows_consumed = 0, 0
    if cfg.resume:
        restored = restore(cfg, runs, cfg.output / "checkpoints")
        start_step, rows_consumed, scales = restored.step, restored.rows_consumed, restored.scales
        for run in runs:
            run.scale_in, run.scale_out = scales[run.stream.input.name], scales[run.stream.target.name]
        if isinstance(source, ModelSource) and restored.next_doc is not None:
            source.next_doc = restored.next_doc
    if dist.is_main:
        open_loggers(cfg, runs, start_step)
        describe(cfg, runs, source, steps, impl)
    batches = source.batches(cfg.batch_size, rows_consumed, dist, device, steps * cfg.batch_size)
    clock = Clock(source.ready_at, start_step, cfg.batch_size)
    run_loop(cfg, runs, batches, steps, scales, dist, device, clock, source)
    results = []
    if dist.is_main:
        results = [finish(cfg, run, source, steps) for run in runs]
    distributed.barrier()
    return TrainResult(results)


def refuse_overwrite(out: Path) -> None:
    """A finished SAE or checkpoints already in --out: refuse rather than silently overwrite."""
    saved = (out / SAE_WEIGHTS).exists() or any(out.glob(f"*/{SAE_WEIGHTS}"))
    if saved or latest_checkpoint(out / "checkpoints") is not None:
        raise ConfigError(
            f"{out} already holds an SAE or checkpoints; pass --resume to continue it or use another --out"
        )
