"""Full-text search over explanations: found by a word, stemmed, ranked by BM25, one hit per latent."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from saescope.errors import SaescopeError
from saescope.interpret.best import Interpretation
from saescope.interpret.concurrent import LatentResult
from saescope.interpret.explainers import Explanation
from saescope.interpret.search import ExplanationSearch, match_expression, search_explanations
from saescope.interpret.tables import ExplanationKey, ResultStore

WHEN = datetime(2024, 1, 1, tzinfo=timezone.utc)


def stored(latent: int, text: str, explainer: str = "llm") -> Interpretation:
    e = Explanation(latent, explainer, "m", "v1", text, None, bool(text), None if text else "x", 5, False, "")
    return Interpretation(e, (), WHEN)


EXPLANATIONS = [
    stored(1, "Python keywords that open a block"),
    stored(2, "numbers written with digits, e.g. dates and numbered lists in prose about numbers"),
    stored(3, "a number"),
    stored(4, "closing parentheses"),
    stored(5, ""),  # a failed explanation is never found
    stored(3, "the digit one", explainer="stats"),
]


def test_found_by_a_word_in_it() -> None:
    search = ExplanationSearch(EXPLANATIONS)
    assert len(search) == 5
    assert [h.latent for h in search.search("parentheses")] == [4]
    assert [h.latent for h in search.search("PYTHON")] == [1]  # case does not matter
    assert search.search("giraffe") == []


def test_stemming_and_ranking() -> None:
    hits = ExplanationSearch(EXPLANATIONS).search("number")
    # "numbers" and "numbered" stem to "number"; the short explanation that is only about it first
    assert [h.latent for h in hits] == [3, 2]
    assert hits[0].explanation == "a number" and hits[0].relevance > hits[1].relevance > 0
    # an explanation holding more of the query's words ranks higher (latent 3 has one of them in
    # each of its two explanations); each latent once, with its best-matching explanation
    both = ExplanationSearch(EXPLANATIONS).search("digit number")
    assert [h.latent for h in both] == [2, 3]
    assert ExplanationSearch(EXPLANATIONS).search("digit")[0].explanation == "the digit one"


def test_query_syntax_is_plain_words() -> None:
    assert match_expression('digits" OR NOT (x*') == '"digits" OR "or" OR "not" OR "x"'
    assert [h.latent for h in ExplanationSearch(EXPLANATIONS).search('"closing" -parentheses*')] == [4]
    with pytest.raises(SaescopeError, match="holds no word"):
        ExplanationSearch(EXPLANATIONS).search("  ?! ")
    with pytest.raises(SaescopeError, match="limit"):
        ExplanationSearch(EXPLANATIONS).search("number", 0)
    assert len(ExplanationSearch(EXPLANATIONS).search("number", 1)) == 1


def test_search_the_stored_explanations_of_an_index(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    key = ExplanationKey("llm", "m", "v1")
    for i in EXPLANATIONS[:4]:
        store.write(LatentResult(i.latent, i.explanation, (), None), key, {})
    assert [h.latent for h in search_explanations(tmp_path, "block keywords")] == [1]
    assert search_explanations(tmp_path / "nothing-here", "number") == []
