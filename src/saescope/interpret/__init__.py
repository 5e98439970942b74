"""Automatic interpretation of SAE latents: explain what a latent responds to, and score the explanation.

- `records`: `LatentRecord` (one latent's train, held-out and background example windows,
  `saescope.example.Example`, and statistics); `mark_active`.
- `clients`: language models behind one async interface (`ChatRequest` → `ChatResponse`):
  OpenAI-compatible endpoints, Anthropic, their batch APIs, a local transformers model; with
  a concurrency limit, retries, timeouts, a response cache and a usage meter (pricing only a
  provider's own endpoint). Backends are registered by name (`clients.registry`,
  `register_backend`).
- `explainers`: `LLMExplainer` and the model-free `StatsExplainer` → `Explanation`.
- `scorers`: detection, fuzzing, simulation and the model-free statistics scorer → `Score`
  (measured, undefined, not testable or failed) with 95% intervals (`metrics`: Wilson for
  proportions, bootstrap otherwise) and chance baselines; `aggregate` over latents. Scorers are
  registered by their `--scorers` name (`scorer_registry`, `register_scorer`).
- `concurrent`: `explain_and_score` runs it all over many records, concurrently and resumably.

Connected to a latent index:

- `selection`: which latents (`--latents`, `--min-count`, `--sample`); `source`: `IndexRecords`
  builds each latent's `LatentRecord` from the index (train and held-out firings kept apart).
- `tables`: explanations and scores stored in the index (`explanations.parquet`, `scores.parquet`),
  appended per latent and compacted; `best`: the explanation shown per latent and its headline
  score (`best_explanations`); `search`: offline full-text search (`search_explanations`).
- `resumable`: `interpret_index` skips what is stored and stores what is new; `command`: the
  `saescope interpret` command (`interpret_latents`), summarised by `summary`; `listing`: the
  `saescope explanations` command; `demo`: `demo_interpretation`, the demo's few latents.

Nothing here needs the `openai`/`anthropic` packages until a backend that uses them is built.
"""

from ..example import Example
from .best import HEADLINES, Interpretation
from .clients import (
    LLM,
    BackendEntry,
    BatchClient,
    ChatClient,
    ChatRequest,
    ChatResponse,
    LLMError,
    Message,
    ResponseCache,
    RetryPolicy,
    UsageMeter,
    backend_names,
    make_client,
    register_backend,
)
from .command import interpret_latents
from .concurrent import SHUFFLE, LatentResult, explain_and_score, shuffled_baselines
from .demo import DemoInterpretation, demo_interpretation
from .evidence import Evidence
from .explainers import (
    FEW_EXAMPLES,
    Explainer,
    Explanation,
    LLMExplainer,
    StatsExplainer,
    evidence_of,
    given_explanation,
)
from .parsing import find_json, read_activations, read_explanation, read_labels
from .prompts import PROMPT_VERSION
from .records import LatentRecord, TokenStat, active_mask, active_tokens, mark_active, mark_tokens
from .resumable import interpret_index
from .sampling import held_out_mix, select_examples
from .scorer_registry import ScorerSettings, register_scorer, scorer_names
from .scorers import (
    Aggregate,
    DetectionScorer,
    FuzzingScorer,
    Score,
    Scorer,
    SimulationScorer,
    StatsScorer,
    aggregate,
    beats_baseline,
    by_latent,
)
from .search import ExplanationSearch, SearchHit, search_explanations
from .selection import Selection, select_latents
from .source import IndexRecords, RecordSettings
from .summary import InterpretResult, LatentReport
from .tables import ResultStore, best_explanations, compact, read_interpretations

__all__ = [
    "FEW_EXAMPLES",
    "HEADLINES",
    "LLM",
    "PROMPT_VERSION",
    "SHUFFLE",
    "Aggregate",
    "BackendEntry",
    "BackendSettings",
    "BatchClient",
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "DemoInterpretation",
    "DetectionScorer",
    "Evidence",
    "Example",
    "Explainer",
    "Explanation",
    "ExplanationSearch",
    "FuzzingScorer",
    "IndexRecords",
    "InterpretResult",
    "Interpretation",
    "LLMError",
    "LLMExplainer",
    "LatentRecord",
    "LatentReport",
    "LatentResult",
    "Message",
    "RecordSettings",
    "ResponseCache",
    "ResultStore",
    "RetryPolicy",
    "Score",
    "Scorer",
    "ScorerSettings",
    "SearchHit",
    "Selection",
    "SimulationScorer",
    "StatsExplainer",
    "StatsScorer",
    "TokenStat",
    "UsageMeter",
    "active_mask",
    "active_tokens",
    "aggregate",
    "backend_names",
    "beats_baseline",
    "best_explanations",
    "by_latent",
    "compact",
    "demo_interpretation",
    "evidence_of",
    "explain_and_score",
    "find_json",
    "given_explanation",
    "held_out_mix",
    "interpret_index",
    "interpret_latents",
    "make_client",
    "mark_active",
    "mark_tokens",
    "read_activations",
    "read_explanation",
    "read_interpretations",
    "read_labels",
    "register_backend",
    "register_scorer",
    "scorer_names",
    "search_explanations",
    "select_examples",
    "select_latents",
    "shuffled_baselines",
]
