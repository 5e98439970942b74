"""A published SAE, named, works with every stage as one trained here, and records pin its commit.

The SAE is a random TopK SAE on the tiny Llama's `resid_post:1`, published in SAELens's layout
(what `save_saelens` writes, SAELens's own reader agreeing: `tests/sae/test_convert.py`) in a local
hub (`tests.local_hub`: offline, no network). The same SAE saved as a native folder is the
reference: indexing it by name must give the very index the folder gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from saescope import cli
from saescope.bound import bind_sae
from saescope.compare.command import compare
from saescope.config import CompareConfig, ConvertConfig, EvalConfig, ExportConfig, ServeConfig, SteerConfig
from saescope.convert import convert
from saescope.errors import SaescopeError
from saescope.evals import evaluate
from saescope.index.reader import Index
from saescope.runs import eval_file
from saescope.sae import SparseAutoencoder
from saescope.sae.formats import load_sae, save_sae, save_saelens, save_sparsify
from saescope.sae.source import runs_of_names
from saescope.steer.experiment import steer
from saescope.web.run import find_run_parts
from tests.builders import one_thread, random_topk_sae
from tests.index.builders import build, write_corpus
from tests.local_hub import LocalHub, folder_files, local_hub_fixture  # noqa: F401  (the local_hub fixture)

REPO, FOLDER = "someone/tiny-saes", "blocks.1.hook_resid_post"
NAME = f"hf:{REPO}/{FOLDER}"


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


def publish(hub: LocalHub, sae: SparseAutoencoder, tmp: Path, repo: str = REPO) -> str:
    """`sae` in SAELens's layout as `repo`'s folder FOLDER; returns the commit."""
    save_saelens(sae, tmp / "saelens")
    return hub.add(repo, folder_files(tmp / "saelens", f"{FOLDER}/"))


@pytest.fixture
def published(local_hub: LocalHub, tiny_model_dir: Path, tmp_path: Path) -> tuple[SparseAutoencoder, str]:
    """The SAE (also saved as a native folder, ./native) and its pinned name."""
    sae = random_topk_sae(tiny_model_dir, d_sae=48, k=5)
    save_sae(sae, Path("native"))
    commit = publish(local_hub, sae, tmp_path)
    return sae, f"{NAME}@{commit}"


def test_index_query_and_dashboard_of_a_name_match_the_native_folder(
    published: tuple[SparseAutoencoder, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, pinned = published
    corpus = write_corpus(Path("corpus.jsonl"))
    status = cli.main(
        ["index", NAME, "--dataset", str(corpus), "--tokens", "300", "--context-len", "24", "--map", "pca"]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    run = Path("runs") / f"someone--tiny-saes--{FOLDER}@{pinned[-40:][:12]}"
    index = Index(run / "index")
    assert f"indexed 300 tokens of {run}/sae" in out
    assert index.header.cfg["weights"] == pinned  # the index pins the commit
    assert index.header.cfg["training"]["source"]["revision"] == pinned[-40:]
    build(
        [Path("native")],
        [Path("native_index")],
        corpus,
        tokens=300,
        context_len=24,
        chunk_tokens=65_536,
        bucket_latents=64,
    )
    reference = Index("native_index")
    assert index.header.sae_sha256 == reference.header.sae_sha256
    for name in ("latents.parquet", "top.parquet"):
        assert pq.read_table(run / "index" / name).equals(pq.read_table(Path("native_index") / name))
    # a query that runs the model finds the SAE again through the index's header, offline
    assert cli.main(["query", str(run / "index"), "--text", "the cat is on a mat", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"]
    # the commands that take an index or a run take the name too: its run's
    assert cli.main(["dashboard", NAME]) == 0
    assert (run / "dashboard" / "index.html").is_file()
    assert f"open {run}/dashboard/index.html" in capsys.readouterr().out
    assert cli.main(["interpret", NAME, "--latents", "0-3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == str(run / "index")
    # the server sees a run: the SAE (linked) and its index
    parts = find_run_parts(run)
    assert (parts.sae, parts.index_dir) == (run / "sae", run / "index")


def test_a_name_not_indexed_yet_says_what_to_run_and_a_run_folder_comes_on_first_use(
    published: tuple[SparseAutoencoder, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, pinned = published
    run = Path("runs") / f"someone--tiny-saes--{FOLDER}@{pinned[-40:][:12]}"
    assert cli.main(["dashboard", NAME]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{pinned} has no latent index yet" in err
    assert f"run `saescope index {NAME}` first" in err
    assert not run.exists()  # asking wrote nothing
    served = runs_of_names(ServeConfig(run=Path(NAME)))
    assert served.run == run and (run / "sae" / "cfg.json").is_file()  # the server gets the linked SAE
    assert runs_of_names(ExportConfig(run=Path(NAME), neuronpedia=Path("np"))).run == run
    here = ServeConfig(run=Path("runs/demo"))
    assert runs_of_names(here) is here  # folders as given


def test_a_name_compares_with_the_same_sae_in_another_format(
    published: tuple[SparseAutoencoder, str], tmp_path: Path
) -> None:
    """sparsify names the site by the module (`layers.1`), SAELens by TransformerLens's hook: the
    same site, `resid_post:1`, and the same latents."""
    sae, pinned = published
    save_sparsify(sae, tmp_path / "sparsify" / "layers.1")
    (tmp_path / "sparsify" / "config.json").write_text(json.dumps({"model": sae.cfg.model}))
    result = compare(CompareConfig(saes=(Path(NAME), tmp_path / "sparsify" / "layers.1")))
    assert result.saes[0].parent.name.endswith(f"@{pinned[-40:][:12]}")  # the name's run folder
    assert result.pairs[0].matching.shared[0.9] == 1.0
    assert result.out.parent == result.saes[0].parent / "compare"


def test_eval_and_steer_records_pin_the_commit(published: tuple[SparseAutoencoder, str]) -> None:
    _, pinned = published
    corpus = write_corpus(Path("corpus.jsonl"))
    result = evaluate(
        EvalConfig(saes=(Path(NAME),), dataset=str(corpus), tokens=64, downstream=False, context_len=24)
    )
    folder = result.evals[0].path
    assert folder.parent.name.endswith(f"@{pinned[-40:][:12]}") and folder.name == "sae"
    assert json.loads(eval_file(folder).read_text())["sae"]["source"] == pinned
    assert result.render().splitlines()[1].split()[0] == folder.parent.name  # named by its run, not "sae"
    steered = steer(
        SteerConfig(sae=Path(NAME), prompt="The cat", steer=("3:add:2",), max_new_tokens=3, controls=False)
    )
    assert steered.to_json()["sae"] == pinned


def test_a_name_converts_to_a_native_folder_with_the_same_weights(
    published: tuple[SparseAutoencoder, str], tiny_model_dir: Path
) -> None:
    sae, _ = published
    convert(ConvertConfig(sae_dir=Path(NAME), out=Path("converted")))
    back = load_sae(Path("converted"))
    assert (back.cfg.model, back.cfg.hookpoint) == (str(tiny_model_dir), "resid_post:1")
    for key, tensor in sae.file_tensors().items():
        assert back.file_tensors()[key].equal(tensor)


def test_a_local_folder_in_another_format_binds_as_it_is(
    published: tuple[SparseAutoencoder, str], tmp_path: Path
) -> None:
    bound = bind_sae(tmp_path / "saelens")
    assert bound.path == tmp_path / "saelens" and bound.source == str((tmp_path / "saelens").resolve())
    assert bound.hookpoint.alias == "resid_post:1"


def test_an_sae_of_another_width_is_refused_in_one_line(
    local_hub: LocalHub, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    narrow = random_topk_sae(tiny_model_dir, d_sae=16, k=2, d_in=16)
    publish(local_hub, narrow, tmp_path, repo="someone/narrow")
    with pytest.raises(SaescopeError, match=r"reads width 16, but resid_post:1 of .* is 32 wide"):
        bind_sae(f"hf:someone/narrow/{FOLDER}")
    status = cli.main(["steer", f"hf:someone/narrow/{FOLDER}", "--prompt", "The cat", "--steer", "1:add:1"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and "is 32 wide" in err


def test_a_name_not_cached_offline_is_one_line_for_every_command(
    local_hub: LocalHub, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "hf:EleutherAI/sae-llama-3-8b-32x/layers.23"
    for argv in (
        ["eval", missing],
        ["index", missing],
        ["steer", missing, "--prompt", "a", "--steer", "1:add:1"],
        ["effects", missing, "--text", "a"],
        ["convert", missing, "--out", "converted"],
        ["compare", missing, missing],
        ["dashboard", missing],
        ["interpret", missing],
        ["serve", missing],
        ["export", missing, "--neuronpedia", "np"],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "not in the Hugging Face cache" in err, err
