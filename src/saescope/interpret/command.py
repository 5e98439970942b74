"""`saescope interpret`: explain latents of a latent index, score the explanations, store both in it.

    saescope interpret runs/demo/index                                  # statistics, offline
    saescope interpret runs/demo/index --explainer llm --latents 0-99   # the local model
    saescope interpret runs/demo/index --explainer llm --backend openai --model gpt-4o-mini \\
        --scorers detection,fuzzing --sample 200

The latents are chosen (`selection`), their records read from the index (`source`), explained and
scored (`resumable`, over `concurrent`), every result stored in the index as it comes (`tables`), and
the run summarised (`summary`): per latent, overall, and the language model's calls, tokens and
cost. The key of an online API is read from the environment variable `--api-key-env` names and
goes nowhere else. Backends and scorers are built by name from their registries
(`clients.registry`, `scorer_registry`). The run exits non-zero only when no latent could be
interpreted (explained, and measured or found not testable by a scorer), with what the language
model was asked in the error.

This module knows nothing about prompts, parsing or how scores are computed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..config.backends import backend_settings
from ..config.interpret import NO_KEY, InterpretConfig, parse_latent_spec
from ..errors import SaescopeError
from ..index.reader import Index
from .clients import LLM, RetryPolicy, make_client
from .clients.coalesce import Coalescing
from .clients.local import preload
from .explainers import Explainer, LLMExplainer, StatsExplainer
from .resumable import explainer_key, interpret_index
from .scorer_registry import make_scorer
from .scorers import Scorer
from .selection import select_latents
from .source import IndexRecords, RecordSettings
from .summary import InterpretResult, LatentReport, Usage, overall
from .tables import WORK_DIR, ResultStore

logger = logging.getLogger(__name__)

CACHE_FILE = "responses.jsonl"
"""The response cache, in the index's `interpret/` folder."""
LOCAL_EXPLAIN_TOKENS = 64
"""Longest explanation a local model may generate (its answer is begun for it: a phrase suffices)."""


def open_client(cfg: InterpretConfig) -> LLM:
    """The client `cfg` asks for (a batch backend's requests gathered into rounds: one batch each)."""
    work = cfg.index / WORK_DIR
    options: dict[str, Any] = {}
    if cfg.api_key_env is not None:
        options["api_key_env"] = None if cfg.api_key_env.strip().lower() == NO_KEY else cfg.api_key_env
    client = make_client(
        cfg.backend,
        base_url=cfg.base_url,
        cache=work / CACHE_FILE if cfg.cache else None,
        max_concurrency=cfg.concurrency,
        timeout=cfg.timeout,
        retry=RetryPolicy(max_retries=cfg.retries),
        state_path=work / f"{cfg.backend}-state.json",
        device=cfg.device,
        **options,
    )
    return Coalescing(client) if backend_settings(cfg.backend).batch else client


def make_explainer(cfg: InterpretConfig, client: LLM | None) -> Explainer:
    """The explainer `cfg` names."""
    if cfg.explainer == "stats":
        return StatsExplainer()
    assert client is not None, "the llm explainer needs a client"
    # a small local model keeps to the JSON asked for only when its answer is begun for it
    local = backend_settings(cfg.backend).local and not cfg.chain_of_thought
    return LLMExplainer(
        client,
        cfg.llm_model,
        n_examples=cfg.examples,
        strategy=cfg.strategy,
        n_bins=cfg.score_bins,
        chain_of_thought=cfg.chain_of_thought,
        max_tokens=LOCAL_EXPLAIN_TOKENS if local else None,
        seed=cfg.seed,
        prefill=local,
    )


def make_scorers(cfg: InterpretConfig, client: LLM | None) -> list[Scorer]:
    """The scorers `cfg` names, in its order (built by the scorer registry)."""
    return [make_scorer(name, cfg, client) for name in cfg.chosen_scorers]


def record_settings(cfg: InterpretConfig) -> RecordSettings:
    return RecordSettings(
        cfg.train_examples, cfg.score_bins, cfg.score_per_bin, cfg.before, cfg.after, cfg.seed
    )


async def _run(
    records: IndexRecords,
    latents: tuple[int, ...],
    explainer: Explainer,
    scorers: list[Scorer],
    client: LLM | None,
    store: ResultStore,
    cfg: InterpretConfig,
) -> tuple[tuple[LatentReport, ...], str | None]:
    """Run the latents, closing the client in the same event loop it worked in. Through a batch API
    every latent is in flight at once, so that each round of requests is one batch."""
    batch = backend_settings(cfg.backend).batch and cfg.needs_llm
    try:
        await preload(client, cfg.llm_model)
        outcome = await interpret_index(
            records,
            latents,
            explainer,
            scorers,
            store,
            concurrency=len(latents) if batch else cfg.concurrency,
            chunk=len(latents) if batch else None,
            seed=cfg.seed,
        )
    finally:
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()
    return outcome.reports, outcome.stopped


def nothing_succeeded(reports: tuple[LatentReport, ...], stopped: str | None, usage: Usage) -> SaescopeError:
    """The one-line error of a run in which no latent could be interpreted (with what the language
    model was asked, which was spent all the same)."""
    spent = f"; language model: {usage.line}" if usage.calls else ""
    if stopped and not reports:
        return SaescopeError(stopped + spent)
    first = next((f"latent {r.latent}: {r.messages[0]}" for r in reports if r.messages), "")
    return SaescopeError(
        f"no latent could be interpreted ({len(reports)} failed{'; e.g. ' + first if first else ''})"
        + (f"; stopped: {stopped}" if stopped else "")
        + spent
    )


def interpret_latents(cfg: InterpretConfig, llm: LLM | None = None) -> InterpretResult:
    """Explain and score the latents `cfg` chooses; store and summarise the results (`llm`: a
    client to use instead of the one `cfg` describes, e.g. a scripted one in tests)."""
    started = time.perf_counter()
    index = Index(cfg.index)
    records = IndexRecords(index, record_settings(cfg))
    wanted = parse_latent_spec(cfg.latents) if cfg.latents is not None else None
    selection = select_latents(
        records.counts, wanted, sample=cfg.sample, min_count=cfg.min_count, seed=cfg.seed
    )
    if not selection.latents:
        why = f"; {selection.skipped[0].latent}: {selection.skipped[0].reason}" if selection.skipped else ""
        raise SaescopeError(f"no latent to interpret among those chosen{why}")
    for s in selection.skipped if wanted is not None else ():
        logger.info("latent %d skipped: %s", s.latent, s.reason)
    client = llm if llm is not None or not cfg.needs_llm else open_client(cfg)
    explainer = make_explainer(cfg, client)
    scorers = make_scorers(cfg, client)
    store = ResultStore(cfg.index)
    reports, stopped = asyncio.run(_run(records, selection.latents, explainer, scorers, client, store, cfg))
    usage = Usage.of(getattr(client, "usage", None))
    if not any(r.ok for r in reports):
        raise nothing_succeeded(reports, stopped, usage)
    key = explainer_key(explainer)
    return InterpretResult(
        cfg.index,
        key.explainer,
        key.model,
        key.prompt_version,
        cfg.chosen_scorers,
        reports,
        selection.skipped,
        overall(reports),
        usage,
        time.perf_counter() - started,
        stopped,
    )


__all__ = ["interpret_latents", "make_explainer", "make_scorers", "open_client", "record_settings"]
