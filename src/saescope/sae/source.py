"""An SAE as the commands take it: a folder in any format saescope reads, or a published SAE's name.

    open_sae("runs/demo/sae")                                # trained here
    open_sae("downloads/blocks.8.hook_resid_post")           # SAELens's files: the format recognised
    open_sae("hf:EleutherAI/sae-llama-3-8b-32x/layers.23")    # a hub repository's folder (`hub`)
    open_sae("saelens:llama_scope_lxr_8x/l15r_8x")           # SAELens's registry (`catalog`)

A name's weights stay in the Hugging Face cache. What the stages write about it (eval.json, the
latent index, the dashboard) goes to its *run folder*, `runs/<OWNER>--<REPO>--<PATH>@<commit>/`
under the working folder, one per repository folder and commit: its `sae/cfg.json` is a *linked*
SAE, saescope's own config (`format` "saescope.sae/1", the SAE's settings) naming the weights by
the pinned name, `"weights": "hf:OWNER/REPO/PATH@<commit>"`. Every stage that takes an SAE folder
takes that folder too (`formats.native.load_sae` follows the link, from the cache alone), so a
published SAE is indexed, explained, steered and served exactly as one trained here, and the index
header, eval.json and steering records name the exact commit. The run folder's config is written
once, when the name is first used; edits to it (a model, a hookpoint) are kept. The commands that
take a latent index or a run (`interpret`, `dashboard`, `serve`, `export`, …) take the name too:
`runs_of_names` turns it into its run's index (which `saescope index NAME` must have made) or run
folder, for the config fields `RUN_FIELDS`.

A published SAE's model and hookpoint come from its own files where they record them (SAELens's
`metadata`, sparsify's run `config.json`, Llama Scope's hooks, translated to Hugging Face module
names such as `resid_post:12`), else from SAELens's registry (the entry an `hf:` name's folder is
listed as, or the model of the release holding the repository) and, for Gemma Scope, from the
repository's name and folder (`gemma-scope-2b-pt-res/layer_20/…` → `google/gemma-2-2b`,
`resid_post:20`). An `hf:` name of a folder the registry lists is read as its `saelens:` name is
(with the input scaling factor the registry records).

This module knows nothing about models or stages.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..errors import SaescopeError
from ..files import read_json_object, write_json
from ..runs import SAE, SAE_CONFIG, index_beside, is_index_folder
from .base import SAEConfig, SparseAutoencoder
from .catalog import entry_at, hub_model, model_of_repo
from .formats import detect_format, read_sae_folder
from .formats.common import NATIVE_FORMAT
from .formats.native import config_from_dict
from .formats.saelens import load_saelens
from .hub import ResolvedSAE, is_sae_name, resolve_name
from .record import TrainingRecord

log = logging.getLogger(__name__)

PUBLISHED_RUNS = Path("runs")
"""Where the run folders of published SAEs go (relative to the working folder, as `train`'s default)."""
WEIGHTS_LINK = "weights"
"""The key of a linked SAE's cfg.json naming its weights (a pinned published name)."""
SCALING = "norm_scaling_factor"
"""The key of a published SAE's source record holding the input scaling factor its registry gave."""

RUN_FIELDS = ("index", "run")
"""Config fields naming a latent index or a run folder, which may name a published SAE instead
(`runs_of_names`)."""

_GEMMASCOPE_REPO = re.compile(r"^google/gemma-scope-(\d+b)-(pt|it)-(res|mlp|att)\b")
_GEMMASCOPE_LAYER = re.compile(r"(?:^|/)layer_(\d+)(?:/|$)")


class OpenedSAE(NamedTuple):
    """An SAE loaded from a folder or a name."""

    sae: SparseAutoencoder
    """The SAE, in eval mode, on the CPU."""
    folder: Path
    """Its folder as the stages see it: the folder given, or a name's run folder (`<run>/sae`)."""
    source: str
    """What it is, pinned: a published SAE's name at its commit (`hf:…@<commit>`), else its folder."""
    format: str
    """The format its weights were read in (`native`, `saelens`, …)."""


def run_folder_of(resolved: ResolvedSAE) -> Path:
    """The run folder of a published SAE (see the module docstring)."""
    body = resolved.pinned[len("hf:") :].rsplit("@", 1)[0]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", body.replace("/", "--"))
    return PUBLISHED_RUNS / f"{readable}@{resolved.commit[:12]}"


def linked_weights(folder: Path) -> str | None:
    """The pinned name a linked SAE folder's cfg.json names (None for any other folder)."""
    cfg_path = folder / SAE_CONFIG
    if not cfg_path.is_file():
        return None
    try:
        link = read_json_object(cfg_path).get(WEIGHTS_LINK)
    except SaescopeError:
        return None
    return link if isinstance(link, str) else None


def _gemmascope_identity(resolved: ResolvedSAE) -> tuple[str, str]:
    """(model, hookpoint) a Gemma Scope repository's name and folder say ("" where they do not)."""
    repo = _GEMMASCOPE_REPO.match(resolved.name.repo_id)
    if repo is None:
        return "", ""
    size, tuned, site = repo.groups()
    model = f"google/gemma-2-{size}" + ("-it" if tuned == "it" else "")
    layer = _GEMMASCOPE_LAYER.search(resolved.path)
    short = {"res": "resid_post", "mlp": "mlp_out"}.get(site)
    return model, f"{short}:{layer.group(1)}" if layer and short else ""


def _model_of(sae: SparseAutoencoder, resolved: ResolvedSAE) -> str:
    """The model: the first Hugging Face id among what the files, the registry and the repository's
    name say (TransformerLens names translated), else the first name any of them gives."""
    entry = resolved.name.entry
    said = [
        sae.cfg.model,
        entry.model if entry is not None else "",
        model_of_repo(resolved.name.repo_id),
        _gemmascope_identity(resolved)[0],
    ]
    names = [hub_model(m) for m in said if m]
    return next((m for m in names if "/" in m), names[0] if names else "")


def _with_identity(sae: SparseAutoencoder, resolved: ResolvedSAE, fmt: str) -> SAEConfig:
    """The SAE's config with its model and hookpoint filled in and where it came from."""
    hookpoint, alias = sae.cfg.hookpoint, sae.cfg.hookpoint_alias
    if not hookpoint:
        hookpoint = alias = _gemmascope_identity(resolved)[1]
    entry = resolved.name.entry
    source: dict[str, Any] = {
        **(sae.cfg.training.source or {}),
        "format": fmt,
        "name": resolved.name.given,
        "pinned": resolved.pinned,
        "repo": resolved.name.repo_id,
        "path": resolved.path,
        "revision": resolved.commit,
    }
    if entry is not None:
        source["registry"] = {"release": entry.release, "sae_id": entry.sae_id, "from": entry.registry}
        if entry.norm_scaling_factor is not None:
            source[SCALING] = entry.norm_scaling_factor
    return sae.cfg.with_updates(
        model=_model_of(sae, resolved),
        hookpoint=hookpoint,
        hookpoint_alias=alias,
        training=TrainingRecord(source=source),
    )


def read_weights(folder: Path, norm_scaling_factor: float | None) -> tuple[SparseAutoencoder, str]:
    """The SAE in a published folder and its format; an SAELens SAE normalised by a factor its
    registry records gets that factor folded in (as SAELens's `from_pretrained` does)."""
    if norm_scaling_factor is not None and detect_format(folder) == "saelens":
        return load_saelens(folder, norm_scaling_factor), "saelens"
    return read_sae_folder(folder)


def read_published(name: str) -> tuple[SparseAutoencoder, ResolvedSAE, str]:
    """A published SAE read from the Hugging Face cache (fetched first when needed), its
    resolution and format; nothing is written outside the cache."""
    resolved = resolve_name(name)
    entry = resolved.name.entry or entry_at(resolved.name.repo_id, resolved.path)
    resolved = resolved._replace(name=resolved.name._replace(entry=entry))  # an hf: name the registry lists
    sae, fmt = read_weights(resolved.folder, entry.norm_scaling_factor if entry is not None else None)
    sae.cfg = _with_identity(sae, resolved, fmt)
    return sae, resolved, fmt


def _write_link(folder: Path, sae: SparseAutoencoder, pinned: str) -> None:
    """Write the linked SAE's cfg.json (a run folder's config is written once and then kept)."""
    present = linked_weights(folder)
    if present == pinned:
        return
    if (folder / SAE_CONFIG).exists():
        raise SaescopeError(
            f"{folder} holds another SAE ({present or 'not a linked one'}), not {pinned}; move it away"
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / SAE_CONFIG, {"format": NATIVE_FORMAT, **sae.cfg.to_dict(), WEIGHTS_LINK: pinned}, 2)
    log.info("%s: its run folder is %s (the weights stay in the Hugging Face cache)", pinned, folder.parent)


def _linked_config(folder: Path, resolved: ResolvedSAE) -> SAEConfig | None:
    """The config of a name's run folder when it links these weights (None when it does not exist)."""
    if linked_weights(folder) != resolved.pinned:
        return None
    return config_from_dict(read_json_object(folder / SAE_CONFIG), folder / SAE_CONFIG)


def open_sae(spec: str | Path) -> OpenedSAE:
    """The SAE `spec` names (a folder in any format, or a published name), with the folder its
    artifacts go to; a name's run folder is created on first use (see the module docstring)."""
    text = str(spec)
    if is_sae_name(text):
        sae, resolved, fmt = read_published(text)
        folder = run_folder_of(resolved) / SAE
        kept = _linked_config(folder, resolved)
        if kept is None:
            _write_link(folder, sae, resolved.pinned)
        else:
            sae.cfg = _check_link(kept, sae, folder)
        return OpenedSAE(sae.eval(), folder, resolved.pinned, fmt)
    folder = Path(spec)
    sae, fmt = read_sae_folder(folder)
    return OpenedSAE(sae.eval(), folder, linked_weights(folder) or str(folder.resolve()), fmt)


def sae_home(spec: str | Path) -> Path:
    """The folder where what the stages write about the SAE `spec` goes: the folder given, or a
    name's run folder's `sae/` (created on first use)."""
    if not is_sae_name(str(spec)):
        return Path(spec)
    resolved = resolve_name(str(spec))
    folder = run_folder_of(resolved) / SAE
    if linked_weights(folder) == resolved.pinned:
        return folder
    return open_sae(spec).folder


def read_sae_config(spec: str | Path) -> SAEConfig:
    """The settings of the SAE `spec` names, from its config alone when it has saescope's (a native
    or linked folder, a name whose run folder exists); other formats are read whole."""
    folder = sae_home(spec)
    cfg_path = folder / SAE_CONFIG
    if cfg_path.is_file():
        data = read_json_object(cfg_path, what="an SAE config")
        if data.get("format") == NATIVE_FORMAT:
            return config_from_dict(data, cfg_path)
    return read_sae_folder(folder)[0].cfg


def run_part_of_name(name: str, field_name: str) -> Path:
    """The run folder (`field_name` "run", made on first use) or the latent index ("index": it must
    exist) of a published SAE's name."""
    if field_name == "run":
        return sae_home(name).parent
    resolved = resolve_name(name)
    index = index_beside(run_folder_of(resolved) / SAE)
    if not is_index_folder(index):
        raise SaescopeError(
            f"{resolved.pinned} has no latent index yet (no {index}): run `saescope index {name}` first"
        )
    return index


Config = TypeVar("Config")


def runs_of_names(cfg: Config) -> Config:
    """`cfg` with every published SAE's name in its `RUN_FIELDS` (a path, or a tuple of them)
    replaced by that SAE's run folder or latent index (`run_part_of_name`); other values as given."""
    changes: dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = getattr(cfg, name, None)
        if isinstance(value, tuple):
            if any(is_sae_name(v) for v in value):
                changes[name] = tuple(run_part_of_name(str(v), name) if is_sae_name(v) else v for v in value)
        elif value is not None and is_sae_name(value):
            changes[name] = run_part_of_name(str(value), name)
    return dataclasses.replace(cfg, **changes) if changes else cfg  # type: ignore[type-var]


def _check_link(cfg: SAEConfig, sae: SparseAutoencoder, folder: Path) -> SAEConfig:
    """The linked folder's config, checked against the weights it names."""
    theirs = (sae.architecture, sae.d_in, sae.d_sae)
    if (cfg.architecture, cfg.d_in, cfg.d_sae) != theirs:
        raise SaescopeError(
            f"{folder / SAE_CONFIG} says a {cfg.architecture} SAE with d_in={cfg.d_in}, d_sae={cfg.d_sae}, "
            f"but its weights are a {theirs[0]} SAE with d_in={theirs[1]}, d_sae={theirs[2]}"
        )
    return cfg.with_updates(dtype=sae.cfg.dtype)


def load_linked(folder: Path, data: dict[str, Any]) -> SparseAutoencoder:
    """The SAE of a linked folder (`formats.native.load_sae` calls this): the weights its pinned
    name resolves to, with the folder's own config."""
    cfg = config_from_dict(data, folder / SAE_CONFIG)
    resolved = resolve_name(str(data[WEIGHTS_LINK]))
    sae, _ = read_weights(resolved.folder, (cfg.training.source or {}).get(SCALING))
    sae.cfg = _check_link(cfg, sae, folder)
    return sae.eval()


__all__ = [
    "PUBLISHED_RUNS",
    "RUN_FIELDS",
    "WEIGHTS_LINK",
    "OpenedSAE",
    "linked_weights",
    "load_linked",
    "open_sae",
    "read_published",
    "read_sae_config",
    "run_folder_of",
    "run_part_of_name",
    "runs_of_names",
    "sae_home",
]
