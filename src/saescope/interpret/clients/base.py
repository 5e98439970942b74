"""The one small interface every language-model client speaks: a `ChatRequest` in, a `ChatResponse` out.

`ChatRequest` is everything that determines an answer (model, messages, token limit, temperature,
whether JSON is wanted); its `key` — the SHA-256 of the request together with the backend's name
and base URL, never the API key — names the answer in the response cache and in batch files.
`ChatResponse` carries the text and token counts, whether it came from the cache, and `error`
instead of raising when this one request failed.

`LLM` is what explainers and scorers need (`chat`, `chat_many`); `Backend` is what a provider
implements for `ChatClient` (one request, no retries, no cache), and `BatchBackend` what it
implements for `BatchClient`.

This module knows nothing about any provider, about retries or about caching.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

Role = Literal["system", "user", "assistant"]


class Message(NamedTuple):
    """One chat message."""

    role: Role
    """`system`, `user` or `assistant`."""
    content: str
    """The message text."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for."""

    model: str
    """Model name as the backend knows it (`gpt-4o-mini`, `claude-haiku-4-5`, a local folder, …)."""
    messages: tuple[Message, ...]
    """The conversation: optional system message, then alternating user/assistant turns."""
    max_tokens: int = 512
    """Most tokens to generate."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy (the default, so that answers are reproducible)."""
    json_mode: bool = False
    """Ask for a JSON object where the backend supports it (OpenAI's `response_format`)."""

    @classmethod
    def of(cls, model: str, user: str, system: str | None = None, **params: Any) -> ChatRequest:
        """A request of one user message, with an optional system message before it."""
        head = (Message("system", system),) if system else ()
        return cls(model, (*head, Message("user", user)), **params)

    def to_dict(self) -> dict[str, Any]:
        """JSON values."""
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "json_mode": self.json_mode,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChatRequest:
        """The inverse of `to_dict`."""
        messages = tuple(Message(m["role"], m["content"]) for m in d["messages"])
        return cls(d["model"], messages, int(d["max_tokens"]), float(d["temperature"]), bool(d["json_mode"]))

    def key(self, backend: str, base_url: str) -> str:
        """SHA-256 (hex) of the request as sent to `backend` at `base_url`: the cache and batch key."""
        blob = json.dumps({"backend": backend, "base_url": base_url, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


class ChatResponse(NamedTuple):
    """The answer to one `ChatRequest`."""

    text: str
    """The generated text ("" on failure)."""
    prompt_tokens: int = 0
    """Tokens the prompt took (as the backend counted them; 0 when it did not say)."""
    completion_tokens: int = 0
    """Tokens generated."""
    cached: bool = False
    """Whether the answer came from the response cache (it then cost nothing)."""
    error: str | None = None
    """Why this request failed (None on success); never contains an API key."""

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON values (without `cached`, which describes where an answer came from, not the answer)."""
        return {
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], cached: bool = False) -> ChatResponse:
        """The inverse of `to_dict`."""
        return cls(
            str(d.get("text", "")),
            int(d.get("prompt_tokens", 0)),
            int(d.get("completion_tokens", 0)),
            cached,
            d.get("error"),
        )


class LLM(Protocol):
    """What explainers and scorers call: any client, or a scripted fake in tests."""

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request (failures come back as `ChatResponse.error`)."""
        ...

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer several requests, in order (concurrently, or as one batch)."""
        ...


class Backend(Protocol):
    """One provider's online API: sends one request, no retries, no cache.

    `complete` raises `TransientError` for what is worth retrying, `RequestFailedError` for a
    failure of this request alone, and an `LLMError` for what the user must fix.
    """

    name: str
    """Provider family (`openai`, `anthropic`, `local`): part of the cache key."""
    base_url: str
    """Endpoint (or `local`): part of the cache key."""

    async def complete(self, request: ChatRequest, timeout: float) -> ChatResponse:
        """Send `request`; give up after `timeout` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


BatchState = Literal["pending", "done", "failed"]


class BatchStatus(NamedTuple):
    """Where a submitted batch stands."""

    state: BatchState
    """`pending` (still running), `done` (results ready) or `failed` (no more results will come)."""
    detail: str = ""
    """The provider's own status word and counts, for logs."""


class BatchBackend(Protocol):
    """One provider's batch API. Errors as in `Backend`."""

    name: str
    base_url: str
    discount: float
    """Price factor of batch tokens relative to online ones (0.5 at OpenAI and Anthropic)."""

    async def submit(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        """Submit (custom id, request) pairs as one batch; returns the batch id."""
        ...

    async def poll(self, batch_id: str) -> BatchStatus:
        """The batch's status."""
        ...

    async def results(self, batch_id: str) -> dict[str, ChatResponse]:
        """Answers by custom id (those that failed carry `error`; missing ones were never answered)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
