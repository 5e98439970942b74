"""Language-model clients behind one small async interface (`ChatRequest` → `ChatResponse`).

`ChatClient` wraps an online backend (`OpenAIBackend` for any OpenAI-compatible endpoint,
`AnthropicBackend`, `LocalBackend` for a transformers model) with a concurrency limit, retries,
a timeout, a response cache and a usage meter; `BatchClient` does the same over a batch API
(`OpenAIBatchBackend`, `AnthropicBatchBackend`) and resumes a killed run's batches from a state
file. `make_client` builds either by a name of the backend registry (`registry`: what `--backend`
offers; adding a backend is one file that registers it). The `openai` and `anthropic` packages
are imported only when their backend is built.
"""

from .anthropic_api import AnthropicBackend, AnthropicBatchBackend
from .base import LLM, Backend, BatchBackend, BatchStatus, ChatRequest, ChatResponse, Message
from .batch import BatchClient
from .cache import ResponseCache
from .client import ChatClient
from .errors import (
    AuthenticationFailedError,
    BatchError,
    EndpointUnreachableError,
    LLMError,
    MissingAPIKeyError,
    MissingPackageError,
)
from .factory import make_client
from .local import LocalBackend
from .openai_api import OpenAIBackend, OpenAIBatchBackend
from .registry import (
    BackendEntry,
    BackendOptions,
    BackendSettings,
    backend_entry,
    backend_names,
    register_backend,
)
from .retry import RetryPolicy, parse_retry_after
from .usage import PRICES, UsageMeter

__all__ = [
    "LLM",
    "PRICES",
    "AnthropicBackend",
    "AnthropicBatchBackend",
    "AuthenticationFailedError",
    "Backend",
    "BackendEntry",
    "BackendOptions",
    "BackendSettings",
    "BatchBackend",
    "BatchClient",
    "BatchError",
    "BatchStatus",
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "EndpointUnreachableError",
    "LLMError",
    "LocalBackend",
    "Message",
    "MissingAPIKeyError",
    "MissingPackageError",
    "OpenAIBackend",
    "OpenAIBatchBackend",
    "ResponseCache",
    "RetryPolicy",
    "UsageMeter",
    "backend_entry",
    "backend_names",
    "make_client",
    "parse_retry_after",
    "register_backend",
]
