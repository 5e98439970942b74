"""`saescope circuit` end to end on a tiny run: files in both formats, validation printed with the
graph, and bad input refused in one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saescope import cli
from saescope.runs import Run
from saescope.sae.formats import save_sae
from tests.builders import random_topk_sae, save_tiny_model
from tests.circuit.builders import random_transcoders, save_set

PROMPT = "the cat is on the mat in Paris"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("circuit") / "model")


@pytest.fixture(scope="module")
def run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("circuit") / "run"
    save_set(random_transcoders(4, skip=True, model=str(model_dir)), Run(root).transcoders)
    return root


def one_error_line(status: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("saescope circuit")]
    assert status == 2 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_a_graph_is_built_checked_and_saved(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "circuit",
        str(run),
        "--prompt",
        PROMPT,
        "--target",
        " the",
        "--max-feature-nodes",
        "40",
        "--validate",
        "8",
        "--head-edges",
        "3",
        "--name",
        "cat",
        "--threads",
        "1",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "replacement score" in out and "validation against the real model" in out and "Pearson r" in out
    ours = json.loads((run / "circuits" / "cat.json").read_text())
    assert ours["method"] == "transcoders" and len(ours["validation"]["checks"]) == 8
    assert ours["validation"]["correlation"] is not None
    assert 0 <= ours["scores"]["replacement"] <= 1 and 0 <= ours["scores"]["completeness"] <= 1
    ids = [n["id"] for n in ours["nodes"]]
    assert len(set(ids)) == len(ids) and [n["index"] for n in ours["nodes"]] == list(range(len(ids)))
    checks = ours["validation"]["checks"]
    assert all(ids[c["index"]] == c["node"] for c in checks)
    assert all(c["position"] == ours["nodes"][c["index"]]["position"] for c in checks)
    outside = sum(c["position"] > 0 for c in checks)
    assert ours["validation"]["checks_outside_position_0"] == outside and "outside position 0" in out
    assert (ours["validation"]["correlation_outside_position_0"] is None) == bool(
        ours["validation"]["correlation_outside_position_0_note"]
    )
    assert [n["token"] for n in ours["nodes"] if n["kind"] == "logit"] == [" the"]  # --target " the"
    kept = {n["id"] for n in ours["nodes"] if n["kept"]}
    assert ours["edges"] and all(e["source"] in kept and e["target"] in kept for e in ours["edges"])
    for head in ours["heads"]:
        assert sum(c["value"] for c in head["contributions"]) == pytest.approx(
            head["weight"], rel=1e-4, abs=1e-6
        )
    tracer = json.loads((run / "circuits" / "cat.circuit-tracer.json").read_text())
    assert set(tracer) == {"metadata", "qParams", "nodes", "links"}
    assert tracer["metadata"]["slug"] == "cat" and tracer["metadata"]["prompt"] == PROMPT
    fields = {
        "node_id",
        "feature",
        "layer",
        "ctx_idx",
        "feature_type",
        "jsNodeId",
        "clerp",
        "influence",
        "activation",
    }
    assert all(fields <= set(n) for n in tracer["nodes"])
    ids = {n["node_id"] for n in tracer["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in tracer["links"])
    targets = [n for n in tracer["nodes"] if n["is_target_logit"]]
    assert len(targets) == 1 and targets[0]["feature_type"] == "logit"
    listing = json.loads((run / "circuits" / "graph-metadata.json").read_text())
    assert [g["slug"] for g in listing["graphs"]] == ["cat"]
    assert (run / "circuits" / "cat.safetensors").is_file()


def test_the_api_call(run: Path) -> None:
    import saescope

    result = saescope.attribution_graph(
        saescope.CircuitConfig(
            run=run, prompt=PROMPT, max_feature_nodes=10, validate=0, head_edges=0, name="api"
        )
    )
    assert result.validation is None and "not measured" in result.render()
    assert result.to_json()["validation"] is None


def test_a_residual_sae_gives_a_sparse_feature_circuits_graph(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_sae(random_topk_sae(model_dir, 48, 4), Run(tmp_path).sae)
    assert cli.main(["circuit", str(tmp_path), "--prompt", PROMPT, "--validate", "4", "--name", "s"]) == 0
    assert "sparse-feature-circuits" in capsys.readouterr().out
    assert json.loads((tmp_path / "circuits" / "s.json").read_text())["method"] == "sparse-feature-circuits"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-prompt-tokens", "5"], "more than --max-prompt-tokens 5"),
        (["--target", " Paris cat"], "not one"),
        (["--model", "other-model"], "was trained on"),
    ],
)
def test_bad_input_is_one_line(
    run: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["circuit", str(run), "--prompt", PROMPT, *extra])
    assert message in one_error_line(status, capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-prompt-tokens", "5"], "more than --max-prompt-tokens 5"),
        (["--target", " Paris cat"], "not one"),
    ],
)
@pytest.mark.parametrize("dictionary", ["transcoders", "sae"])
def test_a_bad_prompt_is_refused_before_the_model_loads(
    run: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
    dictionary: str,
) -> None:
    import saescope.bound
    import saescope.circuit.command

    def no_model(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded before the prompt was checked")

    monkeypatch.setattr(saescope.circuit.command, "load_model", no_model)
    monkeypatch.setattr(saescope.bound, "load_model", no_model)
    if dictionary == "sae":
        save_sae(random_topk_sae(model_dir, 48, 4), Run(tmp_path).sae)
    folder = run if dictionary == "transcoders" else tmp_path
    status = cli.main(["circuit", str(folder), "--prompt", PROMPT, *extra])
    assert message in one_error_line(status, capsys.readouterr().err)


def test_a_run_without_dictionaries_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["circuit", str(tmp_path), "--prompt", PROMPT])
    assert "has no transcoders" in one_error_line(status, capsys.readouterr().err)


def test_transcoders_of_another_model_are_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_set(random_transcoders(2, model=str(model_dir), d_model=16), Run(tmp_path).transcoders)
    status = cli.main(["circuit", str(tmp_path), "--prompt", PROMPT])
    assert "transcoders of another model" in one_error_line(status, capsys.readouterr().err)
