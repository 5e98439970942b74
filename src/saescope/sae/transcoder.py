"""Transcoder (Dunefsky, Chlenski & Nanda 2024, "Transcoders Find Interpretable LLM Feature
Circuits"; Ameisen et al. 2025, "Circuit Tracing"): a TopK dictionary that reads a module's input
and reconstructs the module's *output* — for an MLP, its input after the post-attention norm
(`mlp_in:L` = `model.layers.L.mlp:input`) and its output (`mlp_out:L` = `model.layers.L.mlp`):

    pre_acts = x @ W_enc + b_enc                      [N, d_sae]  (no b_dec: the spaces differ)
    latents  = TopK_k(ReLU(pre_acts))
    recon    = latents @ W_dec + b_dec  (+ x @ W_skip.T with the skip path)   [N, d_out]

`W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_out]`, `b_dec [d_out]`, and `W_skip
[d_out, d_in]` (Paulo et al. 2025, "Transcoders beat sparse autoencoders for interpretability")
when the hyperparameter `transcoder_skip` is on. `cfg.hookpoint` is its input, `cfg.output_hookpoint`
its output, `cfg.d_out` the output's width (equal to d_in for the MLPs of Llama-style models, but
never assumed). Every stage that works with an SAE's latents works with a transcoder's: they are
read from the input hookpoint and written, by the decoder, into the output hookpoint.

`TranscoderSet` is one transcoder per decoder layer of one model — what `saescope train --arch
transcoder --hookpoint mlp_in:*` writes (a folder per layer, named by `saescope.runs.layer_folder`)
and what attribution graphs read; `load_transcoder_set` reads one (a single transcoder's folder is
a set of one layer; a circuit-tracer set saescope exported, `formats.circuit_tracer`, is read too).

This module knows nothing about training loops, models or other libraries' formats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config.architectures import TranscoderParams
from ..errors import SaescopeError, require
from .base import SAEConfig
from .registry import register
from .topk import TopKSAE

_LAYER = re.compile(r"(?:^|[.:])(\d+)(?=$|[.:])")


def layer_of_hookpoint(hookpoint: str) -> int | None:
    """The decoder layer a hookpoint name lies in: the first whole-number component of
    `model.layers.15.mlp:input` or `mlp_in:15` (None when it has none)."""
    found = _LAYER.search(hookpoint)
    return int(found.group(1)) if found else None


def mlp_transcoder_config(
    layer: int, d_in: int, d_sae: int, k: int, model: str = "", skip: bool = False, **fields: Any
) -> SAEConfig:
    """The config of a TopK transcoder of the MLP of decoder layer `layer` (`mlp_in:L` → `mlp_out:L`,
    output as wide as the input unless `fields` give `d_out`)."""
    names = {
        "hookpoint": f"model.layers.{layer}.mlp:input",
        "hookpoint_alias": f"mlp_in:{layer}",
        "output_hookpoint": f"model.layers.{layer}.mlp",
        "output_hookpoint_alias": f"mlp_out:{layer}",
        "d_out": d_in,
    }
    return SAEConfig(
        architecture="transcoder",
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        model=model,
        hyperparams={"transcoder_skip": skip},
        **{**names, **fields},
    )


@register
class Transcoder(TopKSAE):
    """A TopK transcoder (see the module docstring)."""

    architecture = "transcoder"
    takes_k = True
    Params = TranscoderParams
    params: TranscoderParams

    W_skip: nn.Parameter | None
    _no_offset: Tensor

    def __init__(
        self, cfg: SAEConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__(cfg, device=device, dtype=dtype)
        d_out = self.d_out
        factory = {"device": device, "dtype": dtype or torch.float32}
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, d_out, **factory))  # type: ignore[arg-type]
        self.b_dec = nn.Parameter(torch.zeros(d_out, **factory))  # type: ignore[arg-type]
        if self.params.transcoder_skip:
            self.W_skip = nn.Parameter(torch.zeros(d_out, cfg.d_in, **factory))  # type: ignore[arg-type]
        else:
            self.register_parameter("W_skip", None)
        self.register_buffer("_no_offset", torch.zeros(cfg.d_in, **factory), persistent=False)  # type: ignore[arg-type]

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        super().check_config(cfg)
        require(
            cfg.d_out is not None and cfg.d_out > 0,
            f"a transcoder needs d_out (the width of the output it reconstructs), got {cfg.d_out!r}",
        )

    @property
    def d_out(self) -> int:
        """Width of the output it reconstructs."""
        assert self.cfg.d_out is not None
        return self.cfg.d_out

    @property
    def layer(self) -> int:
        """The decoder layer whose module it replaces (from its hookpoint); -1 when it names none."""
        found = layer_of_hookpoint(self.cfg.hookpoint or self.cfg.hookpoint_alias)
        return -1 if found is None else found

    def input_offset(self) -> Tensor:
        return self._no_offset

    def direct_path(self, x: Tensor) -> Tensor | None:
        if self.W_skip is None:
            return None
        return x @ self.W_skip.T.to(x.dtype)

    def skip(self, x: Tensor) -> Tensor:
        """x @ W_skip.T, or zeros [..., d_out] without the skip path."""
        direct = self.direct_path(x)
        return direct if direct is not None else x.new_zeros(*x.shape[:-1], self.d_out)

    def initialize_extra(self) -> None:
        if self.W_skip is not None:
            with torch.no_grad():
                self.W_skip.zero_()

    def file_tensors(self) -> dict[str, Tensor]:
        tensors = super().file_tensors()
        if self.W_skip is not None:
            tensors["W_skip"] = self.W_skip.detach()
        return tensors

    @torch.no_grad()
    def load_file_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        super().load_file_tensors(tensors)
        if self.W_skip is not None:
            self.W_skip.copy_(tensors["W_skip"])

    @torch.no_grad()
    def fold_scales(self, input_scale: float, output_scale: float) -> None:
        """Make a transcoder trained on (x·s_in → y·s_out) take raw x and give raw y, with identical
        latents: W_enc ← s_in·W_enc; W_dec, b_dec ← ·/s_out; W_skip ← W_skip·s_in/s_out."""
        for scale in (input_scale, output_scale):
            require(scale > 0 and scale == scale and scale != float("inf"), f"bad scale {scale}")
        require(
            not self.cfg.normalization.get("folded"),
            "this transcoder already has its scales folded in; folding more would compound them",
        )
        self.W_enc.mul_(input_scale)
        self.W_dec.div_(output_scale)
        self.b_dec.div_(output_scale)
        if self.W_skip is not None:
            self.W_skip.mul_(input_scale / output_scale)
        self.cfg = self.cfg.with_updates(
            normalization={
                "method": "unit_mean_squared_norm",
                "scale": input_scale,
                "output_scale": output_scale,
                "folded": True,
            }
        )

    def extra_repr(self) -> str:
        skip = ", skip" if self.W_skip is not None else ""
        return f"{super().extra_repr()}, d_out={self.d_out}{skip}"


@dataclass(frozen=True)
class TranscoderSet:
    """One transcoder per decoder layer of one model (what attribution graphs replace the MLPs with)."""

    model: str
    """The language model they read (as given to `--model` when trained)."""
    revision: str | None
    """Its revision."""
    layers: tuple[int, ...]
    """The decoder layers, ascending."""
    transcoders: tuple[Transcoder, ...]
    """The transcoder of each layer, aligned with `layers`."""
    path: Path
    """The folder the set was read from."""

    def __post_init__(self) -> None:
        require(len(self.layers) == len(self.transcoders) > 0, "a transcoder set needs one per layer")
        require(list(self.layers) == sorted(set(self.layers)), f"layers must ascend, got {self.layers}")

    def at(self, layer: int) -> Transcoder:
        """The transcoder of decoder layer `layer`."""
        if layer not in self.layers:
            raise SaescopeError(
                f"{self.path} has no transcoder at layer {layer} (it has {list(self.layers)})"
            )
        return self.transcoders[self.layers.index(layer)]


def transcoder_folders(path: Path) -> list[Path]:
    """The SAE folders a set folder holds: itself when it is one, else its subfolders that are."""
    from ..runs import is_sae_folder

    if is_sae_folder(path):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and is_sae_folder(p)) if path.is_dir() else []


def load_transcoder_set(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> TranscoderSet:
    """The transcoder set in `path` (one folder per layer, or one transcoder's folder), in eval mode.

    One line naming the problem when the folder holds no transcoder, something else, several of one
    layer, or transcoders of different models.
    """
    from .formats import load_sae
    from .formats.circuit_tracer import is_circuit_tracer_set, load_circuit_tracer

    path = Path(path)
    if is_circuit_tracer_set(path):
        tset = load_circuit_tracer(path)
        for tc in tset.transcoders if device is not None or dtype is not None else ():
            tc.to(device=device, dtype=dtype)
        return tset
    folders = transcoder_folders(path)
    if not folders:
        raise SaescopeError(f"{path} holds no transcoders (train them with saescope train --arch transcoder)")
    by_layer: dict[int, Transcoder] = {}
    for folder in folders:
        sae = load_sae(folder, device=device, dtype=dtype)
        if not isinstance(sae, Transcoder):
            raise SaescopeError(f"{folder} holds a {sae.architecture} SAE, not a transcoder")
        if sae.layer in by_layer:
            raise SaescopeError(
                f"{path} holds two transcoders of layer {sae.layer} (a sweep); point at one of its folders"
            )
        by_layer[sae.layer] = sae
    models = {(t.cfg.model, t.cfg.revision) for t in by_layer.values()}
    if len(models) > 1:
        raise SaescopeError(f"{path} mixes transcoders of different models: {sorted(map(str, models))}")
    (model, revision), layers = models.pop(), tuple(sorted(by_layer))
    return TranscoderSet(model, revision, layers, tuple(by_layer[i] for i in layers), path)


__all__ = [
    "Transcoder",
    "TranscoderSet",
    "layer_of_hookpoint",
    "load_transcoder_set",
    "mlp_transcoder_config",
    "transcoder_folders",
]
