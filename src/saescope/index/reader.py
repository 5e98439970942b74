"""`Index`: a latent index opened once, answering questions about latents without SQL.

    index = Index("runs/demo/index")
    index.top_examples(12, n=20)            # [Example]: context windows with per-token activations
    index.quantile_examples(12, 10, 3)      # examples from each activation quantile (delphi)
    index.random_examples(12, 10)           # windows where latent 12 does not fire at all
    index.top_units(12, 10, "sentence", "mean")
    index.search({12: 1.0, 40: 0.5}, 10)    # documents ranked by weighted latents
    index.cooccurring(12), index.neighbours(12), index.logit_effects(12)
    index.stats(), index.stats_of(12), index.token_counts(), index.token_firings(12)

Scans, joins and aggregations (sentences and documents, a latent's firings per token id, proxy
matches, the relation tables) run as SQL through DuckDB, embedded in the process, over the Parquet
files the package docstring lists. Point reads (top examples, a latent's postings inside the
context windows, documents by id) read only the row groups that can hold them (`lookup`): a
latent's postings are one bucket file, sorted, in small row groups. Tokens are decoded one at a
time with the model's tokenizer (`models.load_tokenizer`, no weights, loaded under one lock for
every `Index`): nothing here loads or runs the model. The `*_many` methods (`top_examples_many`,
`cooccurring_many`, …) answer for many latents at once, each table read once for all (`bulk`):
what a dashboard or a list of every latent asks. An `Index` may be shared between threads (queries
are serialised on its connection, reads of one file on that file).

This module knows nothing about how the index was built.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import bulk
from .format import (
    COOCCURRENCE,
    DOCS_DIR,
    EXPLANATIONS,
    LATENTS,
    LOGITS,
    MAP,
    NEIGHBOURS,
    SCORES,
    TOKEN_COUNTS,
    TOKENS_DIR,
    TOP,
    LatentIndexError,
    bucket_file,
    read_header,
)
from .lookup import DocsLookup, SortedFile
from .proxies import Proxy, parse_proxy, proxy_histogram, proxy_scores, rank_by
from .results import (
    Cooccurrence,
    Example,
    LogitEffects,
    Neighbour,
    ProxyHistogram,
    ProxyScore,
    QuantileExamples,
    TokenEffect,
)
from .units import AGGREGATIONS, UNITS, Units, load_units, ranked_units
from .windows import quantile_centres, spans, top_centres, window_examples

POSTINGS_CACHE = 8
"""Latents whose postings stay in memory (a dashboard asks several things of one latent)."""
TOKENIZER_LOCK = threading.Lock()
"""Held while any `Index` loads its tokenizer (see `Index.tokenizer`)."""


def check_unit(unit: str, agg: str) -> None:
    if unit not in UNITS:
        raise LatentIndexError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    if agg not in AGGREGATIONS:
        raise LatentIndexError(f"unknown aggregation {agg!r}; choose from {', '.join(AGGREGATIONS)}")


def sql_path(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


class Index:
    """A latent index opened for queries (see the module docstring)."""

    def __init__(self, path: Path | str, tokenizer: Any = None) -> None:
        self.path = Path(path)
        self.header = read_header(self.path)
        self._db = duckdb.connect()
        self._lock = threading.RLock()
        self._tokenizer = tokenizer
        self._decoded: dict[int, str] = {}
        self._postings: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._stats: pa.Table | None = None
        self._token_files: list[tuple[Path, int]] | None = None
        self._units: dict[str, Units] = {}
        self._buckets: dict[int, SortedFile] = {}
        self._docs: DocsLookup | None = None
        self._sorted: dict[str, SortedFile] = {}
        self._bulk_bucket: tuple[int, dict[int, tuple[np.ndarray, np.ndarray]]] | None = None

    def __repr__(self) -> str:
        h = self.header
        return f"Index({str(self.path)!r}, d_sae={h.d_sae}, tokens={h.tokens}, sae={h.sae!r})"

    # ---------------------------------------------------------------------------------- basics
    @property
    def d_sae(self) -> int:
        return self.header.d_sae

    @property
    def tokens(self) -> int:
        """Tokens indexed."""
        return self.header.tokens

    @property
    def stride(self) -> int:
        return self.header.stride

    def sql(self, query: str, params: Sequence[Any] = ()) -> dict[str, np.ndarray]:
        """Run a query on this index's connection; columns as numpy arrays."""
        with self._lock:
            result: dict[str, np.ndarray] = self._db.execute(query, list(params)).fetchnumpy()
        return result

    def glob(self, folder: str) -> str:
        """SQL literal of all Parquet files of a folder of the index."""
        return sql_path(self.path / folder / "*.parquet")

    def check_latent(self, latent: int) -> int:
        """`latent`, or `LatentIndexError` when it is not a latent of this SAE."""
        if not 0 <= int(latent) < self.d_sae:
            raise LatentIndexError(
                f"latent {latent} is out of range: this SAE has {self.d_sae} latents (0-{self.d_sae - 1})"
            )
        return int(latent)

    def file(self, name: str, what: str) -> Path:
        """A file of the index that must exist (`what` names it in the error)."""
        path = self.path / name
        if not path.is_file():
            raise LatentIndexError(f"{self.path} has no {what} ({name} is missing)")
        return path

    def sorted_file(self, name: str, what: str, keys: Sequence[str]) -> SortedFile:
        """A table of the index sorted by `keys`, its footer read once (`what` names it in the error)."""
        if name not in self._sorted:
            self._sorted[name] = SortedFile(self.file(name, what), keys)
        return self._sorted[name]

    # ------------------------------------------------------------------------------- tokenizer
    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded on first use. Loaded under a lock shared by every `Index`:
        transformers' lazy imports race when several threads load a tokenizer at once (ImportError
        and crashes were seen in the web server)."""
        if self._tokenizer is None:
            with TOKENIZER_LOCK:
                if self._tokenizer is None:
                    from ..models import load_tokenizer

                    self._tokenizer = load_tokenizer(self.header.model)
        return self._tokenizer

    def decode(self, token_ids: Sequence[int]) -> list[str]:
        """Each token decoded on its own."""
        missing = [int(i) for i in dict.fromkeys(token_ids) if int(i) not in self._decoded]
        if missing:
            texts = self.tokenizer.batch_decode([[i] for i in missing])
            self._decoded.update(zip(missing, texts))
        return [self._decoded[int(i)] for i in token_ids]

    # ---------------------------------------------------------------------------------- tables
    def stats(self) -> pa.Table:
        """Per-latent statistics (`latents.parquet`, see `latent_table`)."""
        if self._stats is None:
            self._stats = pq.read_table(self.file(LATENTS, "latent statistics"))
        return self._stats

    def stats_of(self, latent: int) -> dict[str, Any]:
        """One latent's statistics as a dict (columns of `latents.parquet`)."""
        row: dict[str, Any] = self.stats().slice(self.check_latent(latent), 1).to_pylist()[0]
        return row

    def map(self) -> pa.Table:
        """The 2-D map of the decoder directions (`latent`, `x`, `y`, `cluster`)."""
        return pq.read_table(self.file(MAP, "latent map"))

    def token_counts(self) -> dict[int, int]:
        """How often each token id occurs among the indexed tokens (background counts)."""
        table = pq.read_table(self.file(TOKEN_COUNTS, "token counts"))
        return dict(zip(table.column("token_id").to_pylist(), table.column("count").to_pylist()))

    def token_firings(self, latent: int) -> dict[int, int]:
        """How many of the latent's firings fall on each token id."""
        tokens, _ = self.postings(latent)
        if not len(tokens):
            return {}
        with self._lock:
            self._db.register("latent_tokens", pa.table({"token": tokens}))
            try:
                found = self.sql(
                    f"SELECT t.token_id, count(*) AS n FROM read_parquet({self.glob(TOKENS_DIR)}) AS t "
                    "JOIN latent_tokens USING (token) GROUP BY t.token_id"
                )
            finally:
                self._db.unregister("latent_tokens")
        return dict(zip(found["token_id"].tolist(), found["n"].tolist()))

    def explanations(self) -> dict[int, str]:
        """Latent → explanation, when auto-interpretation has written some ({} otherwise)."""
        return read_explanations(self.path)

    def explanation_details(self) -> dict[int, dict[str, Any]]:
        """Latent → its explanation with explainer, model, confidence and scores (see
        `read_explanation_details`)."""
        return read_explanation_details(self.path)

    # -------------------------------------------------------------------------------- postings
    def bucket(self, latent: int) -> SortedFile:
        """The postings file holding `latent` (its footer read once)."""
        bucket = self.check_latent(latent) // self.header.bucket_latents
        if bucket not in self._buckets:
            self._buckets[bucket] = SortedFile(self.path / bucket_file(bucket), ["latent", "token"])
        return self._buckets[bucket]

    def read_postings(self, latent: int, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`latent`'s postings in these row groups of its bucket (ascending token keys)."""
        table = self.bucket(latent).read(groups, ["latent", "token", "activation"])
        mine = table.column("latent").to_numpy() == latent
        keys = table.column("token").to_numpy()[mine].astype(np.int64)
        return keys, table.column("activation").to_numpy()[mine].astype(np.float32)

    def postings(self, latent: int) -> tuple[np.ndarray, np.ndarray]:
        """Every token key where `latent` fires (ascending, int64) and its activation there (float32)."""
        latent = self.check_latent(latent)
        if latent in self._postings:
            self._postings.move_to_end(latent)
            return self._postings[latent]
        entry = self.read_postings(latent, self.bucket(latent).groups(latent))
        self._postings[latent] = entry
        if len(self._postings) > POSTINGS_CACHE:
            self._postings.popitem(last=False)
        return entry

    def postings_in(self, latent: int, ranges: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """`latent`'s postings within token key ranges [lo, hi): only the row groups that can hold
        them are read (a frequent latent's whole list can be millions of postings)."""
        if latent in self._postings:
            return self.postings(latent)
        bucket = self.bucket(latent)
        groups = {int(g) for lo, hi in ranges for g in bucket.groups(latent, (lo, hi - 1))}
        return self.read_postings(latent, np.array(sorted(groups), dtype=np.int64))

    def doc_tokens(self, doc_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The token ids of these model inputs."""
        if self._docs is None:
            self._docs = DocsLookup(sorted((self.path / DOCS_DIR).glob("*.parquet")))
        return self._docs.token_ids(doc_ids)

    # -------------------------------------------------------------------------------- examples
    def windows(
        self, latent: int, centres: Sequence[tuple[int, float]], before: int = 12, after: int = 4
    ) -> list[Example]:
        """Examples around token keys `centres` ((key, activation) pairs), with `before` and `after`
        tokens of context."""
        docs = self.doc_tokens([k // self.stride for k, _ in centres])
        windows = spans(centres, {doc: len(ids) for doc, ids in docs.items()}, self.stride, before, after)
        ranges = [(w.doc * self.stride + w.lo, w.doc * self.stride + w.hi) for w in windows]
        keys, values = self.postings_in(latent, ranges)
        decoded = {doc: self.decode(ids.tolist()) for doc, ids in docs.items()}
        return window_examples(centres, windows, decoded, keys, values, self.stride)

    def top_examples(self, latent: int, n: int = 20, before: int = 12, after: int = 4) -> list[Example]:
        """The latent's `n` largest activations with their context (ties: earlier token first)."""
        latent = self.check_latent(latent)
        kept = int(self.header.settings.get("top_examples", 0))
        if 0 < n <= kept:
            top = self.sorted_file(TOP, "top examples", ["latent", "rank"])
            table = top.read(top.groups(latent), ["latent", "rank", "token", "activation"])
            rows = table.filter(pc.equal(table.column("latent"), latent)).sort_by("rank").slice(0, n)
            centres = list(zip(rows.column("token").to_pylist(), rows.column("activation").to_pylist()))
        else:
            centres = top_centres(*self.postings(latent), n)
        return self.windows(latent, centres, before, after)

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
        drawn = quantile_centres(*self.postings(latent), latent, quantiles, per_quantile, seed)
        return [
            QuantileExamples(g.quantile, g.low, g.high, self.windows(latent, g.centres, before, after))
            for g in drawn
        ]

    # ------------------------------------------------------------------------- many latents at once
    def bulk_bucket(self, bucket: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Every latent's postings in one bucket (latent → keys, activations), read whole; the last
        bucket read stays in memory (one bucket at most)."""
        cached = self._bulk_bucket
        if cached is None or cached[0] != bucket:
            cached = (bucket, bulk.bucket_postings(self, bucket))
            self._bulk_bucket = cached
        return cached[1]

    def checked(self, latents: Sequence[int]) -> list[int]:
        """`latents` as ints, each checked (`check_latent`), in their order without repeats."""
        return list(dict.fromkeys(self.check_latent(k) for k in latents))

    def top_examples_many(
        self, latents: Sequence[int], n: int = 20, before: int = 12, after: int = 4
    ) -> dict[int, list[Example]]:
        """`top_examples` of each of `latents`, each table, bucket and document read once for all
        (see `bulk`); ask a bucket's latents or a few buckets' at a time to bound memory."""
        return bulk.top_examples(self, self.checked(latents), n, before, after)

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
            self, self.checked(latents), quantiles, per_quantile, seed, (before, after)
        )

    def cooccurring_many(self, latents: Sequence[int], n: int = 20) -> dict[int, list[Cooccurrence]]:
        """`cooccurring` of each of `latents`, the table read once for all."""
        return bulk.cooccurring(self, self.checked(latents), n)

    def neighbours_many(self, latents: Sequence[int], n: int = 20) -> dict[int, list[Neighbour]]:
        """`neighbours` of each of `latents`, the table read once for all."""
        return bulk.neighbours(self, self.checked(latents), n)

    def logit_effects_many(self, latents: Sequence[int], n: int = 10) -> dict[int, LogitEffects]:
        """`logit_effects` of each of `latents`, the table read once for all."""
        return bulk.logit_effects(self, self.checked(latents), n)

    def token_files(self) -> list[tuple[Path, int]]:
        """The tokens tables and their row counts (from their Parquet footers)."""
        if self._token_files is None:
            paths = sorted((self.path / TOKENS_DIR).glob("*.parquet"))
            self._token_files = [(p, pq.ParquetFile(p).metadata.num_rows) for p in paths]
        return self._token_files

    def random_tokens(self, n: int, seed: int) -> np.ndarray:
        """`n` indexed token keys drawn uniformly at random (with replacement), ascending."""
        files = self.token_files()
        starts = np.cumsum([0] + [rows for _, rows in files])
        rows = np.sort(np.random.default_rng(seed).integers(0, starts[-1], size=n))
        which = np.searchsorted(starts, rows, side="right") - 1
        keys = []
        for f in np.unique(which):
            column = (
                pq.read_table(files[f][0], columns=["token"], use_threads=False).column("token").to_numpy()
            )
            keys.append(column[rows[which == f] - starts[f]])
        return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)

    def random_examples(
        self, latent: int, n: int = 10, seed: int = 0, before: int = 12, after: int = 4
    ) -> list[Example]:
        """Up to `n` windows around random tokens where `latent` fires nowhere in the window (fewer
        when it fires almost everywhere)."""
        keys, _ = self.postings(latent)
        candidates = np.unique(self.random_tokens(8 * n + 8, seed + int(latent)))
        candidates = np.random.default_rng([seed, int(latent)]).permutation(candidates)
        chosen: list[tuple[int, float]] = []
        for key in candidates.tolist():
            doc, position = divmod(key, self.stride)
            lo, hi = doc * self.stride + max(0, position - before), doc * self.stride + position + after + 1
            a, b = np.searchsorted(keys, [lo, hi])
            if a == b:
                chosen.append((key, 0.0))
            if len(chosen) == n:
                break
        return self.windows(latent, chosen, before, after)

    # ----------------------------------------------------------------------- sentences, documents
    def units(self, unit: str) -> Units:
        """The index's sentences or documents (loaded once)."""
        if unit not in self._units:
            self._units[unit] = load_units(self, unit)
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
        return ranked_units(self, {self.check_latent(latent): 1.0}, n, unit, agg, before, after)

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
        return ranked_units(self, checked, n, unit, agg, before, after)

    # ----------------------------------------------------------------------------------- proxies
    def proxy_scores(self, proxy: str | Proxy, n: int = 20, by: str = "auroc") -> list[ProxyScore]:
        """The `n` latents that best detect `proxy` (a name, `regex:…` or `script:…`, see
        `proxies`) by `by`: auroc, correlation, precision or recall."""
        chosen = parse_proxy(proxy) if isinstance(proxy, str) else proxy
        return rank_by(proxy_scores(self, chosen), by, n)

    def proxy_histogram(self, latent: int, proxy: str | Proxy, bins: int = 20) -> ProxyHistogram:
        """The latent's activation histogram split by whether the token matches `proxy`."""
        chosen = parse_proxy(proxy) if isinstance(proxy, str) else proxy
        return proxy_histogram(self, self.check_latent(latent), chosen, bins)

    # ------------------------------------------------------------------------------- relations
    def cooccurring(self, latent: int, n: int = 20) -> list[Cooccurrence]:
        """The latents firing most often on the same tokens (count, and Jaccard index)."""
        latent = self.check_latent(latent)
        found = self.sql(
            "SELECT other, count FROM read_parquet($1) WHERE latent = $2 ORDER BY count DESC, other LIMIT $3",
            [str(self.file(COOCCURRENCE, "co-occurrence counts")), latent, n],
        )
        counts = self.stats().column("count").to_numpy()
        own = counts[latent]
        return [
            Cooccurrence(int(o), int(c), float(c / max(own + counts[o] - c, 1)))
            for o, c in zip(found["other"].tolist(), found["count"].tolist())
        ]

    def neighbours(self, latent: int, n: int = 20) -> list[Neighbour]:
        """The latents whose decoder directions are closest by cosine."""
        latent = self.check_latent(latent)
        found = self.sql(
            "SELECT other, cosine FROM read_parquet($1) "
            "WHERE latent = $2 ORDER BY cosine DESC, other LIMIT $3",
            [str(self.file(NEIGHBOURS, "decoder neighbours")), latent, n],
        )
        return [
            Neighbour(int(o), float(c)) for o, c in zip(found["other"].tolist(), found["cosine"].tolist())
        ]

    def logit_effects(self, latent: int, n: int = 10) -> LogitEffects:
        """The `n` tokens whose logits the latent's decoder direction raises and lowers most."""
        latent = self.check_latent(latent)
        path = self.file(LOGITS, "logit effects (the model could not be loaded when it was built)")
        found = self.sql(
            "SELECT side, token_id, effect FROM read_parquet($1) "
            "WHERE latent = $2 AND rank < $3 ORDER BY side, rank",
            [str(path), latent, n],
        )
        sides: dict[str, list[TokenEffect]] = {"top": [], "bottom": []}
        ids = found["token_id"].tolist()
        for side, token_id, token, effect in zip(
            found["side"].tolist(), ids, self.decode(ids), found["effect"].tolist()
        ):
            sides[str(side)].append(TokenEffect(int(token_id), token, float(effect)))
        return LogitEffects(sides["top"], sides["bottom"])


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


__all__ = ["Index", "read_explanation_details", "read_explanations"]
