"""`saescope export --neuronpedia` and `saescope import-explanations`: Neuronpedia's layout, both ways.

A tiny run (the tiny Llama, a random TopK SAE of 1,100 latents so that features span two batches
of 1,024, its index, statistics explanations of some latents) is exported; the files must be
Neuronpedia's layout with its field names and types (`saescope.neuronpedia.layout` cites them),
and the export re-imported must give back the same explanations and top activations. A
Neuronpedia export of the same SAE, written as Neuronpedia writes one, is imported beside
saescope's explanations and scored by its scorers.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from saescope.config import ExportConfig, ImportExplanationsConfig, InterpretConfig
from saescope.errors import SaescopeError
from saescope.index.reader import Index, read_explanations
from saescope.interpret.command import interpret_latents
from saescope.interpret.tables import read_interpretations
from saescope.neuronpedia import export_neuronpedia, import_explanations, read_export
from saescope.neuronpedia import layout as L
from saescope.sae.formats import save_sae
from tests.builders import one_thread
from tests.index.builders import build, topk_sae, write_corpus

D_SAE = 1100
EXAMPLES = 5


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/tiny: sae/, index/ (300 tokens) with statistics explanations of latents 0-199. Read-only."""
    root = tmp_path_factory.mktemp("np") / "tiny"
    with one_thread():
        save_sae(topk_sae(tiny_model_dir, d_sae=D_SAE, k=8), root / "sae")
        corpus = write_corpus(root.parent / "corpus.jsonl")
        build([root / "sae"], [root / "index"], corpus, tokens=300, bucket_latents=64, chunk_tokens=65_536)
        interpret_latents(InterpretConfig(index=root / "index", latents="0-199", min_count=2))
    return root


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("np_out")
    result = export_neuronpedia(ExportConfig(run=run, neuronpedia=out, examples=EXAMPLES))
    assert result.features == D_SAE and result.batches == 2
    return result.folder


def rows(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_the_export_is_neuronpedias_layout_with_its_field_names_and_types(run: Path, exported: Path) -> None:
    model_id, source_id = exported.parent.name, exported.name
    assert model_id == "tiny-llama" and source_id == "1-saescope-res-1100"
    for name in L.METADATA:
        (row,) = [json.loads(line) for line in (exported / name).read_text().splitlines()]
    source = json.loads((exported / L.SOURCE).read_text())
    assert (source["id"], source["modelId"], source["setName"]) == (source_id, model_id, "saescope-res-1100")
    assert json.loads(source["notes"])["saescope"]["sae_sha256"] == Index(run / "index").header.sae_sha256
    model = json.loads((exported / L.MODEL).read_text())
    assert (model["layers"], model["dimension"], model["neuronsPerLayer"]) == (4, 32, 64)
    first, second = rows(L.batch_file(exported, L.FEATURES, 0)), rows(L.batch_file(exported, L.FEATURES, 1))
    assert len(first) == L.BATCH and len(second) == D_SAE - L.BATCH
    assert [r["index"] for r in first + second] == [str(i) for i in range(D_SAE)]  # strings, by latent
    for row in first[:50]:
        assert tuple(row) == L.FEATURE_FIELDS and (row["modelId"], row["layer"]) == (model_id, source_id)
        assert isinstance(row["maxActApprox"], float) and isinstance(row["frac_nonzero"], float)
        assert all(isinstance(v, str) for v in row["pos_str"]) and all(
            isinstance(i, int) for i in row["topkCosSimIndices"]
        )
    activations = rows(L.batch_file(exported, L.ACTIVATIONS, 1))
    assert {int(r["index"]) for r in activations} <= set(range(L.BATCH, D_SAE))  # the batch's latents
    for row in activations[:50]:
        assert tuple(row) == L.ACTIVATION_FIELDS and len(row["tokens"]) == len(row["values"])
        assert row["values"][row["maxValueTokenIndex"]] == row["maxValue"] == max(row["values"])
    explanations = rows(L.batch_file(exported, L.EXPLANATIONS, 0))
    assert explanations and all(tuple(r) == L.EXPLANATION_FIELDS for r in explanations)
    assert len({r["id"] for r in explanations}) == len(explanations)


# The columns the rows write, typed as Neuronpedia's `apps/webapp/prisma/schema.prisma` declares
# them (github.com/hijohnnylin/neuronpedia at ebb8426); "!" marks a column with neither a default nor
# NULL allowed, which every row must hold. Its importer inserts each row's keys as those columns.
SCHEMA: dict[str, dict[str, str]] = {
    L.RELEASE: {
        "name": "String!",
        "description": "String!",
        "descriptionShort": "String?",
        "creatorName": "String!",
        "creatorId": "String!",
        "urls": "String[]",
        "visibility": "Visibility",
    },
    L.MODEL: {
        "id": "String!",
        "displayName": "String",
        "displayNameShort": "String",
        "creatorId": "String!",
        "owner": "String!",
        "visibility": "Visibility",
        "layers": "Int!",
        "dimension": "Int?",
        "neuronsPerLayer": "Int!",
    },
    L.SOURCE_SET: {
        "modelId": "String!",
        "name": "String!",
        "description": "String!",
        "creatorName": "String!",
        "creatorId": "String!",
        "releaseName": "String?",
        "urls": "String[]",
        "visibility": "Visibility",
    },
    L.SOURCE: {
        "id": "String!",
        "modelId": "String!",
        "setName": "String!",
        "creatorId": "String!",
        "hasDashboards": "Boolean",
        "inferenceEnabled": "Boolean",
        "visibility": "Visibility",
        "dataset": "String?",
        "num_prompts": "Int?",
        "num_tokens_in_prompt": "Int?",
        "hfRepoId": "String?",
        "hfFolderId": "String?",
        "saelensRelease": "String?",
        "saelensSaeId": "String?",
        "notes": "String?",
    },
    L.FEATURES: {
        "modelId": "String!",
        "layer": "String!",
        "index": "String!",
        "creatorId": "String?",
        "sourceSetName": "String?",
        "maxActApprox": "Float?",
        "frac_nonzero": "Float",
        "freq_hist_data_bar_heights": "Float[]",
        "freq_hist_data_bar_values": "Float[]",
        "pos_str": "String[]",
        "pos_values": "Float[]",
        "neg_str": "String[]",
        "neg_values": "Float[]",
        "topkCosSimIndices": "Int[]",
        "topkCosSimValues": "Float[]",
    },
    L.ACTIVATIONS: {
        "id": "String",
        "modelId": "String!",
        "layer": "String!",
        "index": "String!",
        "creatorId": "String!",
        "dataSource": "String?",
        "dataIndex": "String?",
        "tokens": "String[]",
        "values": "Float[]",
        "maxValue": "Float!",
        "maxValueTokenIndex": "Int!",
        "minValue": "Float!",
        "qualifyingTokenIndex": "Int?",
    },
    L.EXPLANATIONS: {
        "id": "String",
        "modelId": "String!",
        "layer": "String!",
        "index": "String!",
        "authorId": "String!",
        "description": "String!",
        "typeName": "String?",
        "explanationModelName": "String?",
        "notes": "String?",
    },
}


def is_of(value: Any, column: str) -> bool:
    """Whether a JSON value fits a column type of `SCHEMA`."""
    base, optional = column.rstrip("!?"), column.endswith("?")
    if value is None:
        return optional
    scalar = {
        "String": lambda v: isinstance(v, str),
        "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "Boolean": lambda v: isinstance(v, bool),
        "Visibility": lambda v: v in ("PUBLIC", "UNLISTED", "PRIVATE"),
    }
    if base.endswith("[]"):
        return isinstance(value, list) and all(scalar[base[:-2]](v) for v in value)
    return scalar[base](value)


def test_every_row_holds_only_columns_of_neuronpedias_schema_with_their_types(exported: Path) -> None:
    every = {
        name: [json.loads(line) for line in (exported / name).read_text().splitlines()] for name in L.METADATA
    }
    for kind in L.KINDS:
        every[kind] = [row for path in sorted((exported / kind).glob("*.jsonl.gz")) for row in rows(path)]
    for table, found in every.items():
        assert found, table
        columns = SCHEMA[table]
        required = {c for c, t in columns.items() if t.endswith("!")}
        for row in found:
            assert set(row) <= set(columns), (table, set(row) - set(columns))
            assert required <= set(row), (table, required - set(row))
            bad = {c: v for c, v in row.items() if not is_of(v, columns[c])}
            assert not bad, (table, bad)


def test_an_export_reimported_gives_back_the_same_explanations_and_top_activations(
    run: Path, exported: Path, tmp_path: Path
) -> None:
    index = Index(run / "index")
    back = read_export(exported.parent.parent)  # found below the export's top folder
    by_latent: dict[int, list[dict[str, Any]]] = {}
    for row in back.activations:
        by_latent.setdefault(int(row["index"]), []).append(row)
    for latent in (0, 5, 77, 1030, 1099):
        top = index.top_examples(latent, EXAMPLES)
        mine = by_latent.get(latent, [])
        assert [(list(e.tokens), [float(a) for a in e.activations]) for e in top] == [
            (r["tokens"], r["values"]) for r in mine
        ]
    fresh = tmp_path / "index"
    shutil.copytree(
        run / "index", fresh, ignore=shutil.ignore_patterns("explanations*", "scores*", "interpret")
    )
    assert read_explanations(fresh) == {}
    result = import_explanations(ImportExplanationsConfig(export=exported, index=fresh))
    assert result.imported == len(back.explanations) and result.duplicates == 0
    assert read_explanations(fresh) == read_explanations(run / "index")
    keys = {(i.explanation.explainer, i.explanation.prompt_version) for i in read_interpretations(fresh)}
    assert keys == {
        (i.explanation.explainer, i.explanation.prompt_version) for i in read_interpretations(run / "index")
    }


def neuronpedia_rows(model_id: str, source_id: str, texts: dict[int, str]) -> list[dict[str, Any]]:
    """Explanation rows as Neuronpedia's own export writes them (no saescope notes)."""
    return [
        {
            "id": f"np{latent}",
            "modelId": model_id,
            "layer": source_id,
            "index": str(latent),
            "authorId": "clkht01d40000jv08hvalcvly",
            "description": text,
            "embedding": None,
            "typeName": "oai_token-act-pair",
            "explanationModelName": "gpt-4o-mini",
            "umap_x": None,
        }
        for latent, text in texts.items()
    ]


def test_neuronpedias_explanations_sit_beside_ours_and_our_scorers_score_them(
    run: Path, exported: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "index"
    shutil.copytree(run / "index", fresh)
    index = Index(fresh)
    counts = index.stats().column("count").to_numpy()
    live = sorted(range(D_SAE), key=lambda i: -counts[i])[:2]  # enough firings to hold some out
    tokens = {i: index.top_examples(i, 1)[0].focus_token for i in live}
    theirs = tmp_path / "theirs" / "tiny-llama" / "1-res-np"
    L.write_rows(
        L.batch_file(theirs, L.EXPLANATIONS, 0),
        neuronpedia_rows("tiny-llama", "1-res-np", {i: f'the token "{tokens[i]}"' for i in live}),
    )
    result = import_explanations(ImportExplanationsConfig(export=theirs, index=fresh, scorers=("stats",)))
    assert result.imported == len(live)
    stored = [i for i in read_interpretations(fresh) if i.explanation.explainer == "neuronpedia"]
    assert {i.latent for i in stored} == set(live)
    assert {(i.explanation.model, i.explanation.prompt_version) for i in stored} == {
        ("gpt-4o-mini", "oai_token-act-pair")
    }
    (scored,) = result.scored
    assert {r.latent for r in scored.latents} == set(live)
    # measured beside a chance baseline, or (too few held-out firings) said why not
    assert any(s.scorer == "statistics" and s.measured for r in scored.latents for s in r.scores)
    assert all(r.scores or r.messages for r in scored.latents)
    # saescope's own explanations are all still there
    ours = [i.latent for i in read_interpretations(run / "index")]
    assert sorted(
        i.latent for i in read_interpretations(fresh) if i.explanation.explainer == "stats"
    ) == sorted(ours)


def test_an_export_of_another_sae_is_refused(run: Path, exported: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(exported, other)
    source = json.loads((other / L.SOURCE).read_text())
    notes = json.loads(source["notes"])
    notes["saescope"]["sae_sha256"] = "0" * 64
    (other / L.SOURCE).write_text(json.dumps({**source, "notes": json.dumps(notes)}) + "\n")
    with pytest.raises(SaescopeError, match="export of another SAE"):
        import_explanations(ImportExplanationsConfig(export=other, index=run / "index"))
    beyond = tmp_path / "beyond" / "m" / "s"
    L.write_rows(L.batch_file(beyond, L.EXPLANATIONS, 0), neuronpedia_rows("m", "s", {D_SAE + 3: "x"}))
    with pytest.raises(SaescopeError, match=f"latent {D_SAE + 3}, but the index's SAE has {D_SAE} latents"):
        import_explanations(ImportExplanationsConfig(export=beyond, index=run / "index"))
