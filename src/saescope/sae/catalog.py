"""SAELens's pretrained registry: `saelens:RELEASE/SAE_ID` → a folder of a Hugging Face repository.

Read from the installed `sae-lens` package's `pretrained_saes.yaml`, found without importing
sae-lens (whose import pulls in TransformerLens: seconds). Only the release asked for is parsed:
the whole file (43,000 lines, ~14,000 SAEs) takes 1.4 s to parse, one release milliseconds.
Without sae-lens, from `catalog_llama`, shipped with saescope: the Llama-family releases of
sae-lens 6.54 (Llama Scope and the other Llama-3 releases). Every entry says which registry it came
from (`CatalogEntry.registry`). A release or SAE id that is not there is an error naming the
nearest ones.

SAELens names some models by TransformerLens's names (`gemma-2-2b`, `gpt2-small`); `hub_model`
gives the Hugging Face id of those listed in `TRANSFORMERLENS_MODELS`.

This module knows nothing about downloads or SAE formats.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import importlib.util
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ..errors import SaescopeError
from .catalog_llama import RELEASES as SHIPPED
from .catalog_llama import SAELENS_VERSION as SHIPPED_VERSION

REGISTRY_FILE = "pretrained_saes.yaml"
"""SAELens's registry file, in the sae_lens package folder."""

TRANSFORMERLENS_MODELS = {
    "gpt2-small": "openai-community/gpt2",
    "gemma-2b": "google/gemma-2b",
    "gemma-2b-it": "google/gemma-2b-it",
    "gemma-2-2b": "google/gemma-2-2b",
    "gemma-2-9b": "google/gemma-2-9b",
    "gemma-2-9b-it": "google/gemma-2-9b-it",
    "gemma-2-27b": "google/gemma-2-27b",
    "pythia-70m-deduped": "EleutherAI/pythia-70m-deduped",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "qwen3-4b": "Qwen/Qwen3-4B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-14b": "Qwen/Qwen3-14B",
}
"""TransformerLens model names the registry and SAELens configs use → their Hugging Face ids."""

_TOP_KEY = re.compile(r"^([^\s#][^:\n]*):[ \t]*$", re.M)


class CatalogEntry(NamedTuple):
    """One SAE of the registry."""

    release: str
    """Its release (`llama_scope_lxr_8x`)."""
    sae_id: str
    """Its id in the release (`l0r_8x`)."""
    repo_id: str
    """The Hugging Face repository holding it."""
    path: str
    """Its folder in that repository ("" for the repository's top)."""
    model: str
    """The model the release names, as a Hugging Face id where known ("" when it names none)."""
    registry: str
    """Which registry said so: `sae-lens X` (installed) or `saescope's list (sae-lens X)`."""
    norm_scaling_factor: float | None = None
    """The input scaling factor of an SAE saved with SAELens's `expected_average_only_in`
    normalisation, as the registry records it (None when it records none)."""


def hub_model(name: str) -> str:
    """The Hugging Face id of a model SAELens names by its TransformerLens name; other names as given."""
    return TRANSFORMERLENS_MODELS.get(name, name)


def nearest(word: str, candidates: list[str], n: int = 3) -> str:
    """The `n` candidates closest to `word`, as a phrase for an error (or 'none')."""
    close = difflib.get_close_matches(word, candidates, n=n, cutoff=0.3)
    return ", ".join(close) if close else "none"


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[str, str] | None:
    """(the registry's text, `sae-lens VERSION`) from the installed package, or None without it."""
    spec = importlib.util.find_spec("sae_lens")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / REGISTRY_FILE
    if not path.is_file():
        return None
    try:
        version = importlib.metadata.version("sae-lens")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return path.read_text(encoding="utf-8"), f"sae-lens {version}"


def _load_yaml(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def _block(text: str, start: int) -> dict[str, Any]:
    """The release whose top-level key begins at `start`, parsed alone."""
    following = _TOP_KEY.search(text, start + 1)
    data = _load_yaml(text[start : following.start() if following else len(text)])
    release = next(iter(data.values())) if isinstance(data, dict) and data else None
    return release if isinstance(release, dict) else {}


def _release(name: str) -> tuple[dict[str, Any] | None, str]:
    """(the release's settings or None, the registry's name)."""
    installed = _installed()
    if installed is None:
        return SHIPPED.get(name), f"saescope's list (sae-lens {SHIPPED_VERSION})"
    return _parsed_release(installed[0], name), installed[1]


@functools.lru_cache(maxsize=64)
def _parsed_release(text: str, name: str) -> dict[str, Any] | None:
    """A release of the installed registry's text (parsed once per release)."""
    found = re.search(rf"^{re.escape(name)}:[ \t]*$", text, re.M)
    if found is None:
        return None
    settings = _block(text, found.start())
    saes = [s for s in settings.get("saes") or [] if isinstance(s, dict) and "id" in s]
    factors = {str(s["id"]): float(s["norm_scaling_factor"]) for s in saes if "norm_scaling_factor" in s}
    return {**settings, "saes": {str(s["id"]): str(s.get("path", s["id"])) for s in saes}, "factors": factors}


def release_names() -> list[str]:
    """Every release of the registry read (installed or shipped)."""
    installed = _installed()
    return list(SHIPPED) if installed is None else _TOP_KEY.findall(installed[0])


def lookup(release: str, sae_id: str) -> CatalogEntry:
    """The registry's entry `release`/`sae_id`; an error naming the nearest releases or ids."""
    settings, registry = _release(release)
    if settings is None:
        raise SaescopeError(
            f"saelens:{release}/{sae_id}: no release {release!r} in SAELens's registry ({registry}); "
            f"nearest: {nearest(release, release_names())}"
        )
    saes: dict[str, str] = settings.get("saes") or {}
    if sae_id not in saes:
        raise SaescopeError(
            f"saelens:{release}/{sae_id}: release {release} ({registry}) has no SAE {sae_id!r}; "
            f"nearest: {nearest(sae_id, list(saes))} (of {len(saes)})"
        )
    model = str(settings.get("model") or "")
    factor = (settings.get("factors") or {}).get(sae_id)
    path = saes[sae_id].strip("/")
    return CatalogEntry(release, sae_id, str(settings["repo_id"]), path, hub_model(model), registry, factor)


def releases_in(repo_id: str) -> list[str]:
    """The registry's releases stored in `repo_id`."""
    installed = _installed()
    if installed is None:
        return [name for name, r in SHIPPED.items() if r["repo_id"] == repo_id]
    text = installed[0]
    found = []
    for hit in re.finditer(rf"^[ \t]+repo_id:[ \t]*['\"]?{re.escape(repo_id)}['\"]?[ \t]*$", text, re.M):
        keys = list(_TOP_KEY.finditer(text, 0, hit.start()))
        if keys:
            found.append(keys[-1].group(1))
    return found


def model_of_repo(repo_id: str) -> str:
    """The model a release of the registry stored in `repo_id` names ("" when none does)."""
    for release in releases_in(repo_id):
        settings, _ = _release(release)
        if settings and settings.get("model"):
            return hub_model(str(settings["model"]))
    return ""


def entry_at(repo_id: str, path: str) -> CatalogEntry | None:
    """The registry's entry for the SAE in folder `path` of `repo_id` (None when no release lists
    it): what an `hf:` name of a registry SAE is known by (its model, its input scaling factor)."""
    for release in releases_in(repo_id):
        settings, _ = _release(release)
        saes: dict[str, str] = (settings or {}).get("saes") or {}
        for sae_id, where in saes.items():
            if where.strip("/") == path.strip("/"):
                return lookup(release, sae_id)
    return None


def repositories() -> list[str]:
    """The repositories the registry's releases are stored in."""
    installed = _installed()
    if installed is None:
        return sorted({str(r["repo_id"]) for r in SHIPPED.values()})
    return sorted(set(re.findall(r"^[ \t]+repo_id:[ \t]*['\"]?([^'\"\s]+)", installed[0], re.M)))


__all__ = [
    "TRANSFORMERLENS_MODELS",
    "CatalogEntry",
    "entry_at",
    "hub_model",
    "lookup",
    "model_of_repo",
    "nearest",
    "release_names",
    "releases_in",
    "repositories",
]
