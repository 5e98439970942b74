"""One frozen dataclass per pipeline stage.

Each field carries a docstring (the string literal under it): the CLI turns those into `--help`,
so the documentation of a setting lives in exactly one place. Every config validates itself in
`__post_init__` and is never mutated afterwards; stages derive what they need into new values.
Stage functions take these configs, so a notebook can do everything the CLI does.

This module knows nothing about how the stages run.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, require

StoreDType = Literal["bfloat16", "float16", "float32"]
ModelDType = Literal["auto", "bfloat16", "float16", "float32"]


def to_jsonable(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON values (paths become strings, tuples lists)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {k: convert(v) for k, v in asdict(cfg).items()}


def _architectures() -> list[str]:
    from .sae.registry import architecture_names

    return architecture_names()


def _formats_in() -> list[str]:
    from .sae.convert import FORMATS_IN

    return list(FORMATS_IN)


def _formats_out() -> list[str]:
    from .sae.convert import FORMATS_OUT

    return list(FORMATS_OUT)


def check_choices(cfg: Any) -> None:
    """Every `Literal[...]` field of `cfg` holds one of its values (the CLI checks this too, the
    Python API only here)."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        tp = hints[f.name]
        options = [a for a in typing.get_args(tp) if typing.get_origin(tp) is Literal]
        value = getattr(cfg, f.name)
        if options and value not in options:
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"{flag} must be one of {', '.join(map(str, options))}, got {value!r}")


@dataclass(frozen=True)
class ModelSettings:
    """How to load the language model (shared by capture, on-the-fly training and eval)."""

    model: str = "smollm2-135m"
    """Hugging Face model id, local folder, `.gguf` file, or the alias `smollm2-135m` (the embedded
    SmolLM2-135M-Instruct, loaded offline)."""

    revision: str | None = None
    """Model revision (branch, tag or commit) for Hugging Face ids."""

    model_dtype: ModelDType = "auto"
    """Precision the model runs in; `auto` is float32 on CPU and bfloat16 on CUDA."""

    device: str = "auto"
    """`cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available; under torchrun, the local rank's GPU)."""

    device_map: str | None = None
    """Spread a model larger than one GPU over several (`auto`, passed to transformers)."""


@dataclass(frozen=True)
class CorpusSettings:
    """Which text to read and how to cut it into model inputs."""

    dataset: str = "builtin"
    """Hugging Face dataset name (streamed), a local `.txt`/`.jsonl`/`.parquet` file or folder, or
    `builtin` (CPython's own documentation and sources, shipped with every Python)."""

    split: str = "train"
    """Split of a Hugging Face dataset."""

    text_field: str = "text"
    """Field holding the text in `.jsonl`, `.parquet` and Hugging Face records."""

    unit: Literal["window", "sentence"] = "window"
    """`window`: documents packed into fixed-length token windows (a separator between documents);
    `sentence`: each sentence is its own model input (seed 001)."""

    context_len: int = 256
    """Tokens per model input (window length; sentences are truncated to it)."""

    prepend_bos: bool = True
    """Start every model input with the tokenizer's BOS token (when it has one)."""

    include_bos: bool = False
    """Also store the BOS position. Off by default: its activation norm is far from every other
    token's and would dominate SAE training."""

    sample_fraction: float = 1.0
    """Fraction of the positions of each input to store, drawn at random (seed 000 kept 0.1)."""

    substring: str | None = None
    """Only store the positions of this substring in each text (seed 004's entity tokens)."""

    substring_field: str | None = None
    """Record field holding each text's own substring (for prompt sets in `.jsonl`/`.parquet`)."""

    substring_positions: Literal["last", "all"] = "last"
    """Positions of a matched substring to store: its last token, or all its tokens."""

    seed: int = 0
    """Seed of the position sampling (deterministic per input, so resumed captures match)."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(self.context_len >= 2, f"--context-len must be at least 2, got {self.context_len}")
        require(
            0.0 < self.sample_fraction <= 1.0,
            f"--sample-fraction must be in (0, 1], got {self.sample_fraction}",
        )
        require(
            not (self.substring and self.substring_field),
            "give --substring or --substring-field, not both",
        )
        require(self.substring != "", "--substring must not be empty")


def corpus_of(cfg: CorpusSettings) -> CorpusSettings:
    """Only the corpus settings of a stage's config (stage configs inherit them)."""
    return CorpusSettings(**{f.name: getattr(cfg, f.name) for f in fields(CorpusSettings)})


@dataclass(frozen=True)
class CaptureConfig(CorpusSettings, ModelSettings):
    """`saescope capture`: run a model over a corpus and store activations at hookpoints."""

    hookpoints: tuple[str, ...] = field(
        default=("resid_post:15",), metadata={"flags": ("--hookpoint", "--hookpoints")}
    )
    """Where to read activations: a module path (`model.layers.15`, globs allowed) or a short form
    (`resid_post:L`, `resid_pre:L`, `mlp_out:L`, `attn_out:L`). Several give sibling stores."""

    out: Path = Path("runs/demo/acts")
    """Output folder. Running again with the same folder resumes (or extends to more --tokens)."""

    tokens: int = 200_000
    """Stop once this many rows (token activations) are stored per hookpoint."""

    batch_size: int = 16
    """Model inputs per forward pass."""

    store_dtype: StoreDType = "bfloat16"
    """Precision of stored activations."""

    shard_mb: int = 256
    """Target size of one activation shard in MiB."""

    def __post_init__(self) -> None:
        CorpusSettings.__post_init__(self)
        require(len(self.hookpoints) > 0, "give at least one --hookpoint")
        require(self.tokens > 0, f"--tokens must be positive, got {self.tokens}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(1 <= self.shard_mb <= 65536, f"--shard-mb must be in [1, 65536], got {self.shard_mb}")


@dataclass(frozen=True)
class TrainConfig(CorpusSettings, ModelSettings):
    """`saescope train`: train one or several SAEs from an activation store or on the fly."""

    acts: Path | None = None
    """Activation store to train from. Without it, activations are computed on the fly from
    --model/--dataset/--hookpoint (nothing is written to disk)."""

    hookpoint: str = "resid_post:15"
    """Hookpoint for on-the-fly training (a store records its own)."""

    out: Path = Path("runs/demo/sae")
    """Output folder for the SAE (several SAEs of a sweep go to sibling subfolders)."""

    architecture: str = field(
        default="topk", metadata={"flags": ("--arch", "--architecture"), "choices": _architectures}
    )
    """SAE architecture (the registry's names)."""

    latents: tuple[int, ...] = ()
    """Dictionary sizes; several values train several SAEs from one pass. Default: expansion
    factor × d_in."""

    expansion_factor: int = 8
    """Latents per input dimension when --latents is not given."""

    k: tuple[int, ...] = (32,)
    """Active latents per token for TopK/BatchTopK; several values train several SAEs at once."""

    l1_coefficient: float = 0.2
    """ReLU SAE: weight λ of the L1 penalty on activations × decoder-row norms. Inputs are scaled to
    E‖x‖² = 1 here, so Anthropic's λ = 5 (at E‖x‖² = d_in) corresponds to 5/√d_in."""

    l0_coefficient: float = 0.001
    """JumpReLU SAE: weight λ of the L0 penalty (Gemma Scope), in normalised units (E‖x‖² = 1)."""

    jumprelu_bandwidth: float = 0.001
    """JumpReLU SAE: width ε of the rectangle kernel of the straight-through estimator."""

    jumprelu_init_threshold: float = 0.001
    """JumpReLU SAE: initial threshold of every latent."""

    tokens: int | None = None
    """Token budget (rows seen). Default: one epoch of the store, or 1M tokens on the fly."""

    epochs: float | None = None
    """Passes over the store instead of --tokens."""

    batch_size: int = 4096
    """Rows per optimisation step (across all ranks)."""

    lr: float | None = None
    """Peak learning rate. Default 2e-4 / sqrt(latents / 2^14) (OpenAI's scaling law)."""

    optimizer: Literal["adam", "adamw"] = "adam"
    """Optimiser."""

    beta1: float = 0.9
    """Adam β1 (OpenAI 0.9; seed 001 used 0.85)."""

    beta2: float = 0.999
    """Adam β2 (OpenAI 0.999; seed 001 used 0.9999)."""

    adam_eps: float = 6.25e-10
    """Adam ε (OpenAI and seed 001)."""

    weight_decay: float = 0.0
    """AdamW weight decay."""

    warmup_steps: int = 100
    """Linear learning-rate warm-up."""

    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"
    """Decay after warm-up."""

    lr_min_ratio: float = 0.2
    """Final learning rate as a fraction of the peak (seed 001: 1/5)."""

    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""

    aux_k: int | None = None
    """Latents in the aux-k loss that revives dead latents (OpenAI used 512, seed 001 2048).
    Default d_in / 2; 0 disables."""

    aux_coefficient: float = 1 / 32
    """Weight of the aux-k loss (OpenAI and seed 001: 1/32)."""

    dead_tokens: int = 10_000_000
    """A latent is dead after this many tokens without firing (OpenAI: 10M)."""

    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    """Initial decoder bias (OpenAI: geometric median of a sample; seed 001: the mean)."""

    normalize: Literal["unit_mean_squared_norm", "none"] = "unit_mean_squared_norm"
    """Scale inputs by one constant so that E‖x‖² = 1 during training (Gemma Scope); folded into
    the weights on save, so a saved SAE takes raw activations."""

    autocast: Literal["auto", "bfloat16", "none"] = "auto"
    """Mixed precision: `auto` is bfloat16 on CUDA and none on CPU."""

    kernel: Literal["auto", "reference", "torch", "triton"] = "auto"
    """TopK training path: `reference` (dense, the oracle), `torch` (sparse, the CPU fast path),
    `triton` (fused GPU kernels); `auto` picks triton on CUDA and torch on CPU."""

    shuffle: Literal["auto", "random", "buffer"] = "auto"
    """Store reading: `random` (exact permutation, random access), `buffer` (shuffled streaming)."""

    checkpoint_every: int = 500
    """Save a checkpoint every N steps (0: only at the end)."""

    resume: bool = False
    """Continue from the last checkpoint in --out."""

    log_every: int = 10
    """Log metrics every N steps."""

    wandb_project: str | None = None
    """Also log to this Weights & Biases project (needs the `wandb` extra)."""

    train_seed: int = 0
    """Seed of initialisation and data order."""

    def __post_init__(self) -> None:
        CorpusSettings.__post_init__(self)
        names = _architectures()
        require(
            self.architecture in names,
            f"unknown architecture {self.architecture!r}; choose from {', '.join(names)}",
        )
        require(all(n > 0 for n in self.latents), "--latents must be positive")
        require(self.expansion_factor > 0, "--expansion-factor must be positive")
        require(len(self.k) > 0 and all(k > 0 for k in self.k), "--k must be positive")
        require(self.tokens is None or self.tokens > 0, "--tokens must be positive")
        require(self.epochs is None or self.epochs > 0, "--epochs must be positive")
        require(self.tokens is None or self.epochs is None, "give --tokens or --epochs, not both")
        require(self.batch_size > 0, "--batch-size must be positive")
        require(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), "--lr must be positive")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "Adam betas must be in [0, 1)")
        require(self.warmup_steps >= 0, "--warmup-steps must be >= 0")
        require(0 <= self.lr_min_ratio <= 1, "--lr-min-ratio must be in [0, 1]")
        require(self.grad_clip >= 0, "--grad-clip must be >= 0")
        require(self.aux_k is None or self.aux_k >= 0, "--aux-k must be >= 0")
        require(self.dead_tokens > 0, "--dead-tokens must be positive")
        require(self.checkpoint_every >= 0, "--checkpoint-every must be >= 0")
        require(self.log_every > 0, "--log-every must be positive")
        require(self.l1_coefficient >= 0 and self.l0_coefficient >= 0, "sparsity coefficients must be >= 0")
        require(self.jumprelu_bandwidth > 0, "--jumprelu-bandwidth must be positive")


@dataclass(frozen=True)
class EvalConfig(ModelSettings):
    """`saescope eval`: reconstruction, sparsity and downstream metrics of saved SAEs."""

    saes: tuple[Path, ...] = field(default=(), metadata={"positional": True, "metavar": "SAE"})
    """SAE folders to evaluate (several are compared in one table and one L0-vs-FVU plot)."""

    dataset: str | None = None
    """Evaluation text. Default: the SAE's own training corpus, skipping what capture used."""

    text_field: str = "text"
    """Field holding the text in `.jsonl`/`.parquet`/Hugging Face records."""

    split: str = "train"
    """Split of a Hugging Face dataset."""

    tokens: int = 20_000
    """Evaluation tokens (positions scored)."""

    context_len: int | None = None
    """Tokens per model input. Default: the SAE's capture setting."""

    batch_size: int = 8
    """Model inputs per forward pass."""

    downstream: bool = True
    """Also splice the SAE into the model and measure CE loss and KL (needs the model)."""

    force: bool = False
    """Evaluate even if --model differs from the model the SAE was trained on."""

    out: Path | None = None
    """Where to write the comparison (table JSON and plot) for several SAEs. Each SAE always gets
    `eval.json` and plots beside it."""

    json: bool = False
    """Print one JSON document on stdout (logs go to stderr)."""

    model: str = ""
    """Model to evaluate on. Default: the one the SAE records."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(len(self.saes) > 0, "give at least one SAE folder")
        require(self.tokens > 0, f"--tokens must be positive, got {self.tokens}")
        require(self.batch_size > 0, "--batch-size must be positive")
        require(self.context_len is None or self.context_len >= 2, "--context-len must be at least 2")


@dataclass(frozen=True)
class ConvertConfig:
    """`saescope convert`: import and export SAEs between formats."""

    sae_dir: Path = field(default=Path(), metadata={"positional": True, "metavar": "SAE_DIR"})
    """Folder (or `params.npz` for Gemma Scope) of the SAE to convert."""

    from_format: str = field(default="native", metadata={"flags": ("--from",), "choices": _formats_in})
    """Format of the source."""

    to_format: str = field(default="native", metadata={"flags": ("--to",), "choices": _formats_out})
    """Format to write."""

    out: Path = Path()
    """Output folder."""

    model: str | None = None
    """Model the SAE belongs to, recorded in the output when the source does not say."""

    hookpoint: str | None = None
    """Hookpoint the SAE belongs to, recorded when the source does not say."""


@dataclass(frozen=True)
class DemoConfig:
    """`saescope demo`: the whole pipeline on the embedded model and the built-in corpus."""

    out: Path = Path("runs/demo")
    """Run folder."""

    tokens: int = 200_000
    """Activations to capture and train on."""

    latents: int = 4608
    """SAE width (8 × d_model of SmolLM2-135M)."""

    k: int = 32
    """Active latents per token."""

    epochs: float = 4.0
    """Passes of SAE training over the captured activations."""

    lr: float = 3e-3
    """Peak learning rate. Higher than train's long-run default 2e-4/√(latents/2^14): the demo sees
    under a million tokens (measured on its store: FVU 0.12 at 3e-3, 0.15 at 1e-3, 0.24 at the
    default)."""

    eval_tokens: int = 8192
    """Tokens for the downstream evaluation."""

    def __post_init__(self) -> None:
        require(self.tokens >= 4096, "--tokens must be at least 4096")
        require(self.latents > 0 and self.k > 0 and self.k <= self.latents, "need 0 < k <= latents")


__all__ = [
    "CaptureConfig",
    "ConfigError",
    "ConvertConfig",
    "CorpusSettings",
    "DemoConfig",
    "EvalConfig",
    "ModelSettings",
    "TrainConfig",
    "corpus_of",
    "to_jsonable",
]
