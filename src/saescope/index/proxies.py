"""Proxy analysis (Towards Monosemanticity): which latents detect a property of tokens, and how well.

A proxy says of each token, from its text alone, whether it has a property: a regular expression
(`regex:PATTERN`, searched in the token's decoded text), a Unicode script (`script:NAME`: every
non-space character's Unicode name starts with NAME, e.g. `script:ARABIC`, `script:CJK`; a NAME
that starts no character's name is refused with the nearest ones), or one of the named proxies
below (which match the token's text stripped of surrounding whitespace). A token that is only part
of a character (some bytes of a UTF-8 sequence) decodes to U+FFFD and matches no script.

An empty measurement is an error, not a table: a proxy matching none of the indexed tokens (or
all of them) has no precision, recall or AUROC to rank by. Ranked by precision, a latent must fire
on at least `min_firings` tokens (a latent firing once, on a matching token, has precision 1.0).

For every latent, over all indexed tokens, with x the activation (0 where it does not fire) and y
the proxy (0/1): precision P(y | fires), recall P(fires | y), AUROC of x as a detector of y (ties,
the many zeros included, count one half: Mann-Whitney), and the Pearson correlation of x and y.
All are computed from each bucket's postings with vectorised sums and ranks, never a dense
[tokens × latents] matrix. This module knows nothing about how the index was built.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ..errors import ConfigError
from .format import TOKENS_DIR, LatentIndexError
from .results import ProxyHistogram, ProxyRanking, ProxyScore
from .storage import IndexStorage

METRICS = ("auroc", "correlation", "precision", "recall")
MIN_FIRINGS = 10
"""Ranked by precision, latents firing on fewer indexed tokens are left out."""


class Proxy(NamedTuple):
    """A property of a token's text."""

    name: str
    """As the user wrote it."""
    matches: Callable[[str], bool]
    """Whether a token with this decoded text has the property."""


def in_script(script: str) -> Callable[[str], bool]:
    """Tokens whose non-space characters all belong to `script` (by Unicode character name)."""
    prefix = script.upper()

    def matches(text: str) -> bool:
        chars = [c for c in text if not c.isspace()]
        return bool(chars) and all(unicodedata.name(c, "").startswith(prefix) for c in chars)

    return matches


@functools.cache
def name_words() -> frozenset[str]:
    """The first word of every Unicode character's name (LATIN, ARABIC, CJK, GREEK, DIGIT, …)."""
    names = (unicodedata.name(chr(c), "") for c in range(sys.maxunicode + 1))
    return frozenset(n.split(" ")[0] for n in names if n)


def check_script(spec: str, script: str) -> None:
    """ConfigError unless some Unicode character's name starts with `script` (listing the nearest
    first words of character names)."""
    prefix = script.upper()
    if any(unicodedata.name(chr(c), "").startswith(prefix) for c in range(sys.maxunicode + 1)):
        return
    near = difflib.get_close_matches(prefix, sorted(name_words()), n=5, cutoff=0.6)
    hint = (
        f"nearest: {', '.join(near)}"
        if near
        else "e.g. LATIN, GREEK, CYRILLIC, ARABIC, HEBREW, CJK, HIRAGANA"
    )
    raise ConfigError(f"--proxy {spec!r}: no Unicode character's name starts with {prefix!r} ({hint})")


def whole(pattern: str) -> Callable[[str], bool]:
    """Tokens whose stripped text is entirely `pattern`."""
    compiled = re.compile(pattern)
    return lambda text: compiled.fullmatch(text.strip()) is not None


def is_punctuation(text: str) -> bool:
    chars = text.strip()
    return bool(chars) and all(unicodedata.category(c).startswith("P") for c in chars)


NAMED: dict[str, Callable[[str], bool]] = {
    "arabic": in_script("ARABIC"),
    "hebrew": in_script("HEBREW"),
    "cyrillic": in_script("CYRILLIC"),
    "cjk": in_script("CJK"),
    "dna": whole(r"[ACGT]{3,}"),
    # base64 pieces: only base64 characters, with a digit or +/ and letters of both cases
    "base64": whole(r"(?=.*[0-9+/])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9+/]{4,}={0,2}"),
    "python-keywords": lambda text: text.strip() in keyword.kwlist,
    "digits": whole(r"[0-9]+"),
    "punctuation": is_punctuation,
}
"""The named proxies `--proxy` accepts (besides `regex:` and `script:`)."""


def parse_proxy(spec: str) -> Proxy:
    """A proxy from its name, `regex:PATTERN` or `script:NAME`; ConfigError naming what is wrong."""
    kind, _, body = spec.partition(":")
    if kind == "regex" and body:
        try:
            compiled = re.compile(body)
        except re.error as e:
            raise ConfigError(f"--proxy {spec!r}: the regular expression does not compile ({e})") from None
        return Proxy(spec, lambda text: compiled.search(text) is not None)
    if kind == "script" and body.strip():
        check_script(spec, body.strip())
        return Proxy(spec, in_script(body.strip()))
    if spec in NAMED:
        return Proxy(spec, NAMED[spec])
    near = difflib.get_close_matches(spec, sorted(NAMED), n=3)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise ConfigError(
        f"unknown proxy {spec!r}; {hint}use regex:PATTERN, script:NAME or one of {', '.join(sorted(NAMED))}"
    )


def matching_tokens(storage: IndexStorage, proxy: Proxy) -> np.ndarray:
    """Token keys (ascending) of the indexed tokens that match `proxy`; `LatentIndexError` when
    none or all of them do (no detector can be measured against it)."""
    counts = storage.token_counts()
    ids = list(counts)
    matched = [i for i, text in zip(ids, storage.decode(ids)) if proxy.matches(text)]
    searched = f"{storage.tokens:,} indexed tokens ({len(ids):,} distinct token ids searched)"
    if not matched:
        raise LatentIndexError(f"proxy {proxy.name!r} matches none of the {searched}: nothing to score")
    if len(matched) == len(ids):
        raise LatentIndexError(
            f"proxy {proxy.name!r} matches every one of the {searched}: no token to tell it from"
        )
    found = storage.sql_with(
        "matched_ids",
        pa.table({"token_id": pa.array(matched, pa.int32())}),
        f"SELECT t.token FROM read_parquet({storage.glob(TOKENS_DIR)}) AS t "
        "JOIN matched_ids USING (token_id) ORDER BY t.token",
    )
    return found["token"].astype(np.int64)


def is_in(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Whether each of `keys` is in `sorted_keys`."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    where = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[where] == keys


def midranks(latent: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1-based rank of each entry among its latent's entries (sorted by latent, then value), ties
    sharing their mean rank."""
    n = len(latent)
    if n == 0:
        return np.zeros(0)
    idx = np.arange(n)
    group_start = np.maximum.accumulate(np.where(np.r_[True, latent[1:] != latent[:-1]], idx, 0))
    new_run = np.r_[True, (latent[1:] != latent[:-1]) | (values[1:] != values[:-1])]
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0))
    run_end = np.minimum.accumulate(np.where(np.r_[new_run[1:], True], idx, n - 1)[::-1])[::-1]
    return (run_start + run_end) / 2 - group_start + 1


def bucket_sums(latent: np.ndarray, x: np.ndarray, y: np.ndarray, lo: int, n: int) -> dict[str, np.ndarray]:
    """Per latent of [lo, lo + n): fires, true positives, Σx, Σx², Σxy, and the positives' rank sum
    among its active entries (entries in any order)."""
    order = np.lexsort((x, latent))
    latent, x, y = latent[order], x[order].astype(np.float64), y[order].astype(np.float64)
    rel = latent - lo

    def total(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(rel, weights=weights, minlength=n)

    return {
        "fires": total(None),
        "tp": total(y),
        "sx": total(x),
        "sxx": total(x * x),
        "sxy": total(x * y),
        "rank_pos": total(midranks(latent, x) * y),
    }


def scores_from_sums(s: dict[str, np.ndarray], positives: int, tokens: int) -> dict[str, np.ndarray]:
    """Precision, recall, AUROC and correlation from `bucket_sums` (see the module docstring)."""
    fires, tp = s["fires"], s["tp"]
    negatives = tokens - positives
    precision = np.divide(tp, fires, out=np.zeros_like(tp), where=fires > 0)
    recall = tp / positives if positives else np.zeros_like(tp)
    fp = fires - tp
    u_active = s["rank_pos"] - tp * (tp + 1) / 2
    u = (positives - tp) * 0.5 * (negatives - fp) + tp * (negatives - fp) + u_active
    pairs = positives * negatives
    auroc = u / pairs if pairs else np.full_like(tp, 0.5)
    mean_x, mean_y = s["sx"] / tokens, positives / tokens
    cov = s["sxy"] / tokens - mean_x * mean_y
    spread = np.sqrt(np.maximum(s["sxx"] / tokens - mean_x**2, 0) * mean_y * (1 - mean_y))
    correlation = np.divide(cov, spread, out=np.zeros_like(cov), where=spread > 0)
    return {"precision": precision, "recall": recall, "auroc": auroc, "correlation": correlation}


def scores_of(storage: IndexStorage, positives: np.ndarray) -> list[ProxyScore]:
    """Every latent's scores against the matching token keys `positives`, in latent order."""
    header = storage.header
    out: list[ProxyScore] = []
    for bucket in range(header.buckets):
        lo = bucket * header.bucket_latents
        n = min(header.bucket_latents, header.d_sae - lo)
        latent, keys, x = storage.read_bucket(bucket)
        sums = bucket_sums(latent, x, is_in(keys, positives), lo, n)
        scores = scores_from_sums(sums, len(positives), storage.tokens)
        out += [
            ProxyScore(
                lo + i,
                float(scores["precision"][i]),
                float(scores["recall"][i]),
                float(scores["auroc"][i]),
                float(scores["correlation"][i]),
                int(sums["fires"][i]),
            )
            for i in range(n)
        ]
    return out


def proxy_scores(storage: IndexStorage, proxy: Proxy) -> list[ProxyScore]:
    """Every latent's scores for `proxy`, in latent order (an error when it matches no token)."""
    return scores_of(storage, matching_tokens(storage, proxy))


def rank_by(
    scores: list[ProxyScore], metric: str, n: int, min_firings: int = MIN_FIRINGS
) -> list[ProxyScore]:
    """The `n` best latents by `metric` (ties: lower latent first); by precision, only those firing
    on at least `min_firings` tokens."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if metric == "precision":
        scores = [s for s in scores if s.fires >= min_firings]
    return sorted(scores, key=lambda s: (-getattr(s, metric), s.latent))[:n]


def proxy_ranking(
    storage: IndexStorage, proxy: Proxy, by: str, n: int, min_firings: int = MIN_FIRINGS
) -> ProxyRanking:
    """The `n` latents that best detect `proxy` by `by`, with the tokens that was measured on."""
    if min_firings < 1:
        raise ConfigError(f"--min-firings must be at least 1, got {min_firings}")
    positives = matching_tokens(storage, proxy)
    ranked = rank_by(scores_of(storage, positives), by, n, min_firings)
    return ProxyRanking(proxy.name, by, min_firings, storage.tokens, len(positives), ranked)


def proxy_histogram(storage: IndexStorage, latent: int, proxy: Proxy, bins: int = 20) -> ProxyHistogram:
    """The latent's activations where it fires, binned, split by proxy match."""
    keys, values = storage.postings(latent)
    positives = matching_tokens(storage, proxy)
    y = is_in(keys, positives)
    top = float(values.max()) if len(values) else 1.0
    edges = np.linspace(0.0, top, bins + 1)
    scaled = values / top * bins if top > 0 else np.zeros(len(values))
    which = np.minimum(scaled.astype(np.int64), bins - 1)
    matching = np.bincount(which[y], minlength=bins)
    other = np.bincount(which[~y], minlength=bins)
    inactive = int(len(positives) - y.sum())
    return ProxyHistogram(
        edges.tolist(), matching.tolist(), other.tolist(), inactive, len(positives), storage.tokens
    )


__all__ = [
    "METRICS",
    "MIN_FIRINGS",
    "NAMED",
    "Proxy",
    "parse_proxy",
    "proxy_histogram",
    "proxy_ranking",
    "proxy_scores",
    "rank_by",
]
