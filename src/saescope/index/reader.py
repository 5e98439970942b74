"""`Index`: a latent index opened once, answering questions about latents without SQL.

    index = Index("runs/demo/index")
    index.top_examples(12, n=20)            # [Example]: context windows with per-token activations
    index.quantile_examples(12, 10, 3)      # examples from each activation quantile (delphi)
    index.random_examples(12, 10)           # windows where latent 12 does not fire at all
    index.top_units(12, 10, "sentence", "mean")
    index.search({12: 1.0, 40: 0.5}, 10)    # documents ranked by weighted latents
    index.cooccurring(12), index.neighbours(12), index.logit_effects(12)
    index.stats(), index.stats_of(12), index.token_counts(), index.token_firings(12)

`Index` is the facade of the questions; each is answered by the module that owns it, over the
index's files opened once in an `IndexStorage` (`index.storage`: header, SQL, postings, documents,
tokenizer): one latent's examples (`examples`), sentences, documents and search (`units`), proxy
analysis (`proxies`), and the relations and the `*_many` methods (`bulk`: each table read once for
many latents, what a dashboard or a list of every latent asks; the one-latent relations are the
same functions asked for one latent). Nothing here loads or runs the model. An `Index` may be
shared between threads (see `storage`).

This module knows nothing about how the index was built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..example import Example
from . import bulk, examples
from .format import EXPLANATIONS, MAP, SCORES, TOKENS_DIR, IndexHeader, LatentIndexError
from .proxies import MIN_FIRINGS, Proxy, parse_proxy, proxy_histogram, proxy_ranking
from .results import (
    Cooccurrence,
    LogitEffects,
    Neighbour,
    ProxyHistogram,
    ProxyRanking,
    ProxyScore,
    QuantileExamples,
)
from .storage import TOKENIZER_LOCK, IndexStorage, Postings
from .units import AGGREGATIONS, UNITS, Units, load_units, ranked_units


def check_unit(unit: str, agg: str) -> None:
    if unit not in UNITS:
        raise LatentIndexError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    if agg not in AGGREGATIONS:
        raise LatentIndexError(f"unknown aggregation {agg!r}; choose from {', '.join(AGGREGATIONS)}")


class Index:
    """A latent index opened for queries (see the module docstring)."""

    def __init__(self, path: Path | str, tokenizer: Any = None) -> None:
        self.storage = IndexStorage(path, tokenizer)
        self._units: dict[str, Units] = {}

    def __repr__(self) -> str:
        h = self.header
        return f"Index({str(self.path)!r}, d_sae={h.d_sae}, tokens={h.tokens}, sae={h.sae!r})"

    # ------------------------------------------------------------------- what the storage knows
    @property
    def path(self) -> Path:
        return self.storage.path

    @property
    def header(self) -> IndexHeader:
        """`index.json`."""
        return self.storage.header

    @property
    def d_sae(self) -> int:
        return self.storage.d_sae

    @property
    def tokens(self) -> int:
        """Tokens indexed."""
        return self.storage.tokens

    @property
    def stride(self) -> int:
        return self.storage.stride

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded on first use (`IndexStorage.tokenizer`)."""
        return self.storage.tokenizer

    def decode(self, token_ids: Sequence[int]) -> list[str]:
        """Each token decoded on its own."""
        return self.storage.decode(token_ids)

    def check_latent(self, latent: int) -> int:
        """`latent`, or `LatentIndexError` when it is not a latent of this SAE."""
        return self.storage.check_latent(latent)

    def checked(self, latents: Sequence[int]) -> list[int]:
        """`latents` as ints, each checked, in their order without repeats."""
        return self.storage.checked(latents)

    def stats(self) -> pa.Table:
        """Per-latent statistics (`latents.parquet`, see `latent_table`)."""
        return self.storage.stats()

    def postings(self, latent: int) -> Postings:
        """Every token key where `latent` fires (ascending, int64) and its activation there (float32)."""
        return self.storage.postings(latent)

    def doc_tokens(self, doc_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The token ids of these model inputs."""
        return self.storage.doc_tokens(doc_ids)

    def token_counts(self) -> dict[int, int]:
        """How often each token id occurs among the indexed tokens (background counts)."""
        return self.storage.token_counts()

    # ---------------------------------------------------------------------------------- tables
    def stats_of(self, latent: int) -> dict[str, Any]:
        """One latent's statistics as a dict (columns of `latents.parquet`)."""
        row: dict[str, Any] = self.stats().slice(self.check_latent(latent), 1).to_pylist()[0]
        return row

    def map(self) -> pa.Table:
        """The 2-D map of the decoder directions (`latent`, `x`, `y`, `cluster`)."""
        if self.header.summary.get("map") == "none":
            raise LatentIndexError(f"{self.path} has no latent map: it was built with --map none")
        return pq.read_table(self.storage.file(MAP, "latent map"))

    def token_firings(self, latent: int) -> dict[int, int]:
        """How many of the latent's firings fall on each token id."""
        tokens, _ = self.postings(latent)
        if not len(tokens):
            return {}
        found = self.storage.sql_with(
            "latent_tokens",
            pa.table({"token": tokens}),
            f"SELECT t.token_id, count(*) AS n FROM read_parquet({self.storage.glob(TOKENS_DIR)}) AS t "
            "JOIN latent_tokens USING (token) GROUP BY t.token_id",
        )
        return dict(zip(found["token_id"].tolist(), found["n"].tolist()))

    def explanations(self) -> dict[int, str]:
        """Latent → explanation, when auto-interpretation has written some ({} otherwise)."""
        return read_explanations(self.path)

    def explanation_details(self) -> dict[int, dict[str, Any]]:
        """Latent → its explanation with explainer, model, confidence and scores (see
        `read_explanation_details`)."""
        return read_explanation_details(self.path)

    # -------------------------------------------------------------------------------- examples
    def windows(
        self, latent: int, centres: Sequence[tuple[int, float]], before: int = 12, after: int = 4
    ) -> list[Example]:
        """Examples around token keys `centres` ((key, activation) pairs), with `before` and `after`
        tokens of context."""
        return examples.examples_around(self.storage, self.check_latent(latent), centres, before, after)

    def top_examples(self, latent: int, n: int = 20, before: int = 12, after: int = 4) -> list[Example]:
        """The latent's `n` largest activations with their context (ties: earlier token first)."""
        return examples.top_examples(self.storage, latent, n, before, after)

    def quantile_examples(
        self,
        latent: int,
        quantiles: int = 10,
        per_quantile: int = 3,
        seed: int = 0,
        before: int = 12,
        after: int = 4,
    ) -> list[QuantileExamples]:
        """`per_quantile` random examples from each of `quantiles` equal-count bins of the latent's
        activations (fewer bins when it fires fewer times)."""
        return examples.quantile_examples(
            self.storage, latent, quantiles, per_quantile, seed, (before, after)
        )

    def random_examples(
        self, latent: int, n: int = 10, seed: int = 0, before: int = 12, after: int = 4
    ) -> list[Example]:
        """Up to `n` windows around random tokens where `latent` fires nowhere in the window (fewer
        when it fires almost everywhere)."""
        return examples.random_examples(self.storage, latent, n, seed, before, after)

    # ------------------------------------------------------------------------- many latents at once
    def top_examples_many(
        self, latents: Sequence[int], n: int = 20, before: int = 12, after: int = 4
    ) -> dict[int, list[Example]]:
        """`top_examples` of each of `latents`, each table, bucket and document read once for all
        (see `bulk`); ask a bucket's latents or a few buckets' at a time to bound memory."""
        return bulk.top_examples(self.storage, self.checked(latents), n, before, after)

    def quantile_examples_many(
        self,
        latents: Sequence[int],
        quantiles: int = 10,
        per_quantile: int = 3,
        seed: int = 0,
        before: int = 12,
        after: int = 4,
    ) -> dict[int, list[QuantileExamples]]:
        """`quantile_examples` of each of `latents`, read as `top_examples_many` does."""
        return bulk.quantile_examples(
            self.storage, self.checked(latents), quantiles, per_quantile, seed, (before, after)
        )

    def cooccurring_many(
        self, latents: Sequence[int], n: int = 20, by: str = "jaccard"
    ) -> dict[int, list[Cooccurrence]]:
        """`cooccurring` of each of `latents`, the table read once for all."""
        return bulk.cooccurring(self.storage, self.checked(latents), n, by)

    def neighbours_many(self, latents: Sequence[int], n: int = 20) -> dict[int, list[Neighbour]]:
        """`neighbours` of each of `latents`, the table read once for all."""
        return bulk.neighbours(self.storage, self.checked(latents), n)

    def logit_effects_many(self, latents: Sequence[int], n: int = 10) -> dict[int, LogitEffects]:
        """`logit_effects` of each of `latents`, the table read once for all."""
        return bulk.logit_effects(self.storage, self.checked(latents), n)

    # ----------------------------------------------------------------------- sentences, documents
    def units(self, unit: str) -> Units:
        """The index's sentences or documents (loaded once)."""
        if unit not in self._units:
            self._units[unit] = load_units(self.storage, unit)
        return self._units[unit]

    def top_units(
        self,
        latent: int,
        n: int = 20,
        unit: str = "sentence",
        agg: str = "max",
        before: int = 12,
        after: int = 4,
    ) -> list[Example]:
        """The `n` tokens, sentences or documents where `latent` scores highest by `agg` (max, mean,
        last; see `units`). Tokens come with `before`/`after` context, sentences and documents whole."""
        check_unit(unit, agg)
        if unit == "token":
            return self.top_examples(latent, n, before, after)
        return self.search({latent: 1.0}, n, unit, agg, before, after)

    def search(
        self,
        weights: Mapping[int, float],
        n: int = 20,
        unit: str = "document",
        agg: str = "max",
        before: int = 12,
        after: int = 4,
    ) -> list[Example]:
        """Units ranked by Σ weight · score of the given latents (search by feature activations);
        each example's `activations` hold Σ weight · activation per token."""
        check_unit(unit, agg)
        if not weights:
            raise LatentIndexError("search needs at least one latent")
        checked = {self.check_latent(latent): float(w) for latent, w in weights.items()}
        units = None if unit == "token" else self.units(unit)
        return ranked_units(self.storage, unit, units, checked, n, agg, (before, after))

    # ----------------------------------------------------------------------------------- proxies
    def proxy_ranking(
        self, proxy: str | Proxy, n: int = 20, by: str = "auroc", min_firings: int = MIN_FIRINGS
    ) -> ProxyRanking:
        """The `n` latents that best detect `proxy` (a name, `regex:…` or `script:…`, see
        `proxies`) by `by` (auroc, correlation, precision or recall; by precision, among latents
        firing on at least `min_firings` tokens), with the tokens that was measured on."""
        chosen = parse_proxy(proxy) if isinstance(proxy, str) else proxy
        return proxy_ranking(self.storage, chosen, by, n, min_firings)

    def proxy_scores(
        self, proxy: str | Proxy, n: int = 20, by: str = "auroc", min_firings: int = MIN_FIRINGS
    ) -> list[ProxyScore]:
        """The latents of `proxy_ranking`."""
        return self.proxy_ranking(proxy, n, by, min_firings).latents

    def proxy_histogram(self, latent: int, proxy: str | Proxy, bins: int = 20) -> ProxyHistogram:
        """The latent's activation histogram split by whether the token matches `proxy`."""
        chosen = parse_proxy(proxy) if isinstance(proxy, str) else proxy
        return proxy_histogram(self.storage, self.check_latent(latent), chosen, bins)

    # ------------------------------------------------------------------------------- relations
    def cooccurring(self, latent: int, n: int = 20, by: str = "jaccard") -> list[Cooccurrence]:
        """The `n` latents firing most with this one on the same tokens, by Jaccard index or lift
        (see `cooccurrence`; pairs sharing fewer tokens than the index kept are left out)."""
        return bulk.cooccurring(self.storage, [self.check_latent(latent)], n, by)[int(latent)]

    def neighbours(self, latent: int, n: int = 20) -> list[Neighbour]:
        """The latents whose decoder directions are closest by cosine."""
        return bulk.neighbours(self.storage, [self.check_latent(latent)], n)[int(latent)]

    def logit_effects(self, latent: int, n: int = 10) -> LogitEffects:
        """The `n` tokens whose logits the latent's decoder direction raises and lowers most
        (`results.LOGIT_UNIT`)."""
        return bulk.logit_effects(self.storage, [self.check_latent(latent)], n)[int(latent)]


def read_explanations(index_dir: Path | str) -> dict[int, str]:
    """Latent → explanation from an index's `explanations.parquet` ({} when it has none): the row
    `saescope interpret` marks `best` for each latent (`saescope.interpret.tables`)."""
    path = Path(index_dir) / EXPLANATIONS
    if not path.is_file():
        return {}
    best = [("best", "=", True)] if "best" in pq.read_schema(path).names else None
    table = pq.read_table(path, columns=["latent", "explanation"], filters=best)
    return {
        int(k): str(v)
        for k, v in zip(table.column("latent").to_pylist(), table.column("explanation").to_pylist())
        if v
    }


def read_explanation_details(index_dir: Path | str) -> dict[int, dict[str, Any]]:
    """Latent → the columns of its `best` row of `explanations.parquet` (`explanation`, `explainer`,
    `model`, `confidence`, `headline`, `headline_value`, …) with `scores`: that explanation's rows of
    `scores.parquet` (`scorer`, `metric`, `value`, `ci_low`, `ci_high`, `baseline`, …), its headline
    first. Schemas in `saescope.interpret.tables`; {} when the index holds no explanations."""
    folder = Path(index_dir)
    path = folder / EXPLANATIONS
    if not path.is_file() or "best" not in pq.read_schema(path).names:
        return {}
    found = {
        int(r["latent"]): {**r, "scores": []}
        for r in pq.read_table(path, filters=[("best", "=", True)]).to_pylist()
    }
    if (folder / SCORES).is_file():
        for s in pq.read_table(folder / SCORES).to_pylist():
            row = found.get(int(s["latent"]))
            if row is not None and all(s[k] == row[k] for k in ("explainer", "model", "prompt_version")):
                row["scores"].append(s)
    for row in found.values():
        head = row.get("headline")
        row["scores"].sort(key=lambda s: f"{s['scorer']}/{s['metric']}" != head)
    return found


__all__ = ["TOKENIZER_LOCK", "Index", "read_explanation_details", "read_explanations"]
