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

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from ..bound import BoundSAE, bind_sae
from ..config import model_of
from ..config.dashboard import PageSettings
from ..config.serve import ServeConfig
from ..errors import SaescopeError
from ..example import Example
from ..index.format import LatentIndexError
from ..index.reader import TOKENIZER_LOCK, Index
from ..index.text_latents import text_latents
from ..render import ExplanationView, LatentRow, LatentView, QuantileGroup, Related
from ..render.gather import (
    bare_rows,
    explanation_text,
    explanation_views,
    latent_rows,
    latent_view,
    quantile_group,
    related_of,
)
from ..steer import FiringStats, firing_stats
from ..tokens import encode
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
        return bind_sae(self.parts.sae, self.cfg.model or None, self.cfg.force, model_of(self.cfg))

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
    ) -> list[Example]:
        """Top examples `offset` … `offset + count` of a latent."""
        check_count(self.limits, "max_examples", offset + count, "offset + count")
        latent = self.check_latent(latent)
        with self.reader() as index:
            found = index.top_examples(latent, offset + count, before, after)
        return found[offset:]

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
        return quantile_group(groups[which - 1], len(groups))

    def random(self, latent: int, n: int) -> list[Example]:
        """Windows where the latent does not fire."""
        check_count(self.limits, "max_examples", n, "examples")
        latent = self.check_latent(latent)
        with self.reader() as index:
            return index.random_examples(latent, n)

    def related(self, latent: int, kind: str, n: int) -> list[Related]:
        """Co-occurring latents (`cooccurring`) or decoder neighbours (`neighbours`)."""
        check_count(self.limits, "max_examples", n, "latents")
        latent = self.check_latent(latent)
        with self.reader() as index:
            return list(related_of(index, latent, kind, n, self.explanations))

    def view_scale(self, latent: int) -> float:
        """The activation a full shade stands for on a latent's examples: its maximum."""
        return float(self.require_index().stats_of(self.check_latent(latent))["max"])

    def explanation_text(self, latent: int) -> str:
        """A latent's explanation ("" when none)."""
        return explanation_text(self.explanations, latent)

    # ----- the list of latents -------------------------------------------------------------
    def _build_rows(self) -> None:
        try:
            if self.index is not None:
                self._rows = latent_rows(self.index, self.explanations)
        except Exception:  # the list stays without top tokens; the error is the log's
            log.exception("building the list of latents failed")
        finally:
            self._rows_ready.set()

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
        return bare_rows(self.index, self.explanations)

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
                self._tokenizer = load_tokenizer(model_of(self.cfg, model=model))
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
        """Every token of `text` (BOS left out, as `saescope query --text` reports them) with its
        top latents, shaded by `latent` (default: the latent with the largest activation in the
        text); runs on the model worker."""
        if latent is not None and not 0 <= latent < bound.sae.d_sae:
            raise SaescopeError(f"latent {latent} is out of range: the SAE has {bound.sae.d_sae} latents")
        found = text_latents(bound, text, rank=1)
        chosen = latent if latent is not None else (found.ranked[0].latent if found.ranked else None)
        activations = [
            next((a.activation for a in t.latents if a.latent == chosen), 0.0) for t in found.tokens
        ]
        scale = self._index_max(chosen) or max(activations, default=0.0)
        tokens = [
            TokenLatents(
                t.position,
                t.token,
                [(a.latent, a.activation, self.explanation_text(a.latent)) for a in t.latents[:INSPECT_TOP]],
            )
            for t in found.tokens
        ]
        return Inspection(tokens, chosen, activations, scale)


__all__ = [
    "INSPECT_TOP",
    "Inspection",
    "RunContext",
    "TokenLatents",
]
