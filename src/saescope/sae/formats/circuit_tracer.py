"""circuit-tracer's transcoder set (safety-research/circuit-tracer, "Circuit Tracing"): a folder with
`config.yaml` and one `layer_i.safetensors` per decoder layer, every layer from 0 on.

    config.yaml   model_name, model_kind: transcoder_set, feature_input_hook: mlp.hook_in,
                  feature_output_hook: mlp.hook_out, scan, transcoders: [layer_0.safetensors, …]
    layer_i       W_enc [d_sae, d_model] (circuit-tracer transposes it on load), b_enc [d_sae],
                  W_dec [d_sae, d_model], b_dec [d_model], W_skip [d_model, d_model] (optional:
                  output += x @ W_skip.T), activation_function.threshold [d_sae] (JumpReLU;
                  without it, ReLU)

circuit-tracer builds JumpReLU (z·H(z − θ)) or ReLU transcoders only, never TopK, so a saescope
set is written as JumpReLU with per-latent thresholds calibrated on a sample of each layer's
inputs (`jumprelu_thresholds`): an approximation whose agreement with the TopK original on
held-out rows `save_circuit_tracer` returns for every layer (the command prints it). The files
keep every TopK weight, and `config.yaml` a `saescope` block (each layer's k), so a set saescope
wrote reads back as the exact TopK set. A set without that block holds JumpReLU or ReLU
transcoders, which saescope's TopK transcoders cannot reproduce: reading one is refused in one
line. The `transcoders` entries are file names relative to the folder.

This module reads and writes files only (circuit-tracer itself is not imported; it cannot be
installed beside transformers 5).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor

from ...errors import SaescopeError
from ...files import dtype_name, write_safetensors
from ..transcoder import Transcoder, TranscoderSet, mlp_transcoder_config
from .common import assemble, check_shapes, read_safetensors
from .jumprelu_thresholds import Agreement, calibrate_jumprelu

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
INPUT_HOOK, OUTPUT_HOOK = "mlp.hook_in", "mlp.hook_out"
"""circuit-tracer's names of an MLP's input and output (saescope's `mlp_in:L`, `mlp_out:L`)."""
THRESHOLD = "activation_function.threshold"


def layer_file(layer: int) -> str:
    """The file of one layer's transcoder."""
    return f"layer_{layer}.safetensors"


class CircuitTracerExport(NamedTuple):
    """A set written for circuit-tracer."""

    folder: Path
    """Where it was written."""
    agreements: dict[int, Agreement]
    """Per layer: how its JumpReLU copy agrees with the TopK original on held-out sample rows."""


def check_exportable(tset: TranscoderSet) -> None:
    """circuit-tracer needs a transcoder of every MLP from layer 0 on, reading its input."""
    if list(tset.layers) != list(range(len(tset.layers))):
        raise SaescopeError(
            f"{tset.path}: circuit-tracer needs a transcoder at every layer from 0 on; this set has "
            f"{list(tset.layers)}"
        )
    for tc in tset.transcoders:
        names = (tc.cfg.hookpoint_alias, tc.cfg.output_hookpoint_alias)
        if names != (f"mlp_in:{tc.layer}", f"mlp_out:{tc.layer}"):
            raise SaescopeError(
                f"{tset.path}: circuit-tracer's transcoders read mlp_in:L and write mlp_out:L; layer "
                f"{tc.layer} maps {names[0] or tc.cfg.hookpoint} to {names[1] or tc.cfg.output_hookpoint}"
            )


def save_circuit_tracer(
    tset: TranscoderSet, folder: str | Path, samples: Mapping[int, Tensor]
) -> CircuitTracerExport:
    """Write `tset` as a circuit-tracer set, JumpReLU thresholds calibrated on `samples[layer]`
    ([N, d_in] inputs of that layer's transcoder; see the module docstring)."""
    import yaml

    check_exportable(tset)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    agreements: dict[int, Agreement] = {}
    for layer, tc in zip(tset.layers, tset.transcoders):
        if layer not in samples:
            raise SaescopeError(f"no calibration sample for layer {layer}")
        calibrated = calibrate_jumprelu(tc, samples[layer])
        agreements[layer] = calibrated.agreement
        own = tc.file_tensors()
        tensors = {name: own[name] for name in ("b_enc", "W_dec", "b_dec")}
        tensors["W_enc"] = own["W_enc"].t()
        tensors[THRESHOLD] = calibrated.thresholds.to(own["b_enc"])
        if "W_skip" in own:
            tensors["W_skip"] = own["W_skip"]
        write_safetensors(folder / layer_file(layer), tensors)
        log.debug("layer %d: %s", layer, calibrated.agreement.describe())
    config: dict[str, Any] = {
        "model_name": tset.model,
        "model_kind": "transcoder_set",
        "feature_input_hook": INPUT_HOOK,
        "feature_output_hook": OUTPUT_HOOK,
        "scan": tset.model,
        "transcoders": [layer_file(layer) for layer in tset.layers],
        "saescope": {
            "note": "TopK transcoders as JumpReLU with calibrated thresholds; saescope reads the TopK back",
            "k": [tc.k for tc in tset.transcoders],
            "revision": tset.revision,
        },
    }
    (folder / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return CircuitTracerExport(folder, agreements)


def read_config(folder: Path) -> dict[str, Any]:
    """The set's `config.yaml`, checked to be a transcoder set."""
    import yaml

    path = folder / CONFIG
    if not path.is_file():
        raise SaescopeError(f"{folder} has no {CONFIG}: not a circuit-tracer transcoder set")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SaescopeError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict) or config.get("model_kind", "transcoder_set") != "transcoder_set":
        kind = config.get("model_kind") if isinstance(config, dict) else None
        raise SaescopeError(
            f"{path}: model_kind {kind!r} is not a transcoder_set (cross-layer transcoders are not read)"
        )
    return config


def load_layer(folder: Path, entry: Any, layer: int, k: int, model: str) -> Transcoder:
    """One layer's TopK transcoder from its file (written by `save_circuit_tracer`)."""
    path = folder / str(entry)
    tensors = read_safetensors(path)
    d_sae, d_model = tuple(tensors["W_enc"].shape) if "W_enc" in tensors else (0, 0)
    expected = {"W_enc": (d_sae, d_model), "b_enc": (d_sae,), "W_dec": (d_sae, d_model), "b_dec": (d_model,)}
    skip = "W_skip" in tensors
    if skip:
        expected["W_skip"] = (d_model, d_model)
    check_shapes(tensors, expected, path, f"circuit-tracer transcoder of layer {layer}")
    cfg = mlp_transcoder_config(
        layer, d_model, d_sae, k, model, skip, dtype=dtype_name(tensors["W_enc"].dtype)
    )
    native = {name: tensors[name].double() for name in expected}
    native["W_enc"] = native["W_enc"].t()
    sae = assemble(cfg, native, path, tensors["W_enc"].dtype)
    assert isinstance(sae, Transcoder)
    return sae


def load_circuit_tracer(folder: str | Path) -> TranscoderSet:
    """The TopK set saescope wrote to `folder` as circuit-tracer's (see the module docstring)."""
    folder = Path(folder)
    config = read_config(folder)
    ours = config.get("saescope")
    entries = config.get("transcoders")
    if not isinstance(ours, dict) or not isinstance(ours.get("k"), list):
        raise SaescopeError(
            f"{folder / CONFIG}: a circuit-tracer set of JumpReLU or ReLU transcoders; saescope's "
            "transcoders are TopK and cannot reproduce them exactly (only sets saescope exported, which "
            "record their k, are read)"
        )
    if not isinstance(entries, list) or len(entries) != len(ours["k"]):
        raise SaescopeError(
            f"{folder / CONFIG}: `transcoders` must list one file per layer, as `saescope.k` does"
        )
    model = str(config.get("model_name") or "")
    revision = ours.get("revision")
    transcoders = tuple(
        load_layer(folder, entry, layer, int(k), model)
        for layer, (entry, k) in enumerate(zip(entries, ours["k"]))
    )
    return TranscoderSet(model, revision, tuple(range(len(transcoders))), transcoders, folder)


def is_circuit_tracer_set(folder: Path) -> bool:
    """Whether `folder` holds a circuit-tracer `config.yaml`."""
    return (folder / CONFIG).is_file()


__all__ = [
    "CONFIG",
    "CircuitTracerExport",
    "check_exportable",
    "is_circuit_tracer_set",
    "layer_file",
    "load_circuit_tracer",
    "save_circuit_tracer",
]
