"""Published SAEs by name: parsing, resolution through the Hugging Face cache, the registry, run folders.

Everything runs against a local hub (`tests.local_hub`: the cache layout, `HF_HUB_OFFLINE=1`, every
network connection refused). Gemma Scope's `params.npz` stands in for any SAE: it needs no
library to write.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest
import torch

from saescope.errors import SaescopeError
from saescope.sae import catalog
from saescope.sae.catalog_llama import RELEASES
from saescope.sae.formats import load_sae
from saescope.sae.hub import is_sae_name, parse_sae_name, resolve_name
from saescope.sae.source import WEIGHTS_LINK, open_sae, read_sae_config, sae_home
from tests.local_hub import (
    LocalHub,
    gemmascope_files,
    gemmascope_params,
    local_hub_fixture,  # noqa: F401  (the local_hub fixture)
)

REPO = "google/gemma-scope-2b-pt-res"


def two_saes(hub: LocalHub) -> str:
    """A repository holding two SAE folders (and a README); returns its commit."""
    files = {
        **gemmascope_files(gemmascope_params(16, seed=1), "layer_1/width_16k/average_l0_5/"),
        **gemmascope_files(gemmascope_params(16, seed=2), "layer_2/width_16k/average_l0_9/"),
        "README.md": b"two SAEs",
    }
    return hub.add(REPO, files)


def test_names_parse_and_malformed_ones_show_the_form() -> None:
    name = parse_sae_name("hf:EleutherAI/sae-llama-3-8b-32x/layers.23@v1")
    assert (name.repo_id, name.path, name.revision, name.entry) == (
        "EleutherAI/sae-llama-3-8b-32x",
        "layers.23",
        "v1",
        None,
    )
    assert parse_sae_name("hf:owner/repo").path == ""
    entry = parse_sae_name("saelens:llama_scope_lxr_8x/l15r_8x")
    assert (entry.repo_id, entry.path) == ("fnlp/Llama3_1-8B-Base-LXR-8x", "Llama3_1-8B-Base-L15R-8x")
    assert is_sae_name("hf:a/b") and is_sae_name(Path("saelens:r/i")) and not is_sae_name("runs/demo/sae")
    for bad in ("hf:just-a-repo", "hf:a/b@", "hf:a/b/../c", "saelens:release-only"):
        with pytest.raises(SaescopeError, match=r"hf:OWNER/REPO|SAELens name|may not hold") as info:
            parse_sae_name(bad)
        assert "\n" not in str(info.value)


def test_a_name_resolves_from_the_cache_offline_pinned_to_its_commit(local_hub: LocalHub) -> None:
    commit = two_saes(local_hub)
    resolved = resolve_name(f"hf:{REPO}/layer_1/width_16k/average_l0_5")
    snapshot = local_hub.root / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    assert resolved.folder == snapshot / "layer_1/width_16k/average_l0_5"
    assert resolved.pinned == f"hf:{REPO}/layer_1/width_16k/average_l0_5@{commit}"
    for again in (f"{resolved.pinned}", f"hf:{REPO}/layer_1/width_16k/average_l0_5@main"):
        assert resolve_name(again).folder == resolved.folder


def test_offline_a_named_folder_resolves_without_huggingface_hubs_download_code(
    local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its import costs about a second, which `saescope dashboard NAME` (no model) would pay."""
    import huggingface_hub

    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("snapshot_download was called")

    commit = two_saes(local_hub)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    for name in (
        f"hf:{REPO}/layer_2/width_16k/average_l0_9",
        f"hf:{REPO}/layer_2/width_16k/average_l0_9@{commit}",
    ):
        assert resolve_name(name).commit == commit


def test_a_repository_of_one_sae_needs_no_path_but_one_of_several_does(local_hub: LocalHub) -> None:
    local_hub.add("someone/one-sae", gemmascope_files(gemmascope_params(16), ""))
    assert resolve_name("hf:someone/one-sae").path == ""
    two_saes(local_hub)
    with pytest.raises(
        SaescopeError, match="holds 2 SAEs; name one: hf:google/gemma-scope-2b-pt-res/layer_1"
    ):
        resolve_name(f"hf:{REPO}")


def test_a_folder_that_is_not_there_names_the_nearest(local_hub: LocalHub) -> None:
    two_saes(local_hub)
    with pytest.raises(
        SaescopeError, match="nearest cached SAE folders of it: layer_1/width_16k/average_l0_5"
    ):
        resolve_name(f"hf:{REPO}/layer_1/width_16k/average_l0_6")


def test_offline_and_not_cached_says_so(local_hub: LocalHub) -> None:
    expected = r"not in the Hugging Face cache .* HF_HUB_OFFLINE is set"
    with pytest.raises(SaescopeError, match=expected) as info:
        resolve_name("hf:EleutherAI/sae-llama-3-8b-32x/layers.23")
    assert "\n" not in str(info.value) and "nearest" not in str(info.value)  # the cache is empty


def test_offline_a_misspelt_repository_names_the_nearest_cached(local_hub: LocalHub) -> None:
    two_saes(local_hub)
    expected = f"unset HF_HUB_OFFLINE; nearest cached repositories: {REPO}"
    with pytest.raises(SaescopeError, match=expected) as info:
        resolve_name("hf:google/gemma-scope-2b-pt-rse/layer_1/width_16k/average_l0_5")
    assert "\n" not in str(info.value)


def test_a_repository_not_on_the_hub_names_the_nearest_known(
    local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online (simulated: the hub's answer is raised where `snapshot_download` would ask it)."""
    import huggingface_hub
    from huggingface_hub import constants, errors

    two_saes(local_hub)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    missing = errors.RepositoryNotFoundError.__new__(errors.RepositoryNotFoundError)
    Exception.__init__(missing, "404 Client Error: Repository Not Found")

    def not_found(*args: object, **kwargs: object) -> str:
        raise missing

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_found)
    with pytest.raises(
        SaescopeError,
        match=r"no repository google/gemma-scope-2b-pt-re .*nearest known: .*google/gemma-scope-2b-pt-res",
    ):
        resolve_name("hf:google/gemma-scope-2b-pt-re/layer_1")


def test_registry_names_that_are_not_there_name_the_nearest() -> None:
    with pytest.raises(SaescopeError, match=r"no release 'llama_scope_lxr8x'.*nearest: llama_scope_lxr_8x"):
        parse_sae_name("saelens:llama_scope_lxr8x/l0r_8x")
    with pytest.raises(SaescopeError, match="has no SAE 'l40r_8x'; nearest: l4r_8x"):
        parse_sae_name("saelens:llama_scope_lxr_8x/l40r_8x")


def test_without_sae_lens_the_shipped_llama_list_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "_installed", lambda: None)
    entry = catalog.lookup("llama_scope_lxm_32x", "l7m_32x")
    assert entry.registry.startswith("saescope's list") and entry.repo_id == "fnlp/Llama3_1-8B-Base-LXM-32x"
    with pytest.raises(SaescopeError, match="saescope's list"):
        catalog.lookup("gemma-scope-2b-pt-res", "layer_1/width_16k/average_l0_5")


def test_the_shipped_list_is_the_installed_registrys_llama_releases() -> None:
    if importlib.util.find_spec("sae_lens") is None:  # found, not imported: its import takes seconds
        pytest.skip("sae-lens is not installed")
    for release, settings in RELEASES.items():
        for sae_id, path in settings["saes"].items():
            entry = catalog.lookup(release, sae_id)
            assert (entry.repo_id, entry.path, entry.model) == (settings["repo_id"], path, settings["model"])


def test_a_name_gets_a_run_folder_linking_its_pinned_weights(local_hub: LocalHub) -> None:
    commit = two_saes(local_hub)
    name = f"hf:{REPO}/layer_2/width_16k/average_l0_9"
    opened = open_sae(name)
    assert (
        opened.folder
        == Path("runs")
        / f"google--gemma-scope-2b-pt-res--layer_2--width_16k--average_l0_9@{commit[:12]}"
        / "sae"
    )
    assert opened.source == f"{name}@{commit}" and opened.format == "gemmascope"
    cfg = json.loads((opened.folder / "cfg.json").read_text())
    assert cfg[WEIGHTS_LINK] == opened.source and cfg["format"] == "saescope.sae/1"
    assert cfg["training"]["source"]["revision"] == commit
    linked = load_sae(opened.folder)  # the folder alone loads the weights from the cache
    for key, tensor in opened.sae.file_tensors().items():
        assert torch.equal(linked.file_tensors()[key], tensor)
    # an edit to the run folder's config is kept the next time the name is used
    cfg["model"] = "my/model"
    (opened.folder / "cfg.json").write_text(json.dumps(cfg))
    assert open_sae(name).sae.cfg.model == "my/model" and read_sae_config(name).model == "my/model"
    assert sae_home(name) == opened.folder


def test_an_unknown_format_lists_the_files_found(local_hub: LocalHub) -> None:
    local_hub.add("someone/odd", {"sae/cfg.json": b'{"something": 1}', "sae/weights.pt": b"\x80\x04"})
    with pytest.raises(SaescopeError, match=r"no SAE format recognised \(files: cfg.json, weights.pt\)"):
        open_sae("hf:someone/odd/sae")


def test_the_suite_cannot_reach_the_network(local_hub: LocalHub) -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with pytest.raises(AssertionError, match="network"), socket.socket() as s:
        s.connect(("127.0.0.1", 9))


def test_online_only_the_sae_folder_is_fetched_and_a_pinned_name_asks_for_its_commit(
    local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online (simulated: `snapshot_download` records what it is asked and answers from the cache)."""
    import huggingface_hub
    from huggingface_hub import constants

    commit = two_saes(local_hub)
    snapshot = local_hub.root / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    asked: list[tuple[str, str | None, list[str]]] = []

    def recorder(repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None) -> str:
        asked.append((repo_id, revision, list(allow_patterns or [])))
        return str(snapshot)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", recorder)
    pinned = resolve_name(f"hf:{REPO}/layer_2/width_16k/average_l0_9").pinned
    resolve_name(pinned)
    patterns = ["layer_2/width_16k/average_l0_9/*", "config.json"]
    assert asked == [(REPO, None, patterns), (REPO, commit, patterns)]
