"""Which tokens, n-grams and preceding tokens are over-represented where a latent fires.

The *foreground* is every position where the latent fires (activation > 0) in the examples an
explainer may read; the *background* is every position where it does not (the rest of those
windows, and the record's non-activating background text). For each candidate rule — the firing
token itself (`token`), the 2–3 tokens ending at it (`ngram`), the token just before it
(`context`) — `find_evidence` counts its firings and its background occurrences and reports

- lift = P(rule | firing) / P(rule | background), the background rate add-one smoothed so that a
  rule never seen in the background gets a large finite lift;
- precision = firings / (firings + background occurrences): within this sample, how often the
  latent fires where the rule matches (samples are enriched in firings, so it is optimistic in
  absolute terms but ranks rules well).

When the latent index supplies corpus-wide per-token counts (`LatentRecord.token_stats`), token
lifts and precisions come from those instead. `Evidence.matches` applies a rule at one position,
which is what the statistics scorer tests on held-out text.

This module knows nothing about language models, prompts or scores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

from ..example import Example
from .records import LatentRecord

EvidenceKind = Literal["token", "ngram", "context"]
NGRAM_SIZES = (2, 3)


class Evidence(NamedTuple):
    """One rule that predicts firing, with its counts."""

    kind: EvidenceKind
    """`token` (the firing token is `items[0]`), `ngram` (the tokens ending at the firing token are
    `items`) or `context` (the token just before the firing token is `items[0]`)."""
    items: tuple[str, ...]
    """The token(s) the rule looks for."""
    firings: int
    """Firings where the rule matches."""
    total_firings: int
    """All firings counted."""
    background: int
    """Non-firing positions where the rule matches."""
    background_total: int
    """All non-firing positions counted."""
    lift: float
    """P(rule | firing) / P(rule | background), smoothed; NaN when unknown."""
    precision: float
    """firings / (firings + background): how often the latent fires where the rule matches."""
    exact: bool = True
    """Whether tokens must match exactly (False: ignoring surrounding whitespace and case)."""

    def matches(self, tokens: Sequence[str], i: int) -> bool:
        """Whether the rule matches at position `i` of `tokens`."""
        same = _same if self.exact else _loosely_same
        if self.kind == "token":
            return same(tokens[i], self.items[0])
        if self.kind == "context":
            return i > 0 and same(tokens[i - 1], self.items[0])
        n = len(self.items)
        return i >= n - 1 and all(same(tokens[i - n + 1 + j], self.items[j]) for j in range(n))

    def to_dict(self) -> dict[str, Any]:
        """JSON values (NaN lift as None)."""
        d = self._asdict()
        d["items"] = list(self.items)
        d["lift"] = None if math.isnan(self.lift) else self.lift
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        """The inverse of `to_dict`."""
        lift = d.get("lift")
        return cls(
            d["kind"],
            tuple(str(t) for t in d["items"]),
            int(d["firings"]),
            int(d["total_firings"]),
            int(d["background"]),
            int(d["background_total"]),
            math.nan if lift is None else float(lift),
            float(d["precision"]),
            bool(d.get("exact", True)),
        )


def _same(a: str, b: str) -> bool:
    return a == b


def _loosely_same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _rules_at(tokens: Sequence[str], i: int) -> Iterable[tuple[EvidenceKind, tuple[str, ...]]]:
    yield "token", (tokens[i],)
    if i > 0:
        yield "context", (tokens[i - 1],)
    for n in NGRAM_SIZES:
        if i >= n - 1:
            yield "ngram", tuple(tokens[i - n + 1 : i + 1])


def count_rules(
    examples: Iterable[Example], firing: bool
) -> tuple[Counter[tuple[EvidenceKind, tuple[str, ...]]], int]:
    """Rule counts over the firing (or the non-firing) positions of `examples`, and how many such
    positions there were."""
    counts: Counter[tuple[EvidenceKind, tuple[str, ...]]] = Counter()
    positions = 0
    for ex in examples:
        for i, a in enumerate(ex.activations):
            if (a > 0) == firing:
                positions += 1
                counts.update(_rules_at(ex.tokens, i))
    return counts, positions


def _lift(fg: int, n_fg: int, bg: int, n_bg: int) -> float:
    return (fg / max(n_fg, 1)) / ((bg + 1) / (n_bg + 1))


def _evidence(kind: EvidenceKind, items: tuple[str, ...], fg: int, n_fg: int, bg: int, n_bg: int) -> Evidence:
    return Evidence(kind, items, fg, n_fg, bg, n_bg, _lift(fg, n_fg, bg, n_bg), fg / max(fg + bg, 1))


def _corpus_token_evidence(record: LatentRecord) -> list[Evidence]:
    """Token rules from corpus-wide counts (`token_stats`), when the record has them."""
    if not record.token_stats or record.frequency <= 0 or record.count <= 0:
        return []
    n_bg = max(round(record.count / record.frequency) - record.count, 0)
    out = []
    for s in record.token_stats:
        background = max(s.occurrences - s.firings, 0)
        out.append(_evidence("token", (s.token,), s.firings, record.count, background, n_bg))
    return out


def all_evidence(record: LatentRecord) -> list[Evidence]:
    """Every candidate rule with its counts (before any selection)."""
    sample = (*record.train, *record.background)
    fg, n_fg = count_rules(record.train, firing=True)
    bg, n_bg = count_rules(sample, firing=False)
    corpus = _corpus_token_evidence(record)
    skip_tokens = bool(corpus)
    found = [
        _evidence(kind, items, n, n_fg, bg[(kind, items)], n_bg)
        for (kind, items), n in fg.items()
        if not (skip_tokens and kind == "token")
    ]
    return found + corpus


def _strength(e: Evidence) -> float:
    return e.firings * math.log(max(e.lift, 1.0))


def z_score(e: Evidence) -> float:
    """How many standard deviations the rule's firing count lies above what its (smoothed) background
    rate predicts — a guard against rules that stand out by chance among many candidates."""
    p = (e.background + 1) / (e.background_total + 1)
    expected = e.total_firings * p
    return (e.firings - expected) / math.sqrt(max(expected * (1 - p), 1e-12))


class Selection(NamedTuple):
    """Which rules count as evidence: how strong each must be, and how many of each kind."""

    min_count: int = 2
    """Firings a rule must have."""
    min_lift: float = 2.0
    """Lift a rule must reach."""
    min_z: float = 4.0
    """z-score of its firings over the background rate a rule must reach."""
    max_tokens: int = 3
    """`token` rules kept."""
    max_ngrams: int = 2
    """`ngram` rules kept."""
    max_context: int = 2
    """`context` rules kept."""

    def describe(self) -> str:
        """The thresholds, as an explanation that found nothing states them."""
        return f"lift ≥ {self.min_lift:g}, ≥ {self.min_count} firings, z ≥ {self.min_z:g}"


DEFAULT_SELECTION = Selection()


def select_evidence(candidates: Sequence[Evidence], rules: Selection = DEFAULT_SELECTION) -> list[Evidence]:
    """The strongest rules (firings × log lift) of each kind that fire at least `min_count` times with
    lift ≥ `min_lift` and a z-score ≥ `min_z`; an n-gram only when it is more specific than its last
    token alone."""
    r = rules
    strong = sorted(
        (
            e
            for e in candidates
            if e.firings >= r.min_count and e.lift >= r.min_lift and z_score(e) >= r.min_z
        ),
        key=_strength,
        reverse=True,
    )
    tokens = [e for e in strong if e.kind == "token"][: r.max_tokens]
    token_lift = {e.items[0]: e.lift for e in strong if e.kind == "token"}
    ngrams = [e for e in strong if e.kind == "ngram" and e.lift > 1.5 * token_lift.get(e.items[-1], 0.0)]
    context = [e for e in strong if e.kind == "context"][: r.max_context]
    return tokens + ngrams[: r.max_ngrams] + context


def combined(evidence: Sequence[Evidence]) -> Evidence:
    """Several `token` (or several `context`) rules taken as one, for coverage figures: no two of them
    match the same position, so their counts add up."""
    first = evidence[0]
    fg = sum(e.firings for e in evidence)
    bg = sum(e.background for e in evidence)
    items = tuple(i for e in evidence for i in e.items)
    return _evidence(first.kind, items, fg, first.total_firings, bg, first.background_total)
