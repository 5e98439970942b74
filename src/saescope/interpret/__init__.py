"""Automatic interpretation of SAE latents: explain what a latent responds to, and score the explanation.

- `records`: `Example` (a window of tokens with the latent's activations) and `LatentRecord`
  (one latent's train, held-out and background examples and statistics); `mark_active`.
- `clients`: language models behind one async interface (`ChatRequest` → `ChatResponse`):
  OpenAI-compatible endpoints, Anthropic, their batch APIs, a local transformers model; with
  a concurrency limit, retries, timeouts, a response cache and a usage meter.
- `explainers`: `LLMExplainer` and the model-free `StatsExplainer` → `Explanation`.
- `scorers`: detection, fuzzing, simulation and the model-free statistics scorer → `Score`
  with bootstrap intervals and chance baselines; `aggregate` over latents.
- `pipeline`: `interpret_latents` runs it all over many records, concurrently and resumably.

Nothing here reads the latent index or needs the `openai`/`anthropic` packages until a backend
that uses them is built.
"""

from .clients import (
    LLM,
    BatchClient,
    ChatClient,
    ChatRequest,
    ChatResponse,
    LLMError,
    Message,
    ResponseCache,
    RetryPolicy,
    UsageMeter,
    make_client,
)
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
from .pipeline import SHUFFLE, LatentResult, interpret_latents, shuffled_baselines
from .prompts import PROMPT_VERSION
from .records import Example, LatentRecord, TokenStat, active_mask, active_tokens, mark_active, mark_tokens
from .sampling import held_out_mix, select_examples
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
from .stats import Evidence

__all__ = [
    "FEW_EXAMPLES",
    "LLM",
    "PROMPT_VERSION",
    "SHUFFLE",
    "Aggregate",
    "BatchClient",
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "DetectionScorer",
    "Evidence",
    "Example",
    "Explainer",
    "Explanation",
    "FuzzingScorer",
    "LLMError",
    "LLMExplainer",
    "LatentRecord",
    "LatentResult",
    "Message",
    "ResponseCache",
    "RetryPolicy",
    "Score",
    "Scorer",
    "SimulationScorer",
    "StatsExplainer",
    "StatsScorer",
    "TokenStat",
    "UsageMeter",
    "active_mask",
    "active_tokens",
    "aggregate",
    "beats_baseline",
    "by_latent",
    "evidence_of",
    "find_json",
    "given_explanation",
    "held_out_mix",
    "interpret_latents",
    "make_client",
    "mark_active",
    "mark_tokens",
    "read_activations",
    "read_explanation",
    "read_labels",
    "select_examples",
    "shuffled_baselines",
]
