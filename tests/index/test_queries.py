"""`Index` queries against the independent encoding (`reference`): context windows, quantiles,
non-activating examples, sentences and documents by max/mean/last, weighted search, token counts,
proxy metrics computed by hand (AUROC by counting pairs), and the terminal shading."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from saescope.errors import ConfigError
from saescope.example import Example
from saescope.index import LatentIndexError
from saescope.index.proxies import parse_proxy, proxy_scores
from saescope.index.reader import Index, read_explanations
from saescope.index.sentences import ends_sentence
from saescope.index.terminal import shade

from .reference import Reference

D_SAE = 48
BEFORE, AFTER = 5, 2


@pytest.fixture(scope="module")
def index(built: Path) -> Index:
    return Index(built)


def activation_at(ref: Reference, latent: int, doc: int, position: int) -> float:
    key = doc * ref.stride + position
    row = np.searchsorted(ref.keys, key)
    return float(ref.dense[row, latent]) if row < len(ref.keys) and ref.keys[row] == key else 0.0


def check_window(index: Index, ref: Reference, latent: int, example: Example) -> None:
    """The example's tokens are its document's around its position, its activations the
    reference's, and its focus is the token at its position."""
    doc, position = example.doc_id, example.position
    ids = ref.docs[doc]
    lo, hi = max(0, position - BEFORE), min(len(ids), position + AFTER + 1)
    assert list(example.tokens) == index.decode(ids[lo:hi])
    assert list(example.activations) == [activation_at(ref, latent, doc, p) for p in range(lo, hi)]
    assert example.focus == position - lo


def test_top_examples_are_the_largest_with_their_windows(index: Index, ref: Reference) -> None:
    for latent in (2, 5, 30):
        column = ref.dense[:, latent]
        order = [i for i in np.lexsort((ref.keys, -column)) if column[i] > 0]
        examples = index.top_examples(latent, 7, BEFORE, AFTER)
        assert [(e.doc_id, e.position, e.activation) for e in examples] == [
            (int(ref.doc_ids[i]), int(ref.positions[i]), float(column[i])) for i in order[:7]
        ]
        for e in examples:
            check_window(index, ref, latent, e)
        beyond = index.top_examples(latent, 150, BEFORE, AFTER)  # more than top.parquet keeps
        assert len(beyond) == min(150, len(order)) and beyond[:7] == examples


def test_quantile_examples_come_from_equal_count_bins(index: Index, ref: Reference) -> None:
    latent = 2
    values = np.sort(ref.dense[:, latent][ref.dense[:, latent] > 0])
    bins = index.quantile_examples(latent, 4, 3, seed=1, before=BEFORE, after=AFTER)
    edges = [(float(b[0]), float(b[-1])) for b in np.array_split(values, 4)]
    assert [(q.quantile, q.low, q.high) for q in bins] == [(i, lo, hi) for i, (lo, hi) in enumerate(edges)]
    for q in bins:
        assert len(q.examples) == 3
        assert [e.activation for e in q.examples] == sorted((e.activation for e in q.examples), reverse=True)
        for e in q.examples:
            assert q.low <= e.activation <= q.high
            assert e.activation == activation_at(ref, latent, e.doc_id, e.position)
            check_window(index, ref, latent, e)
    assert index.quantile_examples(latent, 4, 3, seed=1, before=BEFORE, after=AFTER) == bins


def test_random_examples_are_windows_where_the_latent_never_fires(index: Index, ref: Reference) -> None:
    for latent in (0, 5, 2):
        examples = index.random_examples(latent, 6, seed=0, before=BEFORE, after=AFTER)
        assert examples, latent
        for e in examples:
            assert e.doc_id * ref.stride + e.position in set(ref.keys.tolist())
            assert e.activation == 0 and not any(e.activations)
            check_window(index, ref, latent, e)
        assert len({(e.doc_id, e.position) for e in examples}) == len(examples)


def naive_spans(index: Index, ids: list[int], unit: str) -> list[tuple[int, int, bool]]:
    """(start, end, whether it ends there) of each sentence or document of one model input, by
    walking its tokens: a sentence ends after a token ending in . ! ? or holding a line break, or
    a special token; the last one of an input, cut off by the input's end, does not end there."""
    if unit == "document":
        return [(0, len(ids), True)]
    special = set(index.tokenizer.all_special_ids)
    spans, start = [], 0
    for position, token_id in enumerate(ids):
        ends = token_id in special or ends_sentence(index.decode([token_id])[0])
        if ends or position == len(ids) - 1:
            spans.append((start, position + 1, ends))
            start = position + 1
    return spans


def naive_units(
    index: Index, ref: Reference, unit: str, weights: dict[int, float], agg: str
) -> list[tuple[int, float]]:
    """Every unit's (start key, score) by looping over its tokens; by `last`, only the units whose
    last token ends them and is indexed, and where a latent fires on it."""
    row_of = {int(k): r for r, k in enumerate(ref.keys)}
    scores = {}
    for doc, ids in ref.docs.items():
        for lo, hi, ends in naive_spans(index, ids, unit):
            keys = [doc * ref.stride + p for p in range(lo, hi)]
            rows = [row_of[k] for k in keys if k in row_of]
            if not rows:
                continue
            if agg == "last":
                if not ends or keys[-1] not in row_of:
                    continue
                rows = [row_of[keys[-1]]]
            parts = {lat: [float(ref.dense[r, lat]) for r in rows] for lat in weights}
            if not any(any(v) for v in parts.values()):
                continue
            total = {"max": max, "mean": lambda v: sum(v) / len(v), "last": lambda v: v[-1]}[agg]
            scores[doc * ref.stride + lo] = sum(w * total(parts[lat]) for lat, w in weights.items())
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("latent", [5, 2, 17])
@pytest.mark.parametrize("unit", ["sentence", "document"])
@pytest.mark.parametrize("agg", ["max", "mean", "last"])
def test_sentences_and_documents_are_ranked_as_a_loop_ranks_them(
    index: Index, ref: Reference, latent: int, unit: str, agg: str
) -> None:
    want = naive_units(index, ref, unit, {latent: 1.0}, agg)
    got = index.top_units(latent, 1000, unit, agg)
    assert [(e.doc_id * ref.stride + e.position - e.focus, pytest.approx(e.activation)) for e in got] == [
        (k, pytest.approx(s)) for k, s in want
    ]
    for e, (key, _) in zip(got, want):
        start = key % ref.stride
        ids = ref.docs[e.doc_id]
        assert e.tokens[0] == index.decode([ids[start]])[0]
        assert e.focus == e.position - start and e.focus_token == index.decode([ids[e.position]])[0]
        if agg == "last":  # the focus is the unit's last token, and the latent fires there
            assert e.activations[e.focus] == e.activation > 0
            assert unit == "document" or e.position == start + len(e.tokens) - 1
        if unit == "document":
            assert len(e.tokens) == len(ids)


def test_last_leaves_out_sentences_cut_off_by_their_window(index: Index, ref: Reference) -> None:
    """A sentence running past the end of its window has no last token in it: the window's last
    indexed token there is mid-sentence, and `--agg last` used to score it as the sentence's end."""
    cut = [
        (doc, hi - 1)
        for doc, ids in ref.docs.items()
        for lo, hi, ends in naive_spans(index, ids, "sentence")
        if not ends and doc * ref.stride + hi - 1 in set(ref.keys.tolist())
    ]
    assert cut  # windows of 24 tokens cut many sentences
    fired = [lat for lat in range(D_SAE) for doc, p in cut if activation_at(ref, lat, doc, p) > 0]
    latent = max(set(fired), key=fired.count)
    found = {(e.doc_id, e.position) for e in index.top_units(latent, 1000, "sentence", "last")}
    assert not found & set(cut)  # before: every cut sentence where it fires


def test_search_ranks_by_weighted_latents(index: Index, ref: Reference) -> None:
    weights = {5: 1.0, 2: 0.5, 30: -0.25}
    want = naive_units(index, ref, "document", weights, "max")[:5]
    got = index.search(weights, 5, "document", "max")
    assert [(e.doc_id, pytest.approx(e.activation)) for e in got] == [
        (k // ref.stride, pytest.approx(s)) for k, s in want
    ]
    tokens = index.search({5: 2.0, 2: 1.0}, 4, "token", before=BEFORE, after=AFTER)
    combined = 2 * ref.dense[:, 5] + ref.dense[:, 2]
    order = np.lexsort((ref.keys, -combined))[:4]
    assert [e.activation for e in tokens] == pytest.approx(combined[order].tolist())


def test_token_counts_and_firings(index: Index, ref: Reference) -> None:
    assert index.token_counts() == dict(Counter(ref.token_ids.tolist()))
    for latent in (2, 5):
        fires = ref.dense[:, latent] > 0
        assert index.token_firings(latent) == dict(Counter(ref.token_ids[fires].tolist()))


def naive_auroc(x: np.ndarray, y: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½ P(equal), over all pairs."""
    pos, neg = x[y], x[~y]
    return float(
        ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
        / (len(pos) * len(neg))
    )


def test_proxy_metrics_equal_a_hand_computation(index: Index, ref: Reference) -> None:
    proxy = parse_proxy("regex:^ ?[a-c]")
    texts = index.decode(ref.token_ids.tolist())
    y = np.array([re.search("^ ?[a-c]", t) is not None for t in texts])
    assert 0 < y.sum() < len(y)
    scores = proxy_scores(index.storage, proxy)
    assert [s.latent for s in scores] == list(range(D_SAE))
    for s in scores:
        x = ref.dense[:, s.latent].astype(np.float64)
        fires = x > 0
        assert s.fires == fires.sum()
        assert s.precision == pytest.approx((fires & y).sum() / fires.sum() if fires.any() else 0.0)
        assert s.recall == pytest.approx((fires & y).sum() / y.sum())
        assert s.auroc == pytest.approx(naive_auroc(x, y), abs=1e-12)
        want = np.corrcoef(x, y)[0, 1] if fires.any() else 0.0
        assert s.correlation == pytest.approx(want, abs=1e-9)
    best = index.proxy_scores(proxy, 3, by="correlation")
    assert [b.latent for b in best] == [
        s.latent for s in sorted(scores, key=lambda s: (-s.correlation, s.latent))[:3]
    ]


def test_proxy_histogram_splits_by_match(index: Index, ref: Reference) -> None:
    texts = index.decode(ref.token_ids.tolist())
    y = np.array([t.strip().isdigit() for t in texts])
    h = index.proxy_histogram(5, "digits", bins=4)
    values = ref.dense[:, 5]
    top = values.max()
    bins = np.minimum((values / top * 4).astype(int), 3)
    fires = values > 0
    assert h.matching == np.bincount(bins[fires & y], minlength=4).tolist()
    assert h.other == np.bincount(bins[fires & ~y], minlength=4).tolist()
    assert h.inactive_matching == (y & ~fires).sum()
    assert h.edges == pytest.approx(np.linspace(0, top, 5).tolist())


def test_named_proxies_match_what_they_say() -> None:
    cases = {
        "digits": (" 123", "12a"),
        "dna": ("ACGTTG", "ACGU"),
        "arabic": (" سلام", "سلامa"),
        "cjk": ("中文", "中a"),
        "base64": ("aGVsbG8gd29ybGQ9", "hello"),
        "python-keywords": (" def", "deff"),
        "punctuation": (" .,", "a."),
    }
    for name, (yes, no) in cases.items():
        proxy = parse_proxy(name)
        assert proxy.matches(yes) and not proxy.matches(no), name
    assert parse_proxy("script:CYRILLIC").matches("привет") and not parse_proxy("script:greek").matches("abc")


def test_bad_queries_raise_one_clear_error(index: Index, tmp_path: Path) -> None:
    with pytest.raises(LatentIndexError, match="latent 48 is out of range: this SAE has 48 latents"):
        index.top_examples(48)
    with pytest.raises(ConfigError, match="does not compile"):
        parse_proxy("regex:(")
    with pytest.raises(ConfigError, match="unknown proxy"):
        parse_proxy("klingon")
    with pytest.raises(LatentIndexError, match="unknown unit"):
        index.top_units(1, 3, "paragraph")
    with pytest.raises(LatentIndexError, match="no such folder"):
        Index(tmp_path / "nothing")
    with pytest.raises(LatentIndexError, match=r"no index\.json"):
        Index(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "saescope.index/1", "sae": "x"}')
    with pytest.raises(LatentIndexError, match="incomplete"):
        Index(tmp_path)


def test_explanations_are_read_when_written(tmp_path: Path) -> None:
    assert read_explanations(tmp_path) == {}
    table = pa.table({"latent": [3, 1], "explanation": ["cats", ""]})
    pq.write_table(table, tmp_path / "explanations.parquet")
    assert read_explanations(tmp_path) == {3: "cats"}


def test_shading_marks_active_tokens() -> None:
    tokens, acts = [" the", " cat", "\n", " sat"], [0.0, 2.5, 0.0, 1.0]
    assert shade(tokens, acts) == " the[[ cat]]/2.5↵[[ sat]]/1"
    coloured = shade(tokens, acts, colour=True)
    assert coloured.count("\x1b[48;5;") == 2 and "\x1b[48;5;202m" in coloured and "[[" not in coloured
