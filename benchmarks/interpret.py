"""Auto-interpretation on CPU: latents explained and scored per minute, and what each latent costs in
language-model calls and prompt tokens.

Figures (issue 11), each beside a baseline measured in the same run:

- statistics explainer + statistics scorer (`saescope interpret`'s default): latents per minute,
  end to end (records read from the index, explained, scored, stored), beside reading the same
  records alone — the index's share of the time;
- the local model (`--explainer llm`, SmolLM2-135M-Instruct, its answer begun for it) + the
  statistics scorer: latents per minute, beside transformers' own `generate` on the very same
  prompts — the pipeline's overhead over generation itself;
- language-model calls and prompt tokens per latent for each set of scorers, counted on real
  prompts of real records (a scripted model answers; tokens counted with SmolLM2's tokenizer and
  chat template, so an OpenAI or Anthropic tokenizer will differ by some percent), beside delphi's
  defaults: about 21 calls per latent (the figure the issue states; not measured here).

Rates are given per second of wall time and per second of this process's CPU time (the latter
stays put when other processes load the machine). Runs on a scratch copy of runs/demo/index when
there is one (results are written into the copy, never into the run), else on an index of a
random-init SAE of the demo's shape over 20,000 tokens of the built-in corpus; the output says which.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from saescope.config import IndexConfig
from saescope.config.interpret import InterpretConfig
from saescope.index.build import build_index
from saescope.index.reader import Index
from saescope.interpret.clients import ChatClient, ChatRequest, ChatResponse, UsageMeter, make_client
from saescope.interpret.clients.local import prompt_text
from saescope.interpret.command import make_explainer, record_settings
from saescope.interpret.explainers import LLMExplainer, StatsExplainer
from saescope.interpret.prompts import EXPLAIN_SYSTEM, SIMULATE_SYSTEM
from saescope.interpret.resumable import interpret_index
from saescope.interpret.scorer_registry import make_scorer
from saescope.interpret.scorers import Scorer, StatsScorer
from saescope.interpret.selection import select_latents
from saescope.interpret.source import IndexRecords
from saescope.interpret.tables import ResultStore
from saescope.sae import SAEConfig, get_architecture
from saescope.sae.formats import save_sae
from saescope.sae.init import initialize

DEMO_INDEX = Path(__file__).resolve().parent.parent / "runs" / "demo" / "index"
DELPHI_CALLS = 21
"""Language-model calls per latent under delphi's defaults, as the issue states them."""
LEFT_OUT = {"explanations", "scores", "interpret", "explanations.parquet", "scores.parquet"}


class Rate(NamedTuple):
    """Latents per minute."""

    wall: float
    """Per minute of wall time."""
    cpu: float
    """Per minute of this process's CPU time."""

    def text(self) -> str:
        return f"{self.wall:8.1f} latents/min wall, {self.cpu:8.1f} per CPU-minute"


def timed(n: int, fn: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Rate(60 * n / (time.perf_counter() - wall), 60 * n / (time.process_time() - cpu))


# ------------------------------------------------------------------------------------- the index


def random_index(folder: Path) -> Path:
    """An index of a random-init TopK SAE of the demo's shape over 20,000 built-in tokens."""
    cfg = SAEConfig(
        architecture="topk",
        d_in=576,
        d_sae=4608,
        k=32,
        model="smollm2-135m",
        hookpoint="model.layers.15",
        hookpoint_alias="resid_post:15",
    )
    sae = get_architecture("topk")(cfg)
    initialize(sae, generator=torch.Generator().manual_seed(0))
    sae_dir = save_sae(sae, folder / "sae")
    out = folder / "index"
    build_index(
        IndexConfig(
            saes=(sae_dir,), out=(out,), dataset="builtin", tokens=20_000, context_len=256, device="cpu"
        )
    )
    return out


def scratch_index(work: Path) -> tuple[Path, str]:
    """An index to write results into, and what it is."""
    if (DEMO_INDEX / "index.json").is_file():
        copy = work / "index"
        shutil.copytree(DEMO_INDEX, copy, ignore=lambda _, names: [n for n in names if n in LEFT_OUT])
        return copy, f"a scratch copy of {DEMO_INDEX}"
    return random_index(work), "a random-init TopK SAE (4608 latents, k=32) over 20,000 built-in tokens"


def chosen_latents(index_dir: Path, n: int, seed: int) -> list[int]:
    counts = Index(index_dir).stats().column("count").to_numpy()
    return list(select_latents(counts, sample=n, min_count=10, seed=seed).latents)


def clear_results(index_dir: Path) -> None:
    for name in LEFT_OUT:
        path = index_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def warm_index(index_dir: Path) -> Index:
    """An index whose tokenizer is loaded (its load is not what is being timed)."""
    index = Index(index_dir)
    index.decode([0])
    return index


# ------------------------------------------------------------------------------ statistics


def stats_figures(index_dir: Path, latents: Sequence[int]) -> tuple[Rate, Rate]:
    """(records alone, end to end) for the statistics explainer and scorer."""
    settings = record_settings(InterpretConfig(index=index_dir))
    index = warm_index(index_dir)
    alone = timed(len(latents), lambda: [IndexRecords(index, settings).record(i) for i in latents])
    index = warm_index(index_dir)
    clear_results(index_dir)

    def run() -> None:
        records = IndexRecords(index, settings)
        asyncio.run(
            interpret_index(
                records, latents, StatsExplainer(), [StatsScorer()], ResultStore(index_dir), progress=False
            )
        )

    return alone, timed(len(latents), run)


# ------------------------------------------------------------------------------- local model


def raw_generation(index_dir: Path, requests: Sequence[ChatRequest]) -> Callable[[], object]:
    """transformers' `generate` on the same prompts and token limits, nothing around it."""
    from saescope.config import ModelSettings
    from saescope.models import load_model

    loaded = load_model(ModelSettings(model=requests[0].model, device="cpu"))

    def run() -> None:
        for request in requests:
            text, templated = prompt_text(loaded.tokenizer, request)
            ids = loaded.tokenizer(text, add_special_tokens=not templated, return_tensors="pt")
            with torch.inference_mode():
                loaded.model.generate(
                    **ids,
                    max_new_tokens=request.max_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=loaded.tokenizer.pad_token_id,
                )

    return run


def local_figures(index_dir: Path, latents: Sequence[int]) -> tuple[Rate, Rate, str]:
    """(raw generation, end to end) for the local model explainer and the statistics scorer, and
    the usage line."""
    cfg = InterpretConfig(index=index_dir, explainer="llm")
    index = warm_index(index_dir)
    records = IndexRecords(index, record_settings(cfg))
    client = make_client("local")
    assert isinstance(client, ChatClient)
    explainer = make_explainer(cfg, client)
    assert isinstance(explainer, LLMExplainer)
    requests = [explainer.request(records.record(i))[0] for i in latents]
    generate = raw_generation(index_dir, requests)
    generate()  # warm-up: the first generation pays for one-time set-up
    asyncio.run(client.chat(requests[0]))  # the client loads its own copy of the model
    client.usage = UsageMeter()
    clear_results(index_dir)

    def run() -> None:
        asyncio.run(
            interpret_index(
                records, latents, explainer, [StatsScorer()], ResultStore(index_dir), progress=False
            )
        )

    # the baseline before and after the run, averaged: a shared machine's load drifts
    before = timed(len(latents), generate)
    rate = timed(len(latents), run)
    after = timed(len(latents), generate)
    baseline = Rate((before.wall + after.wall) / 2, (before.cpu + after.cpu) / 2)
    return baseline, rate, client.usage.summary()


# --------------------------------------------------------------------------- calls and tokens


class Counting:
    """A scripted model that answers every prompt in the asked format, counting calls and prompt
    tokens (SmolLM2's tokenizer and chat template)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.calls = 0
        self.prompt_tokens = 0

    def answer(self, request: ChatRequest) -> str:
        system, user = request.messages[0].content, request.messages[-1].content
        if system == EXPLAIN_SYSTEM:
            return '{"explanation": "the token \\"the\\"", "confidence": 0.5}'
        n = int(re.search(r"list of (?:exactly )?(\d+)", user).group(1))  # type: ignore[union-attr]
        return str([5 if system == SIMULATE_SYSTEM else 1] * n)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        self.prompt_tokens += len(self.tokenizer(prompt_text(self.tokenizer, request)[0])["input_ids"])
        return ChatResponse(self.answer(request))

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return [await self.chat(r) for r in requests]


SETUPS: dict[str, tuple[str, ...]] = {
    "llm + stats (local default)": ("stats",),
    "llm + detection, stats (online default)": ("detection", "stats"),
    "llm + detection, fuzzing (delphi's scorers)": ("detection", "fuzzing"),
    "llm + detection, fuzzing, simulation": ("detection", "fuzzing", "simulation"),
}


def scorers_for(names: Sequence[str], llm: Counting, index_dir: Path) -> list[Scorer]:
    """The scorers `saescope interpret --scorers` builds by these names (the scorer registry)."""
    cfg = InterpretConfig(index=index_dir, explainer="llm", model="m")
    return [make_scorer(n, cfg, llm) for n in names]


def call_figures(index_dir: Path, latents: Sequence[int]) -> dict[str, tuple[float, float]]:
    """Setup → (calls, prompt tokens) per latent."""
    index = warm_index(index_dir)
    out = {}
    for name, scorers in SETUPS.items():
        clear_results(index_dir)
        llm = Counting(index.tokenizer)
        records = IndexRecords(index, record_settings(InterpretConfig(index=index_dir)))
        asyncio.run(
            interpret_index(
                records,
                latents,
                LLMExplainer(llm, "m"),
                scorers_for(scorers, llm, index_dir),
                ResultStore(index_dir),
                progress=False,
            )
        )
        out[name] = (llm.calls / len(latents), llm.prompt_tokens / len(latents))
    return out


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stats-latents", type=int, default=200, help="latents timed with statistics")
    parser.add_argument("--llm-latents", type=int, default=5, help="latents timed with the local model")
    parser.add_argument("--count-latents", type=int, default=20, help="latents whose calls are counted")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    parser.add_argument("--skip-llm", action="store_true", help="leave out the local model's figures")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="saescope-bench-interpret-") as tmp:
        index_dir, what = scratch_index(Path(tmp))
        print(f"index: {what}; torch threads: {torch.get_num_threads()}")
        latents = chosen_latents(index_dir, args.stats_latents, seed=0)
        alone, full = stats_figures(index_dir, latents)
        print(f"statistics explainer + statistics scorer, {len(latents)} latents (firing >= 10 times):")
        print(f"  end to end (records, explain, score, store) {full.text()}")
        print(f"  baseline: reading the records alone        {alone.text()}")
        if not args.skip_llm:
            few = chosen_latents(index_dir, args.llm_latents, seed=1)
            raw, rate, usage = local_figures(index_dir, few)
            print(f"local model (smollm2-135m, CPU) explainer + statistics scorer, {len(few)} latents:")
            print(f"  end to end                                  {rate.text()}")
            print(f"  baseline: generate() on the same prompts    {raw.text()} (mean of before and after)")
            print(f"  {usage}")
        counted = chosen_latents(index_dir, args.count_latents, seed=2)
        print(
            f"language-model calls and prompt tokens per latent ({len(counted)} latents, baselines included):"
        )
        for name, (calls, tokens) in call_figures(index_dir, counted).items():
            print(f"  {name:<45} {calls:6.1f} calls {tokens:9,.0f} prompt tokens")
        print(f"  {'delphi defaults (as the issue states them)':<45} {DELPHI_CALLS:6.1f} calls")


if __name__ == "__main__":
    main()
