"""What the server knows about its run and what it can compute, without HTTP: the run's parts, its
latent index, its explanations, the model worker and the limits.

Index queries are plain (blocking) calls that the routes run in FastAPI's thread pool, each
request on an `Index` instance of its own for the time of its queries (`readers`); model work
goes through the single `ModelWorker` thread. The list of latents is built once, in the
background after start, because it reads every latent's top tokens; until it is ready the list
shows statistics without them.

This module knows nothing about HTTP or HTML.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any, NamedTuple

from ..bound import BoundSAE, TextCodes, bind_sae, encode_text
from ..config import ModelSettings
from ..config.serve import ServeConfig
from ..dashboard import (
    PageSettings,
    example_view,
    explanation_views,
    latent_view,
    quantile_group,
    stats_view,
    top_tokens,
)
from ..errors import SaescopeError
from ..index.format import LatentIndexError
from ..index.reader import TOKENIZER_LOCK, Index
from ..index.results import Example
from ..render import ExplanationView, LatentRow, LatentView, QuantileGroup, Related, TokenExample
from ..steer import FiringStats, firing_stats
from ..steer.texts import encode
from .limits import Limits, check_chars, check_count
from .readers import IndexReaders, default_readers
from .run import RunParts, find_run_parts
from .worker import ModelWorker

log = logging.getLogger(__name__)

INSPECT_TOP = 8
"""Latents listed per token in the text inspector."""


class TokenLatents(NamedTuple):
    """One token of an inspected text with its most active latents."""

    position: int
    """Its index in the text's tokens."""
    token: str
    """The token, decoded."""
    latents: list[tuple[int, float, str]]
    """(latent, activation, explanation), largest activation first."""


class Inspection(NamedTuple):
    """A text seen through the SAE."""

    tokens: list[TokenLatents]
    """Every token with its top latents."""
    latent: int | None
    """The latent the tokens are shaded by (None: none fires)."""
    activations: list[float]
    """That latent's activation on each token."""
    scale: float
    """The activation a full shade stands for (the latent's maximum in the index, else in the text)."""

    def to_json(self) -> dict[str, Any]:
        """The index's "latents on a text" shape, plus the shading latent."""
        return {
            "tokens": [
                {
                    "position": t.position,
                    "token": t.token,
                    "latents": [{"latent": i, "activation": a, "explanation": e} for i, a, e in t.latents],
                }
                for t in self.tokens
            ],
            "latent": self.latent,
            "activations": self.activations,
            "scale": self.scale,
        }


def model_settings(cfg: ServeConfig) -> ModelSettings:
    """Device, dtype and revision of the serve config (the model itself comes from the SAE)."""
    return ModelSettings(
        revision=cfg.revision, model_dtype=cfg.model_dtype, device=cfg.device, device_map=cfg.device_map
    )


class RunContext:
    """Everything the routes use (see the module docstring)."""

    def __init__(self, cfg: ServeConfig, parts: RunParts | None = None) -> None:
        self.cfg = cfg
        self.parts = parts or find_run_parts(cfg.run)
        self.limits = Limits.of(cfg)
        self.index = Index(self.parts.index_dir) if self.parts.index_dir is not None else None
        self.explanations: dict[int, ExplanationView] = explanation_views(self.index) if self.index else {}
        self.worker = ModelWorker(self._bind, cfg.queue)
        self._rows: list[LatentRow] | None = None
        self._rows_ready = threading.Event()
        self._stats: FiringStats | None = None
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._readers: IndexReaders | None = None

    # ----- the run ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The run's folder name."""
        return self.parts.root.resolve().name

    @property
    def d_sae(self) -> int:
        """Latents of the SAE (0 when the run has neither SAE nor index)."""
        if self.index is not None:
            return self.index.d_sae
        return int((self.parts.sae_cfg or {}).get("d_sae", 0))

    def _bind(self) -> BoundSAE:
        if self.parts.sae is None:
            raise SaescopeError(f"{self.parts.root} has no SAE (sae/cfg.json): nothing to run")
        import torch

        torch.set_num_threads(self.cfg.threads)
        return bind_sae(self.parts.sae, self.cfg.model or None, self.cfg.force, model_settings(self.cfg))

    def start(self) -> None:
        """Background work at server start: load the model, build the list of latents.

        Tokenizers load under `saescope.index.reader.TOKENIZER_LOCK` (transformers' lazy imports
        race when several threads load one at once); the model worker's thread loads transformers
        on its own, so it is imported here first, on one thread."""
        if self.index is not None:
            self._readers = IndexReaders(self.index, default_readers())
        from transformers import AutoTokenizer  # noqa: F401  (before the worker's thread starts)

        if self.parts.sae is not None:
            self.worker.warm()
        threading.Thread(target=self._background, name="saescope-start", daemon=True).start()

    def _background(self) -> None:
        if self.parts.sae is not None:
            try:
                self.tokenizer()
            except SaescopeError as e:
                log.warning("cannot load the tokenizer: %s", e)
        self._build_rows()

    def close(self) -> None:
        """Stop the model worker."""
        self.worker.close()

    # ----- latents from the index -------------------------------------------------------
    def require_index(self) -> Index:
        """The index (for its header, statistics and map), or an error saying how to make one."""
        if self.index is None:
            raise LatentIndexError(
                f"{self.parts.root} has no latent index: run saescope index on its SAE to browse latents"
            )
        return self.index

    @contextmanager
    def reader(self) -> Iterator[Index]:
        """An index instance for one request's queries (see `readers`)."""
        index = self.require_index()
        if self._readers is None:  # before start(): the one instance
            yield index
            return
        with self._readers.borrow() as borrowed:
            yield borrowed

    def check_latent(self, latent: int) -> int:
        """`latent` when it is a latent of the run's SAE."""
        if self.d_sae == 0:
            raise LatentIndexError(f"{self.parts.root} has neither an SAE nor a latent index: no latents")
        if not 0 <= latent < self.d_sae:
            raise LatentIndexError(
                f"latent {latent} is out of range: this SAE has {self.d_sae} latents (0-{self.d_sae - 1})"
            )
        return latent

    def view(self, latent: int, settings: PageSettings | None = None) -> LatentView:
        """A latent's page."""
        latent = self.check_latent(latent)
        with self.reader() as index:
            return latent_view(index, latent, settings or PageSettings(), self.explanations)

    def examples(
        self, latent: int, offset: int, count: int, before: int = 12, after: int = 4
    ) -> list[TokenExample]:
        """Top examples `offset` … `offset + count` of a latent."""
        check_count(self.limits, "max_examples", offset + count, "offset + count")
        latent = self.check_latent(latent)
        with self.reader() as index:
            found = index.top_examples(latent, offset + count, before, after)
        return [example_view(e, before) for e in found[offset:]]

    def quantile(self, latent: int, which: int, of: int, n: int = 5) -> QuantileGroup:
        """Examples from quantile `which` (1 = lowest) of `of` of a latent's activations."""
        check_count(self.limits, "max_examples", n, "examples per quantile")
        if not 1 <= which <= of:
            raise SaescopeError(f"quantile {which} of {of}: give 1 <= which <= of")
        check_count(self.limits, "max_examples", of, "quantiles")
        latent = self.check_latent(latent)
        with self.reader() as index:
            groups = index.quantile_examples(latent, of, n)
        if which > len(groups):
            raise SaescopeError(f"latent {latent} fires {len(groups)} times: there is no quantile {which}")
        return quantile_group(groups[which - 1], len(groups), 12)

    def random(self, latent: int, n: int) -> list[TokenExample]:
        """Windows where the latent does not fire."""
        check_count(self.limits, "max_examples", n, "examples")
        latent = self.check_latent(latent)
        with self.reader() as index:
            found = index.random_examples(latent, n)
        return [example_view(e, 12) for e in found]

    def related(self, latent: int, kind: str, n: int) -> list[Related]:
        """Co-occurring latents (`cooccurring`) or decoder neighbours (`neighbours`)."""
        check_count(self.limits, "max_examples", n, "latents")
        latent = self.check_latent(latent)
        text = self.explanation_text
        with self.reader() as index:
            if kind == "cooccurring":
                return [Related(r.latent, r.jaccard, text(r.latent)) for r in index.cooccurring(latent, n)]
            return [Related(r.latent, r.cosine, text(r.latent)) for r in index.neighbours(latent, n)]

    def view_scale(self, latent: int) -> float:
        """The activation a full shade stands for on a latent's examples: its maximum."""
        return float(self.require_index().stats_of(self.check_latent(latent))["max"])

    def explanation_text(self, latent: int) -> str:
        """A latent's explanation ("" when none)."""
        found = self.explanations.get(latent)
        return found.text if found is not None else ""

    # ----- the list of latents -------------------------------------------------------------
    def _build_rows(self) -> None:
        try:
            if self.index is not None:
                self._rows = self._rows_from_index(self.index)
        except Exception:  # the list stays without top tokens; the error is the log's
            log.exception("building the list of latents failed")
        finally:
            self._rows_ready.set()

    def _rows_from_index(self, index: Index) -> list[LatentRow]:
        views = {int(row["latent"]): stats_view(row) for row in index.stats().to_pylist()}
        live = [latent for latent, view in views.items() if not view.dead]
        top: dict[int, list[Example]] = {}
        for _, bucket in groupby(live, key=lambda k: k // index.header.bucket_latents):
            top.update(index.top_examples_many(list(bucket), 10, 0, 0))  # each bucket read once
        rows = []
        for latent, view in views.items():
            tokens = top_tokens(example_view(e, 0) for e in top.get(latent, []))
            rows.append(self._row(latent, view.frequency, view.max, tokens))
        return rows

    def _row(self, latent: int, frequency: float, top: float, tokens: tuple[str, ...]) -> LatentRow:
        found = self.explanations.get(latent)
        score = found.headline if found is not None else None
        return LatentRow(
            latent, frequency, top, found.text if found else "", score.value if score else None, tokens
        )

    @property
    def rows_complete(self) -> bool:
        """Whether the list of latents is complete (top tokens gathered)."""
        return self._rows_ready.is_set()

    def rows(self, wait: float = 0.0) -> list[LatentRow] | None:
        """Every latent's row (None without an index); rows without top tokens while the full list
        is still being built (`wait` seconds are given to it first)."""
        if self.index is None:
            return None
        self._rows_ready.wait(wait)
        if self._rows is not None:
            return self._rows
        return [
            self._row(int(r["latent"]), float(r["frequency"]), float(r["max"]), ())
            for r in self.index.stats().select(["latent", "frequency", "max"]).to_pylist()
        ]

    # ----- the model ----------------------------------------------------------------------
    def tokenizer(self) -> Any:
        """The model's tokenizer, for counting tokens against the limits (its own instance: the
        worker's is never shared with request threads)."""
        with self._tokenizer_lock, TOKENIZER_LOCK:
            if self._tokenizer is None:
                from ..models import load_tokenizer

                model = self.cfg.model or (self.parts.sae_cfg or {}).get("model", "")
                if not model:
                    raise SaescopeError(f"{self.parts.root} has no SAE: nothing to run")
                self._tokenizer = load_tokenizer(dataclasses.replace(model_settings(self.cfg), model=model))
            return self._tokenizer

    def count_tokens(self, text: str, limit: str, what: str, chat: bool = False) -> int:
        """Tokens of `text` as the model sees it, refused above the limit named `limit`."""
        check_chars(self.limits, limit, text, what)
        tokenizer = self.tokenizer()
        with self._tokenizer_lock:  # a fast tokenizer must not encode in two threads at once
            n = len(encode(tokenizer, text, chat))
        check_count(self.limits, limit, n, f"{what} (tokens)")
        return n

    def stats(self, bound: BoundSAE) -> FiringStats:
        """Latent frequencies and maxima (the index's, else measured once on held-out text);
        runs on the model worker."""
        if self._stats is None:
            self._stats = firing_stats(bound, self.parts.index_dir)
        return self._stats

    def _index_max(self, latent: int | None) -> float:
        if latent is None or self.index is None:
            return 0.0
        return float(self.index.stats_of(latent)["max"])

    def inspect(self, bound: BoundSAE, text: str, latent: int | None) -> Inspection:
        """Every token of `text` with its top latents, shaded by `latent` (default: the latent with
        the largest activation in the text); runs on the model worker."""
        codes = encode_text(bound, text)
        if latent is not None and not 0 <= latent < bound.sae.d_sae:
            raise SaescopeError(f"latent {latent} is out of range: the SAE has {bound.sae.d_sae} latents")
        chosen = latent if latent is not None else strongest(codes)
        activations = latent_activations(codes, chosen) if chosen is not None else [0.0] * len(codes.tokens)
        scale = shade_scale(activations, self._index_max(chosen))
        tokens = [
            TokenLatents(p, token, [(i, a, self.explanation_text(i)) for i, a in codes.top(p, INSPECT_TOP)])
            for p, token in enumerate(codes.tokens)
        ]
        return Inspection(tokens, chosen, activations, scale)


def shade_scale(activations: list[float], index_max: float) -> float:
    """The activation a full shade stands for: the latent's maximum in the index, else its
    largest activation in the text after the first token (a BOS token's activations are often
    far above every other token's and would wash out the rest)."""
    if index_max > 0:
        return index_max
    rest = activations[1:] if len(activations) > 1 else activations
    return max(rest, default=0.0)


def strongest(codes: TextCodes) -> int | None:
    """The latent with the largest activation anywhere in the text (BOS skipped when it has one
    and other tokens)."""
    acts = codes.latent_acts[1:] if len(codes.tokens) > 1 else codes.latent_acts
    idx = codes.latent_indices[1:] if len(codes.tokens) > 1 else codes.latent_indices
    if acts.numel() == 0 or float(acts.max()) <= 0:
        return None
    flat = int(acts.flatten().argmax())
    return int(idx.flatten()[flat])


def latent_activations(codes: TextCodes, latent: int) -> list[float]:
    """One latent's activation on every token (0 where it is not among the active ones)."""
    hit = (codes.latent_indices == latent) & (codes.latent_acts > 0)
    return (codes.latent_acts * hit).sum(-1).tolist()


__all__ = [
    "INSPECT_TOP",
    "Inspection",
    "RunContext",
    "TokenLatents",
    "latent_activations",
    "shade_scale",
    "strongest",
]
