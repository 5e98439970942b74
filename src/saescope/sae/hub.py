"""Published SAEs by name, resolved through the Hugging Face hub's own cache.

    hf:OWNER/REPO[/PATH][@REVISION]   the SAE in folder PATH of a hub repository (PATH may be left
                                      out when the repository holds one SAE), at a branch, tag or
                                      commit (default: main)
    saelens:RELEASE/SAE_ID            an entry of SAELens's pretrained registry (`catalog`): its
                                      repository and folder

`resolve_name` turns a name into the local folder of its files and the name *pinned* to the commit
it resolved to, `hf:OWNER/REPO/PATH@<commit>`, which every record keeps, so a run can be redone on
exactly these weights (a pinned name resolves from the cache without asking the hub).
Downloads go through `huggingface_hub.snapshot_download`: its cache (`HF_HUB_CACHE`/`HF_HOME`), its
progress bars, `HF_HUB_OFFLINE` respected, nothing downloaded twice; only PATH's files and the
repository's top-level `config.json` are fetched, never the whole repository. Offline, a name with
PATH is found in the cache's refs and snapshots directly, as `snapshot_download` finds it offline,
without importing huggingface_hub's download code (about a second). A repository's SAE folders are
the folders holding a file of `formats.MARKERS`.

Errors are one line each: a repository, revision or folder that is not there (with the nearest
names: SAE folders of the repository, repositories in the cache and in SAELens's registry), a
release or SAE id not in the registry (`catalog`), offline and not cached, a gated repository, a
repository holding several SAEs named without PATH.

This module knows nothing about SAE formats beyond the files that mark an SAE folder, nor about
models or stages.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from ..errors import SaescopeError
from .catalog import CatalogEntry, lookup, nearest, repositories
from .formats import MARKERS

log = logging.getLogger(__name__)

HF = "hf:"
"""Prefix of a Hugging Face hub name."""
SAELENS = "saelens:"
"""Prefix of a SAELens registry name."""
RUN_CONFIG = "config.json"
"""A repository's top-level run settings, fetched with any SAE of it (sparsify records the model there)."""

_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class SAEName(NamedTuple):
    """A published SAE's name, parsed."""

    given: str
    """The name as written."""
    repo_id: str
    """`OWNER/REPO`."""
    path: str
    """The SAE's folder in the repository ("" when not given: the repository's only SAE)."""
    revision: str | None
    """Branch, tag or commit (None: main)."""
    entry: CatalogEntry | None
    """The registry entry a `saelens:` name stands for (None for `hf:` names)."""


class ResolvedSAE(NamedTuple):
    """A published SAE's files in the Hugging Face cache."""

    name: SAEName
    """The name it was given by."""
    pinned: str
    """`hf:OWNER/REPO[/PATH]@<commit>`: the name pinned to the commit it resolved to."""
    folder: Path
    """The SAE's folder in the cache."""
    root: Path
    """The repository's top at that commit in the cache."""
    path: str
    """The SAE's folder in the repository ("" for its top)."""
    commit: str
    """The commit (40 hex digits)."""


def is_sae_name(spec: str | os.PathLike[str]) -> bool:
    """Whether `spec` is a published SAE's name rather than a folder."""
    return str(spec).startswith((HF, SAELENS))


def parse_sae_name(text: str) -> SAEName:
    """`hf:…` or `saelens:…` parsed (a `saelens:` name looked up in the registry); a malformed name
    is an error showing the form."""
    text = str(text)
    if text.startswith(SAELENS):
        release, _, sae_id = text[len(SAELENS) :].partition("/")
        if not release or not sae_id:
            raise SaescopeError(f"{text!r} is not a SAELens name: write saelens:RELEASE/SAE_ID")
        entry = lookup(release, sae_id)
        return SAEName(text, entry.repo_id, entry.path, None, entry)
    if not text.startswith(HF):
        raise SaescopeError(f"{text!r} is not a published SAE's name (hf:… or saelens:…)")
    body, at, revision = text[len(HF) :].partition("@")
    parts = [p for p in body.strip("/").split("/") if p]
    if len(parts) < 2 or not all(_REPO_PART.match(p) for p in parts[:2]) or (at and not revision):
        raise SaescopeError(f"{text!r} is not a hub name: write hf:OWNER/REPO[/PATH][@REVISION]")
    if any(p in (".", "..") for p in parts[2:]):
        raise SaescopeError(f"{text!r}: the path inside the repository may not hold . or ..")
    return SAEName(text, "/".join(parts[:2]), "/".join(parts[2:]), revision or None, None)


def offline() -> bool:
    """Whether huggingface_hub is in offline mode (`HF_HUB_OFFLINE`)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cache_dir() -> Path:
    """The Hugging Face hub cache folder in use (`HF_HUB_CACHE`, else under `HF_HOME`)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_repositories() -> list[str]:
    """The model repositories with something in the cache (`OWNER/REPO`)."""
    folder = cache_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name[len("models--") :].replace("--", "/", 1) for p in folder.glob("models--*--*"))


def sae_folders(files: list[str]) -> list[str]:
    """The SAE folders among a repository's files: those holding a marker file ("" for the top)."""
    folders = {str(PurePosixPath(f).parent) for f in files if PurePosixPath(f).name in MARKERS}
    return sorted("" if f == "." else f for f in folders)


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())


def _repo_cache(repo_id: str) -> Path:
    """A model repository's folder in the cache (`models--OWNER--REPO`)."""
    return cache_dir() / f"models--{repo_id.replace('/', '--')}"


def _cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a revision names in the cache (None when the cache does not know it)."""
    if revision and _COMMIT.match(revision):
        return revision
    ref = _repo_cache(repo_id) / "refs" / (revision or "main")
    return ref.read_text().strip() if ref.is_file() else None


def _hub_files(name: SAEName) -> list[str] | None:
    """The repository's files at the name's revision: from the hub when online, else from the
    cache's record of it (None when nothing is known)."""
    if not offline():
        from huggingface_hub import HfApi

        try:
            return list(HfApi().list_repo_files(name.repo_id, revision=name.revision))
        except Exception as e:  # mapped to one line by the hub's error type
            raise _hub_error(name, e) from None
    commit = _cached_commit(name.repo_id, name.revision)
    if commit is None:
        return None
    return _cached_files(name.repo_id, commit)


def _cached_files(repo_id: str, commit: str) -> list[str] | None:
    """The repository's files at `commit` as the cache knows them: the listing huggingface_hub kept,
    else what the snapshot holds (None when neither exists)."""
    from huggingface_hub import get_cached_repo_tree

    try:
        return [f.path for f in get_cached_repo_tree(repo_id, revision=commit)]
    except Exception:  # no listing kept (an old cache, or a snapshot copied in by hand)
        root = _repo_cache(repo_id) / "snapshots" / commit
        return _files_under(root) if root.is_dir() else None


def _choose_path(name: SAEName) -> str:
    """The SAE folder of a name given without PATH: the repository's only one."""
    files = _hub_files(name)
    if files is None:
        raise _not_cached(name)
    folders = sae_folders(files)
    if len(folders) == 1:
        return folders[0]
    if not folders:
        raise SaescopeError(f"{name.given}: the repository holds no SAE (no {', '.join(MARKERS)} in it)")
    shown = ", ".join(f"{HF}{name.repo_id}/{f}" if f else f"{HF}{name.repo_id}" for f in folders[:6])
    more = f", … ({len(folders)} in all)" if len(folders) > 6 else ""
    raise SaescopeError(f"{name.given}: the repository holds {len(folders)} SAEs; name one: {shown}{more}")


def _patterns(path: str) -> list[str]:
    """What to fetch for the SAE at `path`: its folder's files and the repository's run settings."""
    return [f"{path}/*", RUN_CONFIG] if path else ["*.json", "*.safetensors", "*.npz", "checkpoints/*"]


def _not_cached(name: SAEName) -> SaescopeError:
    where = f" at {name.revision}" if name.revision else ""
    what = name.given if name.entry is None else f"{name.given} ({name.repo_id}/{name.path})"
    cached = cached_repositories()
    # a hub name whose repository the cache does not hold at all may be a misspelt one it does
    misspelt = name.entry is None and cached and name.repo_id not in cached
    hint = f"; nearest cached repositories: {nearest(name.repo_id, cached)}" if misspelt else ""
    if offline():
        return SaescopeError(
            f"{what}{where} is not in the Hugging Face cache ({cache_dir()}) and HF_HUB_OFFLINE is set: "
            f"run once with the hub reachable, or unset HF_HUB_OFFLINE{hint}"
        )
    return SaescopeError(
        f"{what}: the Hugging Face hub cannot be reached and the SAE is not in its cache "
        f"({cache_dir()}){hint}"
    )


def _hub_error(name: SAEName, e: Exception) -> SaescopeError:
    """One line for an error huggingface_hub raised about `name`."""
    from huggingface_hub import errors

    if isinstance(e, errors.GatedRepoError):
        return SaescopeError(
            f"{name.given}: {name.repo_id} is gated: accept its terms on the hub, then log in "
            "(`hf auth login`)"
        )
    if isinstance(e, errors.RepositoryNotFoundError):
        known = sorted({*cached_repositories(), *repositories()})
        return SaescopeError(
            f"{name.given}: no repository {name.repo_id} on the Hugging Face hub (or it is private: log in "
            f"with `hf auth login`); nearest known: {nearest(name.repo_id, known)}"
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return SaescopeError(f"{name.given}: {name.repo_id} has no revision {name.revision!r}")
    if isinstance(e, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)) or type(e).__name__ in (
        "IncompleteSnapshotError",
        "CachedRepoTreeNotFoundError",
    ):
        return _not_cached(name)
    if isinstance(e, (errors.HFValidationError, ValueError)):
        return SaescopeError(f"{name.given}: {str(e).splitlines()[0]}")
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return SaescopeError(f"{name.given}: the Hugging Face hub answered: {first}")


def _missing_folder(name: SAEName, root: Path, commit: str) -> SaescopeError:
    """The error for a PATH the repository (or, offline, the cache) does not hold, with the nearest
    SAE folders."""
    files = _cached_files(name.repo_id, commit) or _files_under(root)
    folders = sae_folders(files)
    known = "cached SAE folders of it" if offline() else "SAE folders of it"
    hint = nearest(name.path, folders) if folders else "none"
    if offline() and not (root / name.path).exists():
        return SaescopeError(
            f"{name.given}: {name.path} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"nearest {known}: {hint}"
        )
    return SaescopeError(f"{name.given}: {name.repo_id} has no SAE at {name.path!r}; nearest {known}: {hint}")


def _offline_snapshot(name: SAEName) -> Path | None:
    """Offline, the cached snapshot holding the name's PATH, found from the cache's refs and
    snapshots as `snapshot_download` finds it offline, without importing huggingface_hub's download
    code (a second or so: what `dashboard NAME` would otherwise pay). None when it is not there, or
    the name has no PATH (the repository's listing is needed): `snapshot_download` then answers."""
    if not name.path or not offline():
        return None
    commit = _cached_commit(name.repo_id, name.revision)
    if commit is None:
        return None
    root = _repo_cache(name.repo_id) / "snapshots" / commit
    return root if any((root / name.path / marker).is_file() for marker in MARKERS) else None


def resolve_name(text: str) -> ResolvedSAE:
    """The local folder of the published SAE `text` names, fetched into the Hugging Face cache when
    it is not there yet, and its pinned name (see the module docstring)."""
    name = parse_sae_name(text)
    root = _offline_snapshot(name)
    path = name.path
    if root is None:
        from huggingface_hub import snapshot_download

        path = path or _choose_path(name)
        try:
            root = Path(
                snapshot_download(name.repo_id, revision=name.revision, allow_patterns=_patterns(path))
            )
        except Exception as e:  # mapped to one line by the hub's error type
            raise _hub_error(name, e) from None
    commit = root.name
    folder = root / path if path else root
    if not any((folder / marker).is_file() for marker in MARKERS):
        raise _missing_folder(name._replace(path=path), root, commit)
    pinned = f"{HF}{name.repo_id}{'/' + path if path else ''}@{commit}"
    log.debug("%s → %s (%s)", text, pinned, folder)
    return ResolvedSAE(name, pinned, folder, root, path, commit)


__all__ = [
    "HF",
    "SAELENS",
    "ResolvedSAE",
    "SAEName",
    "cache_dir",
    "cached_repositories",
    "is_sae_name",
    "offline",
    "parse_sae_name",
    "resolve_name",
    "sae_folders",
]
