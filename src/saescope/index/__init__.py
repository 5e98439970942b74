"""The latent index: every active latent of an SAE on every token of held-out text, and queries on it.

    saescope index runs/demo/sae --tokens 50000            # → runs/demo/index
    saescope query runs/demo/index --latent 12 --top 20
    index = Index("runs/demo/index"); index.top_examples(12, 20)

Built by `build_index` (`saescope index`, `build.py`) from text through the model or from an
activation store with no model forward. Read through `Index` (`reader.py`), the facade of the
questions, over `IndexStorage` (`storage.py`: the files opened once — DuckDB, embedded, for scans,
point reads of sorted Parquet files through `lookup.py`, postings, documents, tokenizer); the
questions live in `examples.py` (one latent's examples, cut and drawn by `windows.py`), `units.py`
(sentences, documents, search), `proxies.py` and `bulk.py` (relations; many latents at once).
Only this package and `query.py` (`saescope query`) import `reader.py`.
An index is a folder; any engine that reads Parquet reads it without saescope:

    index.json              format "saescope.index/1"; `sae` (its folder), `sae_sha256` (weights
                            fingerprint), `cfg` (its cfg.json), `model`, `hookpoint`, `d_sae`,
                            `tokens`, `docs`, `nonzeros`, `source` (text or store), `corpus` and
                            `start` (first held-out doc) or `store`, `stride`, `values`,
                            `bucket_latents`, build `settings`, `summary` (dead and dense counts,
                            which co-occurring partners are kept, …), `complete`
    postings/bucket-{b}.parquet   every active (token, latent): `latent` int32, `token` int64 (token
                            key = doc_id * stride + position), `activation` float16 (or float32),
                            sorted by (latent, token); bucket b holds latents [b·n, (b+1)·n)
    tokens/part-*.parquet   every indexed token: `token` key, `doc_id` int64, `position` int32,
                            `token_id` int32, `sentence` (key of its sentence's first token)
    docs/part-*.parquet     the model inputs: `doc_id`, `token_ids`, `text`, `source`
                            (`saescope.store.docs`, the activation store's docs table)
    latents.parquet         per-latent statistics (`latent_table.py`): `latent`, `count`, `frequency`,
                            `max`, `mean` (when active), `q10`…`q99`, `histogram`, `dead`, `dense`
    top.parquet             each latent's top activations: `latent`, `rank`, `token`, `activation`
    cooccurrence.parquet    each latent's best partners by Jaccard and by lift (`cooccurrence.py`):
                            `latent`, `other`, `count` (tokens both fire on)
    neighbours.parquet      nearest decoder directions: `latent`, `other`, `cosine`
    logits.parquet          logit effects (`saescope.readout`: a logit per unit of a residual stream
                            equal to the decoder direction): `latent`, `side` (top/bottom), `rank`,
                            `token_id`, `effect`
    map.parquet             2-D map of the decoder directions: `latent`, `x`, `y`, `cluster`
    token_counts.parquet    background token counts: `token_id`, `count`
    explanations.parquet    written by `saescope interpret`: `latent`, `explanation`, `best`, …
    scores.parquet          and each explanation's scores (schemas in `saescope.interpret.tables`);
                            read by `read_explanations` and `read_explanation_details`

While a build runs, `progress/`, `chunks/` and `parts/` hold its committed work (resumable); they
are removed when `index.json` says complete.

Other stages read an index through `Index` and `read_latent_table` only (no SQL). This package
knows nothing about training, capture, interpretation, steering or the web server.
"""

from .format import FORMAT, IndexHeader, LatentIndexError, read_header
from .latent_table import QUANTILES, read_latent_table
from .reader import Index, read_explanation_details, read_explanations
from .results import (
    Cooccurrence,
    LogitEffects,
    Neighbour,
    ProxyHistogram,
    ProxyRanking,
    ProxyScore,
    QuantileExamples,
    TokenEffect,
)
from .storage import IndexStorage

__all__ = [
    "FORMAT",
    "QUANTILES",
    "Cooccurrence",
    "Index",
    "IndexHeader",
    "IndexStorage",
    "LatentIndexError",
    "LogitEffects",
    "Neighbour",
    "ProxyHistogram",
    "ProxyRanking",
    "ProxyScore",
    "QuantileExamples",
    "TokenEffect",
    "read_explanation_details",
    "read_explanations",
    "read_header",
    "read_latent_table",
]
