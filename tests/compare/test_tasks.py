"""The offline probing tasks label real text: string literals and code by Python's tokenizer,
documents by their dominant script (a one-script corpus gives no task and says so)."""

from __future__ import annotations

from pathlib import Path

from saescope.compare.tasks import code_vs_prose, in_string, python_spans, script, script_of, token_labels
from saescope.config import CorpusSettings
from saescope.config.compare import ProbingSettings
from tests.builders import tiny_tokenizer

SOURCE = 'x = "hello world"  # a comment\ny = f(x)\n'


def test_python_string_and_comment_spans() -> None:
    strings, comments = python_spans(SOURCE)
    assert [SOURCE[a:b] for a, b in strings] == ['"hello world"']
    assert [SOURCE[a:b] for a, b in comments] == ["# a comment"]
    offsets = [(0, 1), (4, 10), (10, 16), (19, 20), (31, 32), (2, 3), (16, 18), (3, 6)]
    labels = ["code", "string", "string", None, "code", "code", None, None]  # whitespace; straddling
    assert token_labels(SOURCE, offsets) == labels


def test_script_of_a_document() -> None:
    assert script_of("plain English text " * 3) == "LATIN"
    assert script_of("Съешь же ещё этих мягких французских булок") == "CYRILLIC"
    assert script_of("short") is None


def test_a_one_script_corpus_gives_no_script_task_and_says_so(tmp_path: Path) -> None:
    corpus = tmp_path / "latin.txt"
    corpus.write_text("\n\n".join(f"English paragraph number {i} with enough letters." for i in range(30)))
    task = script(tiny_tokenizer(), ProbingSettings(), CorpusSettings(dataset=str(corpus)))
    assert task.items == [] and "fewer than two scripts" in task.reason and "LATIN" in task.reason


def test_a_two_script_corpus_gives_a_script_task(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(25):
        (folder / f"en{i:02}.txt").write_text(f"An English document, number {i}, written in Latin letters.")
        (folder / f"ru{i:02}.txt").write_text(f"Русский документ номер {i}, написанный кириллицей.")
    task = script(tiny_tokenizer(), ProbingSettings(), CorpusSettings(dataset=str(folder)))
    assert not task.reason and {i.label for i in task.items} == {"LATIN", "CYRILLIC"}


def test_builtin_tasks_label_code_and_prose_and_strings() -> None:
    tok = tiny_tokenizer()
    settings = ProbingSettings(documents=20, context_len=64, per_class=50)
    task = code_vs_prose(tok, settings)
    assert {i.label for i in task.items} == {"code", "prose"} and len(task.items) == 20
    tokens = in_string(tok, settings)
    assert {i.label for i in tokens.items} == {"code", "string"}
    assert all(len(i.positions) == 1 for i in tokens.items)
