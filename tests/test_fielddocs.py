"""Field docstrings, read once for `--help` (dataclasses) and the JSON schema (NamedTuples)."""

from __future__ import annotations

from saescope.config import CorpusSettings, TrainConfig
from saescope.example import Example
from saescope.fielddocs import field_docs


def test_namedtuple_fields_are_documented() -> None:
    docs = field_docs(Example)
    assert set(docs) == set(Example._fields)
    assert docs["focus"].startswith("Index in `tokens` of the example's own token")


def test_dataclass_fields_include_their_bases() -> None:
    docs = field_docs(TrainConfig)
    assert "context_len" in docs and docs["context_len"] == field_docs(CorpusSettings)["context_len"]
    assert "\n" not in docs["context_len"]  # whitespace folded


def test_the_api_schema_describes_examples_with_the_same_words(tmp_path) -> None:
    from saescope.web.schemas import ExampleOut

    schema = ExampleOut.model_json_schema()
    docs = field_docs(Example)
    assert {name: p["description"] for name, p in schema["properties"].items()} == docs
