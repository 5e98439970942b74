from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import PreTrainedTokenizerFast

import saescope.data as data
from saescope.config import CorpusSettings
from saescope.data import (
    Document,
    ModelInput,
    iter_documents,
    iter_model_inputs,
    iter_sentences,
    sample_positions,
    spans_by_decoding,
)
from saescope.errors import SaescopeError

TEXTS = [
    "the cat is on the mat. Paris is far.",
    "A second document, a bit longer than the first one: it goes on and on.",
    "short",
    "the last one mentions the cat twice: cat! and concatenates",
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in TEXTS])


def inputs(tok: PreTrainedTokenizerFast, start: int = 0, **settings: Any) -> list[ModelInput]:
    return list(iter_model_inputs(CorpusSettings(**settings), tok, start=start))


def char_spans(tok: PreTrainedTokenizerFast, ids: list[int]) -> list[tuple[int, int]]:
    """Naive token character spans by decoding prefixes (exact for this byte-level tokenizer on ASCII)."""
    return [(len(tok.decode(ids[:i])), len(tok.decode(ids[: i + 1]))) for i in range(len(ids))]


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize("context_len", [5, 16, 1000])
def test_windows_pack_documents_with_separators(
    tiny_tok: PreTrainedTokenizerFast, corpus: Path, context_len: int
) -> None:
    got = inputs(tiny_tok, dataset=str(corpus), context_len=context_len)
    bos, eos = tiny_tok.bos_token_id, tiny_tok.eos_token_id
    stream: list[int] = []
    owner: list[int] = []  # document index of each stream token, -1 for separators
    for i, text in enumerate(TEXTS):
        ids = tiny_tok(text, add_special_tokens=False)["input_ids"]
        stream += ([eos] if i else []) + ids
        owner += ([-1] if i else []) + [i] * len(ids)
    assert [m.doc_id for m in got] == list(range(len(got)))
    assert (
        all(len(m.token_ids) == context_len for m in got[:-1]) and 1 < len(got[-1].token_ids) <= context_len
    )
    assert all(m.token_ids[0] == bos for m in got)
    assert [t for m in got for t in m.token_ids[1:]] == stream
    at = 0
    for m in got:
        assert m.positions == [i for i in range(1, len(m.token_ids)) if m.token_ids[i] != eos]
        assert m.text == tiny_tok.decode(m.token_ids)
        docs = sorted({d for d in owner[at : at + len(m.token_ids) - 1] if d >= 0})
        at += len(m.token_ids) - 1
        more = f" (+{len(docs) - 1} more)" if len(docs) > 1 else ""
        assert m.source == f"{corpus}:{docs[0] + 1}{more}"


def test_window_bos_options(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    with_bos = inputs(tiny_tok, dataset=str(corpus), context_len=16, include_bos=True)
    assert all(m.positions[0] == 0 for m in with_bos)
    no_bos = inputs(tiny_tok, dataset=str(corpus), context_len=16, prepend_bos=False)
    assert all(len(m.token_ids) == 16 for m in no_bos[:-1])
    assert tiny_tok.bos_token_id not in no_bos[0].token_ids and no_bos[0].positions[0] == 0


def test_resume_matches_uninterrupted_run(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    for settings in ({"context_len": 8}, {"context_len": 8, "sample_fraction": 0.3}, {"unit": "sentence"}):
        full = inputs(tiny_tok, dataset=str(corpus), **settings)
        for start in (0, 3, 7, 10_000):
            resumed = inputs(tiny_tok, start=start, dataset=str(corpus), **settings)
            assert resumed == [m for m in full if m.doc_id >= start]


def test_sampling_is_deterministic_per_input(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    full = inputs(tiny_tok, dataset=str(corpus), context_len=16)
    half = inputs(tiny_tok, dataset=str(corpus), context_len=16, sample_fraction=0.5)
    assert half == inputs(tiny_tok, dataset=str(corpus), context_len=16, sample_fraction=0.5)
    by_id = {m.doc_id: m for m in full}
    for m in half:
        assert len(m.positions) == int(len(by_id[m.doc_id].positions) * 0.5 + 0.5)
        assert set(m.positions) <= set(by_id[m.doc_id].positions) and m.positions == sorted(m.positions)
    other = inputs(tiny_tok, dataset=str(corpus), context_len=16, sample_fraction=0.5, seed=1)
    assert [m.positions for m in other] != [m.positions for m in half]


def test_sample_positions() -> None:
    positions = list(range(3, 103))
    a = sample_positions(positions, 0.1, seed=0, doc_id=5)
    assert len(a) == 10 and a == sorted(a) and set(a) <= set(positions) and len(set(a)) == 10
    assert a == sample_positions(positions, 0.1, seed=0, doc_id=5)
    assert a != sample_positions(positions, 0.1, seed=0, doc_id=6)
    assert sample_positions(positions, 1.0, 0, 0) == positions
    assert sample_positions([1, 2, 3], 0.1, 0, 0) == []  # round(0.3) = 0: short inputs may keep nothing


# --------------------------------------------------------------------------- sentences


def test_iter_sentences() -> None:
    text = (
        'Hello world. This is a test! Is it? Yes... 3.14 is pi. He said "Stop." Then he left.\n'
        "Dr. Smith, e.g. Not a break. 42 is a number.\n\n"
        "A paragraph without a full stop\nstill ends here\n  \nlast"
    )
    assert iter_sentences(text) == [
        "Hello world.",
        "This is a test!",
        "Is it?",
        "Yes...",
        "3.14 is pi.",
        'He said "Stop."',
        "Then he left.",
        "Dr. Smith, e.g. Not a break.",
        "42 is a number.",
        "A paragraph without a full stop\nstill ends here",
        "last",
    ]
    assert iter_sentences("  \n\n ") == []


def test_sentence_units(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    got = inputs(tiny_tok, dataset=str(corpus), unit="sentence", context_len=12)
    sentences = [s for t in TEXTS for s in iter_sentences(t)]
    assert [m.doc_id for m in got] == list(range(len(sentences)))
    for m, sentence in zip(got, sentences):
        ids = tiny_tok(sentence, add_special_tokens=False)["input_ids"]
        assert m.token_ids == [tiny_tok.bos_token_id, *ids[:11]]
        assert m.positions == list(range(1, len(m.token_ids)))
    assert got[0].source == f"{corpus}:1" and got[2].source == f"{corpus}:2"


# --------------------------------------------------------------------------- substrings


def naive_substring_positions(tok: PreTrainedTokenizerFast, text: str, sub: str, mode: str) -> list[int]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    spans = char_spans(tok, ids)
    out: set[int] = set()
    at = text.find(sub)
    while at != -1:
        covering = [i for i, (a, b) in enumerate(spans) if a < at + len(sub) and b > at]
        out.update(covering if mode == "all" else covering[-1:])
        at = text.find(sub, at + len(sub))
    return sorted(i + 1 for i in out)  # + BOS


@pytest.mark.parametrize("mode", ["last", "all"])
@pytest.mark.parametrize("sub", ["cat", "at", "he ca", " the", "!"])
def test_substring_positions(tiny_tok: PreTrainedTokenizerFast, corpus: Path, sub: str, mode: str) -> None:
    got = inputs(tiny_tok, dataset=str(corpus), substring=sub, substring_positions=mode)
    # With a substring every document is its own input: doc_id = document index here (all are short).
    expected = {i: naive_substring_positions(tiny_tok, t, sub, mode) for i, t in enumerate(TEXTS)}
    assert {m.doc_id: m.positions for m in got} == {i: p for i, p in expected.items() if p}
    for m in got:
        assert m.token_ids[1:] == tiny_tok(TEXTS[m.doc_id], add_special_tokens=False)["input_ids"]


def test_substring_marks_every_occurrence(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    (last,) = [m for m in inputs(tiny_tok, dataset=str(corpus), substring="cat") if m.doc_id == 3]
    tokens = tiny_tok.convert_ids_to_tokens(last.token_ids)
    # " cat" and " cat" are one token each; in "concatenates" the last token of "cat" is "at" (c, at).
    assert [tokens[p] for p in last.positions] == ["Ġcat", "Ġcat", "at"]
    assert TEXTS[3].count("cat") == 3


def test_substring_split_across_windows(tiny_tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    text = "xx cat " * 6
    path = write_jsonl(tmp_path / "long.jsonl", [{"text": text}])
    got = inputs(tiny_tok, dataset=str(path), substring="cat", substring_positions="all", context_len=8)
    ids = tiny_tok(text, add_special_tokens=False)["input_ids"]
    # The long document is cut into windows of its own; together they mark every "cat" token.
    marked = [m.token_ids[p] for m in got for p in m.positions]
    assert marked == [i for i in ids if tiny_tok.convert_ids_to_tokens(i) == "Ġcat"]
    assert all(m.source == f"{path}:1" for m in got)


def test_substring_field_and_missing_substring(tiny_tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"text": "the cat sat", "entity": "cat"},
            {"text": "no such thing", "entity": "Paris"},
            {"text": "Paris is far", "entity": "Paris"},
            {"text": "nothing to find", "entity": None},
        ],
    )
    got = inputs(tiny_tok, dataset=str(path), substring_field="entity")
    assert [m.doc_id for m in got] == [0, 2]  # doc_ids of the inputs without a match are consumed
    assert [tiny_tok.convert_ids_to_tokens(m.token_ids[m.positions[0]]) for m in got] == ["Ġcat", "is"]
    with pytest.raises(SaescopeError, match="substring 'zebra' occurs nowhere in corpus"):
        inputs(tiny_tok, dataset=str(path), substring="zebra")
    with pytest.raises(SaescopeError, match="no field 'entity'"):
        inputs(
            tiny_tok,
            dataset=str(write_jsonl(tmp_path / "x.jsonl", [{"text": "a"}])),
            substring_field="entity",
        )


def test_sentence_units_with_substring(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    got = inputs(tiny_tok, dataset=str(corpus), unit="sentence", substring="cat")
    sentences = [s for t in TEXTS for s in iter_sentences(t)]
    assert [sentences[m.doc_id] for m in got] == [s for s in sentences if "cat" in s]
    for m in got:
        expected = naive_substring_positions(tiny_tok, sentences[m.doc_id], "cat", "last")
        assert m.positions == expected


def test_spans_by_decoding_agrees_with_offsets(tiny_tok: PreTrainedTokenizerFast) -> None:
    for text in TEXTS:
        ids = tiny_tok(text, add_special_tokens=False)["input_ids"]
        offsets = tiny_tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for sub in ("cat", "at", "the", "e ", "zebra"):
            occurrences = data._occurrences(text, sub)
            assert spans_by_decoding(ids, sub, tiny_tok) == data._spans_by_offsets(offsets, occurrences)


class SlowTokenizer:
    """The tiny tokenizer without an offset mapping, like a slow (Python) tokenizer."""

    is_fast = False

    def __init__(self, inner: PreTrainedTokenizerFast) -> None:
        self.inner = inner
        self.bos_token_id, self.eos_token_id = inner.bos_token_id, inner.eos_token_id

    def __call__(self, texts: list[str], **kwargs: Any) -> Any:
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError("no offsets")
        return self.inner(texts, **kwargs)

    def decode(self, ids: list[int], **kwargs: Any) -> str:
        return str(self.inner.decode(ids, **kwargs))


def test_substring_without_offset_mapping(tiny_tok: PreTrainedTokenizerFast, corpus: Path) -> None:
    for mode in ("last", "all"):
        settings = CorpusSettings(dataset=str(corpus), substring="at", substring_positions=mode)
        slow = list(iter_model_inputs(settings, SlowTokenizer(tiny_tok)))
        assert slow == list(iter_model_inputs(settings, tiny_tok))


# --------------------------------------------------------------------------- sources


def test_file_kinds_and_folder_order(tiny_tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("plain text file\n\nwith two paragraphs\n")
    write_jsonl(root / "sub" / "b.jsonl", [{"body": "json one"}, {"body": "json two"}])
    pq.write_table(pa.table({"body": ["parquet one", "parquet two"], "other": [1, 2]}), root / "c.parquet")
    (root / "ignored.md").write_text("not a corpus file")
    settings = CorpusSettings(dataset=str(root), text_field="body")
    docs = list(iter_documents(settings))
    assert docs == [
        Document("plain text file\n\nwith two paragraphs\n", str(root / "a.txt")),
        Document("parquet one", f"{root / 'c.parquet'}#0"),
        Document("parquet two", f"{root / 'c.parquet'}#1"),
        Document("json one", f"{root / 'sub' / 'b.jsonl'}:1"),
        Document("json two", f"{root / 'sub' / 'b.jsonl'}:2"),
    ]
    single = CorpusSettings(dataset=str(root / "c.parquet"), text_field="body")
    assert [d.text for d in iter_documents(single)] == ["parquet one", "parquet two"]


def test_parquet_substring_field(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": ["the cat", "Paris"], "sub": ["cat", "Paris"]}), path)
    docs = list(iter_documents(CorpusSettings(dataset=str(path), substring_field="sub")))
    assert [d.substring for d in docs] == ["cat", "Paris"]


def test_huge_txt_is_cut_at_blank_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "_TXT_DOC_CHARS", 50)
    paragraphs = [f"paragraph {i} " + "words " * 5 for i in range(6)]
    text = "\n\n".join(paragraphs) + "\n"
    path = tmp_path / "big.txt"
    path.write_text(text)
    docs = list(iter_documents(CorpusSettings(dataset=str(path))))
    assert len(docs) > 2 and "".join(d.text for d in docs) == text
    assert all(d.text.startswith("\n") or d is docs[0] for d in docs)  # cut just before a blank line
    assert [d.source for d in docs[:2]] == [str(path), f"{path}#part1"]


def test_non_utf8_file_is_read_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\r\nnaïve\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="saescope.data"):
        (doc,) = iter_documents(CorpusSettings(dataset=str(path)))
    assert doc.text == "caf\ufffd\nna\ufffdve\n"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "does not exist"),
        ("bad.jsonl", '{"text": "ok"}\n{"txt": "no"}\n', r"bad.jsonl:2 has no field 'text'"),
        ("broken.jsonl", "{not json\n", r"broken.jsonl:1 is not valid JSON"),
        ("list.jsonl", "[1, 2]\n", "is not a JSON object"),
        ("number.jsonl", '{"text": 3}\n', "field 'text' of .* is int, not text"),
        ("empty.jsonl", "", "corpus .*empty.jsonl is empty"),
        ("blank.txt", "", "is empty"),
        ("data.csv", "a,b\n", "corpus files must be"),
    ],
)
def test_source_errors(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SaescopeError, match=message):
        list(iter_documents(CorpusSettings(dataset=str(path))))


def test_parquet_missing_column_and_empty_folder(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"content": ["x"]}), path)
    with pytest.raises(SaescopeError, match="has no column 'text'; it has content"):
        list(iter_documents(CorpusSettings(dataset=str(path))))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaescopeError, match="is empty"):
        list(iter_documents(CorpusSettings(dataset=str(tmp_path / "empty"))))


def test_corpus_without_tokens(tiny_tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"text": ""}, {"text": ""}])
    with pytest.raises(SaescopeError, match="is empty"):
        inputs(tiny_tok, dataset=str(path))


def test_hub_dataset_without_the_datasets_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(SaescopeError, match="dataset 'some-org/some-corpus' is not a local file or folder"):
        list(iter_documents(CorpusSettings(dataset="some-org/some-corpus")))


def test_builtin_corpus_to_inputs(tiny_tok: PreTrainedTokenizerFast) -> None:
    stream = iter_model_inputs(CorpusSettings(dataset="builtin", context_len=64), tiny_tok)
    first = [next(stream) for _ in range(40)]
    assert [m.doc_id for m in first] == list(range(40))
    assert all(len(m.token_ids) == 64 for m in first)
    assert first[0].source.startswith("builtin:pydoc_data/topics.py#")
    assert any(m.source.startswith("builtin:") and m.source.split(" ")[0].endswith(".py") for m in first)


def test_a_file_that_is_not_utf8_is_reported_once_however_often_it_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from saescope.config import CorpusSettings
    from saescope.data import check_corpus, iter_documents

    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    settings = CorpusSettings(dataset=str(path))
    with caplog.at_level("WARNING", logger="saescope.data"):
        check_corpus(settings)
        (doc,) = list(iter_documents(settings))
    assert doc.text == "caf\ufffd au lait\n"
    assert [r.getMessage() for r in caplog.records].count(
        f"{path} is not valid UTF-8; undecodable bytes are replaced with U+FFFD"
    ) == 1
