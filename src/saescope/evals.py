"""`saescope eval`: how well saved SAEs reconstruct, how sparse they are, and what splicing costs.

For each SAE, over held-out text (by default the SAE's own corpus after the inputs its store
captured), at the positions the SAE is meant for (every token but BOS and document separators):

- reconstruction: MSE, FVU = Σ‖x − x̂‖² / Σ‖x − mean(x)‖² (against the mean, SAELens #665),
  explained variance, cosine, ‖x̂‖/‖x‖, relative reconstruction bias γ = E‖x̂‖² / E[x̂·x]
  (Rajamanoharan et al. 2024; γ < 1 means shrinkage);
- sparsity: L0 (mean and distribution), dead latents (never fired), dense latents (fire on more
  than 10% of tokens), per-latent frequency (saved), log10-density histogram;
- downstream: the SAE's reconstruction replaces the activation at those positions (other positions
  keep theirs), and next-token cross-entropy is compared with the clean model, zero ablation and
  mean ablation (the mean activation over the evaluation tokens, from a first pass):
  CE recovered = (CE_ablated − CE_spliced) / (CE_ablated − CE_clean), ΔCE = CE_spliced − CE_clean,
  and KL(clean ‖ spliced) (SAEBench's core metrics). Predictions are scored at the same positions.

A transcoder (`mlp_in:L` → `mlp_out:L`) is measured on what it reconstructs, the MLP's output:
FVU and the rest compare its output with the MLP's, and downstream its output replaces the MLP's
(zero and mean ablation ablate the MLP's output) — the CE and KL of one layer's MLP replaced.
`replaced_every_mlp` measures a transcoder set's CE and KL with every MLP replaced at once.

Writes `eval.json`, `eval_latents.safetensors` and PNG plots beside each SAE; several SAEs also get
one comparison table and an L0-vs-FVU plot. The other metric families of `saescope eval --metrics`
(absorption, probing: measured by `saescope.compare.evaluate`, which runs this one for core) are
added to eval.json by `record_family` and kept when a core evaluation of the same weights replaces
it. Knows nothing about training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .bound import BoundSAE, bind_sae, heldout_corpus, rewriting
from .config import CorpusSettings, EvalConfig, model_of, to_jsonable
from .config.eval import METRIC_FAMILIES
from .data import InputBatch, ModelInput, check_corpus, iter_model_inputs
from .errors import SaescopeError
from .files import file_sha256, json_safe, read_json, text_sha256, write_json, write_safetensors
from .hookpoints import Hookpoint
from .models import LoadedModel
from .positions import iter_positions
from .runs import SAE, SAE_EVAL, eval_file, is_sae_folder
from .sae.base import SparseAutoencoder
from .sae.formats import WEIGHTS_FILE
from .sae.source import sae_home

log = logging.getLogger(__name__)

DENSE_THRESHOLD = 0.1
EVALS_DIR = "evals"
"""Beside each SAE: every evaluation run, one JSON file per (weights, settings)."""
POSITIONS_NOTE = (
    "activations are replaced, and next-token predictions scored, at every position except BOS, "
    "document separators and padding; those keep their clean activations"
)


# ----- accumulation -----------------------------------------------------------------------
@dataclass
class Sums:
    """Running sums over evaluation tokens (float64 where it matters)."""

    d_sae: int
    tokens: int = 0
    sq_err: float = 0.0
    sq_norm: float = 0.0
    sum_x: Tensor | None = None
    cos: float = 0.0
    norm_ratio: float = 0.0
    recon_sq_norm: float = 0.0
    recon_dot_x: float = 0.0
    l0: list[Tensor] = field(default_factory=list)
    fired: Tensor | None = None
    act_sum: Tensor | None = None
    ce: dict[str, float] = field(default_factory=dict)
    kl: dict[str, float] = field(default_factory=dict)
    scored: int = 0

    def add_reconstruction(self, x: Tensor, recon: Tensor, acts: Tensor, idx: Tensor) -> None:
        x64, r64 = x.double(), recon.double()
        self.tokens += x.shape[0]
        self.sq_err += float((x64 - r64).pow(2).sum())
        self.sq_norm += float(x64.pow(2).sum())
        s = x64.sum(0)
        self.sum_x = s if self.sum_x is None else self.sum_x + s
        xn, rn = x64.norm(dim=-1), r64.norm(dim=-1)
        self.cos += float(((x64 * r64).sum(-1) / (xn * rn).clamp_min(1e-12)).sum())
        self.norm_ratio += float((rn / xn.clamp_min(1e-12)).sum())
        self.recon_sq_norm += float(r64.pow(2).sum())
        self.recon_dot_x += float((x64 * r64).sum())
        active = acts > 0
        self.l0.append(active.sum(-1).cpu())
        fired = torch.zeros(self.d_sae, dtype=torch.float64)
        fired.index_add_(0, idx[active].cpu(), torch.ones(int(active.sum()), dtype=torch.float64))
        act_sum = torch.zeros(self.d_sae, dtype=torch.float64)
        act_sum.index_add_(0, idx[active].cpu(), acts[active].double().cpu())
        self.fired = fired if self.fired is None else self.fired + fired
        self.act_sum = act_sum if self.act_sum is None else self.act_sum + act_sum

    def add_loss(self, name: str, ce: float, kl: float | None) -> None:
        self.ce[name] = self.ce.get(name, 0.0) + ce
        if kl is not None:
            self.kl[name] = self.kl.get(name, 0.0) + kl


# ----- one batch --------------------------------------------------------------------------
class Batch(NamedTuple):
    input_ids: Tensor
    attention_mask: Tensor
    sae_mask: Tensor
    """[B, T] positions the SAE is evaluated (and spliced) at."""
    score_mask: Tensor
    """[B, T-1] next-token predictions that are scored."""


def downstream_batch(tensors: InputBatch) -> Batch:
    """The masks of one padded batch: where the SAE is spliced, which predictions are scored."""
    sae_mask = torch.zeros(tensors.input_ids.shape, dtype=torch.bool)
    sae_mask[tensors.rows, tensors.cols] = True
    sae_mask = sae_mask.to(tensors.input_ids.device)
    score = sae_mask[:, :-1] & tensors.attention_mask[:, 1:].bool()
    return Batch(tensors.input_ids, tensors.attention_mask, sae_mask, score)


class CleanDistribution(NamedTuple):
    """The clean model's next-token distribution, kept for the KL of the other passes."""

    probs: Tensor
    """[B, T-1, V] probabilities."""
    neg_entropy: Tensor
    """[B, T-1] Σ_v p log p."""


def next_token_losses(
    logits: Tensor, batch: Batch, clean: CleanDistribution | None
) -> tuple[float, float | None, CleanDistribution]:
    """(summed CE, summed KL(clean ‖ this) or None, this distribution) over the scored predictions.

    Works on whole [B, T-1, V] tensors and masks per-position values (no gathered copy of the
    logits); KL(p ‖ q) = Σ p log p − Σ p log q, with the first term computed once per batch.
    """
    mask = batch.score_mask  # torch.where, not a product: padded positions may hold NaN logits
    logprobs = logits[:, :-1].float().log_softmax(-1)
    targets = batch.input_ids[:, 1:, None]
    ce = float(-torch.where(mask, logprobs.gather(-1, targets).squeeze(-1), 0.0).sum())
    kl = None
    if clean is not None:
        per_position = clean.neg_entropy - torch.linalg.vecdot(clean.probs, logprobs)
        kl = float(torch.where(mask, per_position, 0.0).sum())
        return ce, kl, clean
    probs = logprobs.exp()
    return ce, kl, CleanDistribution(probs, torch.linalg.vecdot(probs, logprobs))


def splice(
    sae: SparseAutoencoder, mask: Tensor, replacement: str, mean: Tensor
) -> Callable[[Tensor, Tensor], Tensor]:
    """The function (read, written) → new written activation that replaces it at `mask` (see module
    docstring); the reconstruction is of `read`, what the dictionary read in this pass."""

    def fn(read: Tensor, act: Tensor) -> Tensor:
        if act.shape[:2] != mask.shape:  # e.g. a cached generation step: nothing to splice here
            return act
        if replacement == "sae":
            new = sae(read.float()).recon.to(act.dtype)
        elif replacement == "zero":
            new = torch.zeros_like(act)
        else:
            new = mean.to(act.dtype).expand_as(act)
        return torch.where(mask[..., None], new, act)

    return fn


class Splice(NamedTuple):
    """Where a dictionary's reconstruction goes in the model."""

    sae: SparseAutoencoder
    """The SAE or transcoder."""
    reads: Hookpoint
    """The hookpoint it reads."""
    writes: Hookpoint
    """The hookpoint its reconstruction replaces: what it reads for an SAE, the module's output
    for a transcoder."""


def splice_of(bound: BoundSAE) -> Splice:
    """Where `bound`'s reconstruction goes (a transcoder's output hookpoint, resolved on its model)."""
    return Splice(bound.sae, bound.hookpoint, bound.writes)


@contextmanager
def spliced(
    model: Any, splices: Sequence[Splice], mask: Tensor, replacement: str, means: Sequence[Tensor]
) -> Iterator[None]:
    """Within the block, each splice's `writes` hookpoint holds `replacement` at `mask` (the
    reconstruction of what it `reads` in this very pass, zeros or the mean)."""
    with contextlib.ExitStack() as stack:
        for one, mean in zip(splices, means):
            fn = splice(one.sae, mask, replacement, mean)
            stack.enter_context(rewriting(model, one.reads, one.writes, fn))
        yield


@torch.inference_mode()
def reconstruction_passes(
    bound: BoundSAE, inputs: Sequence[ModelInput], batch_size: int, sums: Sums
) -> list[Batch]:
    """Activations up to the hookpoint only (the forward stops there), through the SAE; returns the
    batches for the downstream passes. A transcoder is scored on the output it reconstructs."""
    batches = []
    where = splice_of(bound)
    points = [where.reads] if where.reads == where.writes else [where.reads, where.writes]
    passes = iter_positions(bound.loaded_model, points, inputs, batch_size)
    total = -(-len(inputs) // batch_size)
    desc = f"eval {bound.path.name}: reconstruction"
    for pb in tqdm(passes, total=total, desc=desc, unit="batch", dynamic_ncols=True):
        x = pb.activations[where.reads.name].float()
        out = bound.sae(x)
        target = pb.activations[where.writes.name].float()
        sums.add_reconstruction(target, out.recon, out.latent_acts, out.latent_indices)
        batches.append(downstream_batch(pb.tensors))
    return batches


@torch.inference_mode()
def downstream_pass(
    loaded: LoadedModel,
    splices: Sequence[Splice],
    batch: Batch,
    means: Sequence[Tensor],
    sums: Sums,
    replacements: Sequence[str] = ("sae", "zero", "mean"),
) -> None:
    """Clean, SAE-spliced, zero- and mean-ablated forward passes; CE and KL at the scored positions.
    Every splice is applied in the same pass (a transcoder set replaces every MLP at once)."""
    model = loaded.model
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "use_cache": False}
    ce, _, clean = next_token_losses(model(**inputs).logits, batch, None)
    sums.add_loss("clean", ce, None)
    sums.scored += int(batch.score_mask.sum())
    for name in replacements:
        with spliced(model, splices, batch.sae_mask, name, means):
            logits = model(**inputs).logits
        ce, kl, _ = next_token_losses(logits, batch, clean)
        sums.add_loss(name, ce, kl)


# ----- results ----------------------------------------------------------------------------
def recovered(ablated: float, spliced: float, clean: float) -> float:
    denom = ablated - clean
    return (ablated - spliced) / denom if abs(denom) > 1e-12 else float("nan")


def summarize(sums: Sums, downstream: bool) -> dict[str, Any]:
    n = max(sums.tokens, 1)
    assert sums.sum_x is not None and sums.fired is not None and sums.act_sum is not None
    mean = sums.sum_x / n
    total_var = sums.sq_norm - n * float(mean.pow(2).sum())
    fvu = sums.sq_err / total_var if total_var > 0 else float("nan")
    l0 = torch.cat(sums.l0).double()
    freq = sums.fired / n
    d_in = sums.sum_x.shape[0]
    out: dict[str, Any] = {
        "tokens": sums.tokens,
        "reconstruction": {
            "mse": sums.sq_err / (n * d_in),
            "sum_squared_error_per_token": sums.sq_err / n,
            "fvu": fvu,
            "explained_variance": 1 - fvu,
            "cosine_similarity": sums.cos / n,
            "norm_ratio": sums.norm_ratio / n,
            "relative_reconstruction_bias": sums.recon_sq_norm / sums.recon_dot_x
            if sums.recon_dot_x
            else float("nan"),
        },
        "sparsity": {
            "l0_mean": float(l0.mean()),
            "l0_std": float(l0.std()) if len(l0) > 1 else 0.0,
            "l0_quantiles": {str(q): float(l0.quantile(q)) for q in (0.01, 0.1, 0.5, 0.9, 0.99)},
            "dead_latents": int((freq == 0).sum()),
            "dead_fraction": float((freq == 0).double().mean()),
            "dense_latents": int((freq > DENSE_THRESHOLD).sum()),
            "dense_threshold": DENSE_THRESHOLD,
        },
    }
    if downstream and sums.scored:
        out["downstream"] = summarize_downstream(sums)
    return out


def summarize_downstream(sums: Sums) -> dict[str, Any]:
    """CE and KL of the spliced and ablated passes per scored prediction (mean ablation: nan where
    it was not run)."""
    s = max(sums.scored, 1)
    ce = {k: v / s for k, v in sums.ce.items()}
    kl = {k: v / s for k, v in sums.kl.items()}
    return {
        "scored_predictions": s,
        "ce_clean": ce["clean"],
        "ce_spliced": ce["sae"],
        "ce_zero_ablation": ce["zero"],
        "ce_mean_ablation": ce.get("mean", float("nan")),
        "delta_ce": ce["sae"] - ce["clean"],
        "ce_loss_recovered_zero": recovered(ce["zero"], ce["sae"], ce["clean"]),
        "ce_loss_recovered_mean": recovered(ce.get("mean", float("nan")), ce["sae"], ce["clean"]),
        "kl_spliced": kl["sae"],
        "kl_zero_ablation": kl["zero"],
        "kl_mean_ablation": kl.get("mean", float("nan")),
        "kl_score_zero": 1 - kl["sae"] / kl["zero"] if kl["zero"] > 0 else float("nan"),
        "positions": POSITIONS_NOTE,
    }


class SAEEval(NamedTuple):
    path: Path
    metrics: dict[str, Any]

    @property
    def label(self) -> str:
        """The SAE's name in tables and legends: its folder's, or its run's for a run's `sae/` (a
        published SAE's run folder names it: `OWNER--REPO--PATH@<commit>`)."""
        return self.path.parent.name if self.path.name == SAE and self.path.parent.name else self.path.name


class EvalResult(NamedTuple):
    """The evaluation of every SAE asked for."""

    evals: list[SAEEval]
    """One per SAE, in the order given."""
    comparison_plot: Path | None
    """The L0-vs-FVU plot when several SAEs were compared."""

    def render(self) -> str:
        return format_table(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "saes": [{"path": str(e.path), **json_safe(e.metrics)} for e in self.evals],
            "comparison_plot": str(self.comparison_plot) if self.comparison_plot else None,
        }


# ----- corpus -----------------------------------------------------------------------------
def eval_inputs(corpus: CorpusSettings, tokenizer: Any, start: int, tokens: int) -> list[ModelInput]:
    """Inputs until `tokens` positions are covered."""
    chosen, count = [], 0
    for item in iter_model_inputs(corpus, tokenizer, start=start):
        chosen.append(item)
        count += len(item.positions)
        if count >= tokens:
            break
    if count == 0:
        raise SaescopeError(f"the evaluation set is empty (dataset {corpus.dataset!r} from input {start})")
    return chosen


# ----- reuse and the headline evaluation ---------------------------------------------------
RESULT_SETTINGS = (
    "model",
    "revision",
    "model_dtype",
    "dataset",
    "split",
    "text_field",
    "tokens",
    "context_len",
    "batch_size",
    "downstream",
)
"""The settings an evaluation's numbers depend on (with the SAE's weights): the cache key."""


def weights_digest(path: Path) -> str:
    """SHA-256 of the SAE's weights file ("missing" without one): what its results are of."""
    weights = path / WEIGHTS_FILE
    return file_sha256(weights) if weights.is_file() else "missing"


def eval_key(cfg: EvalConfig, path: Path) -> str:
    """A key for this SAE's weights under these settings (`evals/<key>.json` holds the result)."""
    settings = json.dumps(json_safe({k: getattr(cfg, k) for k in RESULT_SETTINGS}), sort_keys=True)
    return text_sha256(weights_digest(path) + settings)[:16]


def cached_eval(path: Path, key: str) -> dict[str, Any] | None:
    """The metrics of an earlier evaluation with the same weights and settings, if there is one."""
    cached = path / EVALS_DIR / f"{key}.json"
    if not cached.is_file():
        return None
    try:
        metrics = read_json(cached)
    except SaescopeError:
        return None
    return metrics if isinstance(metrics, dict) and "reconstruction" in metrics else None


def completeness(metrics: dict[str, Any]) -> tuple[bool, int]:
    """How full an evaluation is: with downstream metrics first, then more tokens."""
    return ("downstream" in metrics, int(metrics.get("tokens", 0)))


def headline(path: Path) -> dict[str, Any] | None:
    """The evaluation `eval.json` holds (None when there is none or it is unreadable)."""
    try:
        data = read_json(eval_file(path)) if eval_file(path).is_file() else None
    except SaescopeError:
        return None
    return data if isinstance(data, dict) else None


# ----- one SAE ----------------------------------------------------------------------------
def evaluate_one(cfg: EvalConfig, path: Path, models: dict[str, LoadedModel]) -> SAEEval:
    """Evaluate one SAE, or reuse its earlier evaluation with the same weights and settings."""
    key = eval_key(cfg, path)
    cached = cached_eval(path, key)
    if cached is not None:
        log.info(
            "%s: reusing its evaluation with these settings (%s)", path, path / EVALS_DIR / f"{key}.json"
        )
        return SAEEval(path, cached)
    if cfg.dataset is not None:  # a wrong --dataset fails before the model loads
        check_corpus(CorpusSettings(dataset=cfg.dataset, split=cfg.split, text_field=cfg.text_field))
    bound = bind_sae(path, cfg.model or None, force=cfg.force, settings=model_of(cfg), models=models)
    sae, loaded, hp = bound.sae, bound.loaded_model, bound.hookpoint
    model_name = cfg.model or sae.cfg.model
    corpus, start = heldout_corpus(sae, cfg.dataset, cfg.split, cfg.text_field, cfg.context_len)
    inputs = eval_inputs(corpus, loaded.tokenizer, start, cfg.tokens)
    sums = Sums(d_sae=sae.d_sae)
    t0 = time.perf_counter()
    batches = reconstruction_passes(bound, inputs, cfg.batch_size, sums)
    if cfg.downstream:
        assert sums.sum_x is not None
        # Mean ablation uses the mean activation over the evaluation tokens.
        mean = (sums.sum_x / max(sums.tokens, 1)).float().to(loaded.device)
        for batch in tqdm(batches, desc=f"eval {path.name}: downstream", unit="batch", dynamic_ncols=True):
            downstream_pass(loaded, [splice_of(bound)], batch, [mean], sums)
    metrics = summarize(sums, cfg.downstream)
    metrics["settings"] = {
        "model": model_name,
        "hookpoint": hp.name,
        "hookpoint_alias": hp.alias,
        "reconstructs": sae.cfg.output_hookpoint_alias or hp.alias,
        "corpus": to_jsonable(corpus),
        "first_input": start,
        "inputs": len(inputs),
        "seconds": time.perf_counter() - t0,
        "eval_config": to_jsonable(cfg),
    }
    metrics["sae"] = {
        "source": bound.source,
        "architecture": sae.cfg.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "k": sae.cfg.k,
    }
    write_outputs(path, key, metrics, sums)
    return SAEEval(path, metrics)


def write_outputs(path: Path, key: str, metrics: dict[str, Any], sums: Sums) -> None:
    """Every evaluation goes to `evals/<key>.json`; `eval.json` (with the per-latent frequencies and
    the density plot) is replaced only by an evaluation at least as full as the one it holds, so a
    quick `--no-downstream` check never overwrites a full evaluation."""
    assert sums.fired is not None and sums.act_sum is not None
    (path / EVALS_DIR).mkdir(exist_ok=True)
    write_json(path / EVALS_DIR / f"{key}.json", metrics)
    previous = headline(path)
    if previous is not None and completeness(previous) > completeness(metrics):
        log.info(
            "%s: eval.json keeps its fuller evaluation (%d tokens%s); this one is in %s",
            path,
            previous.get("tokens", 0),
            ", downstream" if "downstream" in previous else "",
            path / EVALS_DIR / f"{key}.json",
        )
        return
    write_json(eval_file(path), {**metrics, **other_families(previous, weights_digest(path))})
    freq = (sums.fired / max(sums.tokens, 1)).float()
    mean_act = (sums.act_sum / sums.fired.clamp_min(1)).float()
    write_safetensors(path / "eval_latents.safetensors", {"frequency": freq, "mean_activation": mean_act})
    plot_sparsity(path, freq, torch.cat(sums.l0))


FAMILY_WEIGHTS = "family_weights_sha256"
"""eval.json's record of which weights (`weights_digest`) each family besides core was measured on."""


def other_families(evaluation: dict[str, Any] | None, digest: str) -> dict[str, Any]:
    """The metric families besides core (`--metrics absorption,probing`) that `evaluation` holds
    for the weights with this `digest`: kept when a core evaluation replaces eval.json."""
    weights = (evaluation or {}).get(FAMILY_WEIGHTS)
    if evaluation is None or not isinstance(weights, dict):
        return {}
    kept = [name for name in METRIC_FAMILIES if name in evaluation and weights.get(name) == digest]
    if not kept:
        return {}
    return {**{name: evaluation[name] for name in kept}, FAMILY_WEIGHTS: {name: digest for name in kept}}


def record_family(path: Path, family: str, result: dict[str, Any]) -> dict[str, Any]:
    """Add a metric family's result to the SAE's eval.json (created when there is none), noting the
    weights it is of; returns eval.json as written."""
    evaluation = headline(path) or {}
    weights: dict[str, Any] = (
        evaluation[FAMILY_WEIGHTS] if isinstance(evaluation.get(FAMILY_WEIGHTS), dict) else {}
    )
    evaluation = {**evaluation, family: result, FAMILY_WEIGHTS: {**weights, family: weights_digest(path)}}
    write_json(eval_file(path), evaluation)
    return evaluation


def plot_sparsity(path: Path, freq: Tensor, l0: Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    live = freq[freq > 0]
    dead = int((freq == 0).sum())
    if len(live):
        axes[0].hist(torch.log10(live).numpy(), bins=60, color="tab:blue")
    axes[0].set_title(f"latent density; {dead} never fired in {len(l0):,} tokens")
    axes[0].set_xlabel("log10 firing frequency")
    axes[0].set_ylabel("latents")
    axes[0].grid(alpha=0.3)
    axes[1].set_title("active latents per token (L0)")
    if len(l0) and float(l0.min()) == float(l0.max()):  # TopK: a histogram would be one bar
        axes[1].text(0.5, 0.5, f"L0 = {float(l0[0]):g} on every token", ha="center", va="center")
        axes[1].set_axis_off()
    else:
        axes[1].hist(l0.numpy(), bins=50, color="tab:green")
        axes[1].set_xlabel("L0")
        axes[1].set_ylabel("tokens")
        axes[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path / "eval_density.png", dpi=110)
    plt.close(fig)


def plot_frontier(evals: Sequence[SAEEval], out: Path) -> Path:
    """L0 against FVU, one marker per SAE named in the legend (labels next to close points overlap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = "osD^v<>Pph*X"
    for i, e in enumerate(evals):
        l0 = e.metrics["sparsity"]["l0_mean"]
        fvu = e.metrics["reconstruction"]["fvu"]
        ax.scatter([l0], [fvu], marker=markers[i % len(markers)], s=40, label=e.label)
    ax.set_xlabel("L0 (mean active latents per token)")
    ax.set_ylabel("FVU (fraction of variance unexplained)")
    ax.set_title("sparsity / fidelity frontier (lower left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    target = out / "eval_frontier.png"
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def _cell(value: Any, spec: str) -> str:
    """A table cell: the value formatted, or a dash where there is none (no downstream pass, a metric
    whose denominator was 0)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _row(e: SAEEval) -> list[str]:
    m = e.metrics
    r, s, d = m["reconstruction"], m["sparsity"], m.get("downstream", {})
    return [
        e.label,
        m["sae"]["architecture"],
        str(m["sae"]["d_sae"]),
        str(m.get("settings", {}).get("hookpoint_alias") or m.get("settings", {}).get("hookpoint", "?")),
        _cell(s["l0_mean"], ".1f"),
        _cell(r["fvu"], ".4f"),
        _cell(r["cosine_similarity"], ".3f"),
        _cell(100 * s["dead_fraction"], ".1f"),
        str(s["dense_latents"]),
        _cell(d.get("ce_clean"), ".4f"),
        _cell(d.get("ce_spliced"), ".4f"),
        _cell(d.get("delta_ce"), ".4f"),
        _cell(d.get("ce_loss_recovered_zero"), ".3f"),
        _cell(d.get("ce_loss_recovered_mean"), ".3f"),
        _cell(d.get("kl_spliced"), ".4f"),
    ]


def format_table(result: EvalResult) -> str:
    """One screen: a row per SAE, each column as wide as its widest entry, and what it means."""
    header = ["SAE", "arch", "latents", "hookpoint", "L0", "FVU", "cos", "dead%", "dense"]
    header += ["CE clean", "CE sae", "ΔCE", "rec0", "recμ", "KL"]
    rows = [_row(e) for e in result.evals]
    widths = [max(len(v) for v in column) for column in zip(header, *rows)]
    lines = ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in [header, *rows]]
    tokens = sorted({int(e.metrics["tokens"]) for e in result.evals})
    counted = f"{tokens[0]:,}" if len(tokens) == 1 else f"{tokens[0]:,}–{tokens[-1]:,}"
    lines.append(
        f"({counted} tokens per SAE; dead%: latents that never fired on these tokens — rare latents count "
        "as dead on a short evaluation; rec0/recμ: CE loss recovered against zero/mean ablation; "
        "KL: clean ‖ spliced, nats/token"
        + (
            "; –: not measured (--no-downstream)"
            if any("downstream" not in e.metrics for e in result.evals)
            else ""
        )
        + ")"
    )
    hookpoints = sorted({row[3] for row in rows})
    if len(hookpoints) > 1:
        lines.append(
            f"note: these SAEs read different hookpoints ({', '.join(hookpoints)}): "
            "their reconstruction and downstream numbers are not comparable"
        )
    if result.comparison_plot:
        lines.append(f"L0-vs-FVU plot: {result.comparison_plot}")
    return "\n".join(lines)


def evaluate(cfg: EvalConfig, models: dict[str, LoadedModel] | None = None) -> EvalResult:
    """Evaluate every SAE in `cfg.saes` (see the module docstring); `models` (name → loaded model)
    shares model loads with the caller. The core metrics only: `saescope eval --metrics` (with
    absorption or probing) runs through `saescope.compare.evaluate`."""
    others = [m for m in cfg.metrics if m != "core"]
    if others or "core" not in cfg.metrics:
        raise SaescopeError(
            f"--metrics {','.join(cfg.metrics)}: saescope.evals measures core only; "
            "saescope.compare.evaluate (what saescope eval runs) measures the others"
        )
    models = {} if models is None else models
    evals = [e for p in cfg.saes for e in evaluate_path(cfg, sae_home(p), models)]
    plot = None
    if len(evals) > 1:
        out = cfg.out or Path(commonpath(evals))
        plot = plot_frontier(evals, out)
        write_json(out / "eval_comparison.json", EvalResult(evals, plot).to_json())
    return EvalResult(evals, plot)


def evaluate_path(cfg: EvalConfig, path: Path, models: dict[str, LoadedModel]) -> list[SAEEval]:
    """One SAE's evaluation; for a transcoder set's folder, each layer's and then the set's with
    every MLP replaced at once (`replaced_every_mlp`)."""
    from .sae.transcoder import transcoder_folders

    folders = [] if is_sae_folder(path) else transcoder_folders(path)
    if not folders:
        return [evaluate_one(cfg, path, models)]
    layers = [evaluate_one(cfg, folder, models) for folder in folders]
    return [*layers, replaced_every_mlp(cfg, path, folders, layers, models)]


def pooled(layers: Sequence[SAEEval]) -> dict[str, Any]:
    """Reconstruction and sparsity of a set from its layers': FVU pooled (Σ squared errors over Σ
    variances), the others averaged over layers (dense latents summed)."""
    rec = [e.metrics["reconstruction"] for e in layers]
    spa = [e.metrics["sparsity"] for e in layers]
    variance = sum(r["sum_squared_error_per_token"] / r["fvu"] for r in rec if r["fvu"] > 0)
    fvu = sum(r["sum_squared_error_per_token"] for r in rec) / variance if variance > 0 else float("nan")
    return {
        "reconstruction": {
            "fvu": fvu,
            "explained_variance": 1 - fvu,
            "cosine_similarity": sum(r["cosine_similarity"] for r in rec) / len(rec),
        },
        "sparsity": {
            "l0_mean": sum(x["l0_mean"] for x in spa) / len(spa),
            "dead_fraction": sum(x["dead_fraction"] for x in spa) / len(spa),
            "dense_latents": sum(x["dense_latents"] for x in spa),
        },
    }


def replaced_every_mlp(
    cfg: EvalConfig,
    path: Path,
    folders: Sequence[Path],
    layers: Sequence[SAEEval],
    models: dict[str, LoadedModel],
) -> SAEEval:
    """CE and KL with every layer's module output replaced by its transcoder's at once (and, for
    CE recovered, every one zero- and mean-ablated), on the first layer's held-out text."""
    bounds = [
        bind_sae(f, cfg.model or None, force=cfg.force, settings=model_of(cfg), models=models)
        for f in folders
    ]
    loaded = bounds[0].loaded_model
    if len({id(b.loaded_model) for b in bounds}) > 1:
        raise SaescopeError(f"{path} holds transcoders of different models")
    corpus, start = heldout_corpus(bounds[0].sae, cfg.dataset, cfg.split, cfg.text_field, cfg.context_len)
    inputs = eval_inputs(corpus, loaded.tokenizer, start, cfg.tokens)
    splices = [splice_of(b) for b in bounds]
    unused = [torch.zeros(()) for _ in splices]  # no mean ablation of every MLP: it is not measured
    sums = Sums(d_sae=sum(b.sae.d_sae for b in bounds))
    metrics: dict[str, Any] = {"tokens": sum(int(e.metrics["tokens"]) for e in layers) // len(layers)}
    metrics |= pooled(layers)
    if cfg.downstream:
        # The batches first: the collecting hooks must be gone before the spliced passes run.
        passes = iter_positions(loaded, [splices[0].reads], inputs, cfg.batch_size)
        batches = [downstream_batch(pb.tensors) for pb in passes]
        for batch in tqdm(
            batches, desc=f"eval {path.name}: every MLP replaced", unit="batch", dynamic_ncols=True
        ):
            downstream_pass(loaded, splices, batch, unused, sums, ("sae", "zero"))
        metrics["downstream"] = summarize_downstream(sums)
    metrics["settings"] = {
        "model": bounds[0].sae.cfg.model,
        "hookpoint_alias": f"every MLP ({len(bounds)} layers)",
        "corpus": to_jsonable(corpus),
        "first_input": start,
        "inputs": len(inputs),
    }
    metrics["sae"] = {
        "architecture": "transcoder set",
        "d_sae": sums.d_sae,
        "layers": [b.sae.cfg.hookpoint_alias for b in bounds],
    }
    write_json(path / SAE_EVAL, json_safe(metrics), indent=2)
    return SAEEval(path, metrics)


def commonpath(evals: Sequence[SAEEval]) -> str:
    return os.path.commonpath([str(e.path.resolve().parent) for e in evals])
