"""Full-text search over stored explanations, offline: SQLite FTS5 from Python's standard library.

`ExplanationSearch` loads every usable explanation into an in-memory FTS5 table (words split by
Unicode rules, folded to lower case and stemmed with Porter's stemmer, so "numbers" finds
"number") and ranks matches by BM25 (FTS5's `bm25()`: rare words weigh more, short explanations
matching a word beat long ones that mention it in passing). A query is read as plain words — no
query syntax to get wrong — and an explanation matches when it holds any of them; those holding
more of them, or rarer ones, rank first. Each latent appears once, with its best-matching
explanation. Build it once and search many times (the web server); `search_explanations` does
both for one query.

This module knows nothing about how explanations were made or how they are stored.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import SaescopeError
from .best import Interpretation
from .tables import read_interpretations


class SearchHit(NamedTuple):
    """One latent whose explanation matches a query."""

    latent: int
    """The latent's index."""
    explanation: str
    """Its best-matching explanation."""
    explainer: str
    """Which explainer wrote it."""
    model: str
    """The language model that wrote it ("" for none)."""
    relevance: float
    """BM25 relevance (higher is better; comparable within one query only)."""
    headline: float | None
    """The explanation's headline score (`best.HEADLINES`), when it has one."""
    headline_name: str = ""
    """Which score that is (`scorer metric`, e.g. `statistics auroc`; "" when none)."""

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def match_expression(query: str) -> str:
    """The FTS5 expression for plain words: each word quoted, any of them matching."""
    words = re.findall(r"\w+", query.casefold())
    if not words:
        raise SaescopeError(f"the search {query!r} holds no word to look for")
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


class ExplanationSearch:
    """An in-memory full-text index of explanations (see the module docstring)."""

    def __init__(self, interpretations: Sequence[Interpretation]) -> None:
        self.entries = [i for i in interpretations if i.explanation.ok and i.explanation.text.strip()]
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            self.db.execute("CREATE VIRTUAL TABLE docs USING fts5(text, tokenize = 'porter unicode61')")
        except sqlite3.OperationalError as e:
            raise SaescopeError(f"this Python's SQLite cannot search text (no FTS5: {e})") from None
        self.db.executemany(
            "INSERT INTO docs(rowid, text) VALUES (?, ?)",
            ((row, i.explanation.text) for row, i in enumerate(self.entries)),
        )

    def __len__(self) -> int:
        return len(self.entries)

    def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """The `limit` latents whose explanations best match `query`, best first."""
        if limit < 1:
            raise SaescopeError(f"the search limit must be at least 1, got {limit}")
        found = self.db.execute(
            "SELECT rowid, bm25(docs) FROM docs WHERE docs MATCH ? ORDER BY bm25(docs), rowid",
            (match_expression(query),),
        ).fetchall()
        hits: dict[int, SearchHit] = {}
        for row, rank in found:
            entry = self.entries[row]
            if entry.latent in hits:
                continue
            top = entry.headline
            e = entry.explanation
            hits[entry.latent] = SearchHit(
                e.latent,
                e.text,
                e.explainer,
                e.model,
                -float(rank),
                None if top is None else top.value,
                "" if top is None else f"{top.scorer} {top.metric}",
            )
            if len(hits) == limit:
                break
        return list(hits.values())


def search_explanations(index_dir: Path | str, query: str, limit: int = 20) -> list[SearchHit]:
    """The `limit` latents of the index at `index_dir` whose explanations best match `query`."""
    return ExplanationSearch(read_interpretations(index_dir)).search(query, limit)


__all__ = ["ExplanationSearch", "SearchHit", "match_expression", "search_explanations"]
