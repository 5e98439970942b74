"""Settings shared by every stage: how to load the model and which corpus to read.

Each field carries a docstring (the string literal under it): the CLI turns those into `--help`,
so the documentation of a setting lives in exactly one place. Every config validates itself in
`__post_init__` and is never mutated afterwards; stages derive what they need into new values.
This module knows nothing about how the stages run.
"""

from __future__ import annotations

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
