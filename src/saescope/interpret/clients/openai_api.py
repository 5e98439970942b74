"""Any OpenAI-compatible chat endpoint (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp), online and batch.

`OpenAIBackend` sends one `/chat/completions` request through the official `openai` package
(`AsyncOpenAI`, its own retries off — `ChatClient` retries). `OpenAIBatchBackend` uploads the
requests as a JSONL file (`purpose="batch"`), creates a `/v1/batches` job over it, polls it, and
reads the output and error files back. The base URL is the caller's; the key is read from the
environment variable the caller names (default `OPENAI_API_KEY`; None for servers that need no
key) and lives only inside the SDK client. On api.openai.com the token limit is sent as
`max_completion_tokens` (what newer models require), elsewhere as `max_tokens` (what compatible
servers understand); `json_mode` becomes `response_format={"type": "json_object"}`.
Registered as the backends `openai` and `openai-batch`, priced only at api.openai.com.

This module knows nothing about caching, retries or prompts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...config.backends import OPENAI_URL, backend_settings
from .base import BatchStatus, ChatRequest, ChatResponse
from .errors import RequestFailedError
from .registry import register_backend
from .sdk import NO_KEY, SDKClient, as_dict, import_sdk, read_api_key

CHAT_PATH = "/v1/chat/completions"

_PENDING = {"validating", "in_progress", "finalizing"}
_FAILED = {"failed", "expired", "cancelling", "cancelled"}


def chat_body(request: ChatRequest, base_url: str) -> dict[str, Any]:
    """The JSON body of a chat-completions request."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
    }
    limit = "max_completion_tokens" if "api.openai.com" in base_url else "max_tokens"
    body[limit] = request.max_tokens
    if request.json_mode:
        body["response_format"] = {"type": "json_object"}
    return body


def parse_completion(body: Mapping[str, Any]) -> ChatResponse:
    """A `ChatResponse` from a chat-completions response body; RequestFailedError when it has no text."""
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], Mapping):
        raise RequestFailedError("malformed response: no choices")
    message = choices[0].get("message") or {}
    text = message.get("content")
    if not isinstance(text, str):
        raise RequestFailedError(f"no text in the answer (finish_reason {choices[0].get('finish_reason')})")
    usage = body.get("usage") or {}
    return ChatResponse(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


class _OpenAIBase(SDKClient):
    name = "openai"

    def __init__(self, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY") -> None:
        self._sdk = import_sdk("openai")
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.api_key_env = api_key_env
        self._secret = read_api_key(api_key_env, "openai")
        self._client = self._sdk.AsyncOpenAI(
            api_key=self._secret or NO_KEY, base_url=self.base_url, max_retries=0
        )


class OpenAIBackend(_OpenAIBase):
    """Online chat completions at an OpenAI-compatible endpoint."""

    async def complete(self, request: ChatRequest, timeout: float) -> ChatResponse:
        """Send one request."""
        try:
            completion = await self._client.chat.completions.create(
                **chat_body(request, self.base_url), timeout=timeout
            )
        except Exception as e:
            raise self._translate(e) from None
        return parse_completion(as_dict(completion))


def _parse_output_line(line: str) -> tuple[str, ChatResponse] | None:
    """(custom id, answer) from one line of a batch output or error file; None for a blank line."""
    if not line.strip():
        return None
    row = json.loads(line)
    custom_id = str(row["custom_id"])
    response = row.get("response") or {}
    error = row.get("error")
    if error or response.get("status_code") != 200:
        detail = (error or {}).get("message") or (response.get("body") or {}).get("error") or "no response"
        return custom_id, ChatResponse("", error=f"batch request failed: {detail}")
    try:
        return custom_id, parse_completion(response.get("body") or {})
    except RequestFailedError as e:
        return custom_id, ChatResponse("", error=str(e))


class OpenAIBatchBackend(_OpenAIBase):
    """The `/v1/batches` API of an OpenAI-compatible endpoint (half price, answers within 24 h)."""

    discount = 0.5

    async def submit(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        """Upload the requests as JSONL and create a batch over them; returns its id."""
        lines = [
            {"custom_id": k, "method": "POST", "url": CHAT_PATH, "body": chat_body(r, self.base_url)}
            for k, r in items
        ]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        try:
            uploaded = await self._client.files.create(
                file=("saescope-batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
            batch = await self._client.batches.create(
                input_file_id=uploaded.id, endpoint=CHAT_PATH, completion_window="24h"
            )
        except Exception as e:
            raise self._translate(e) from None
        return str(batch.id)

    async def _retrieve(self, batch_id: str) -> Any:
        try:
            return await self._client.batches.retrieve(batch_id)
        except Exception as e:
            raise self._translate(e) from None

    async def poll(self, batch_id: str) -> BatchStatus:
        """The batch's status."""
        batch = await self._retrieve(batch_id)
        counts = getattr(batch, "request_counts", None)
        detail = str(batch.status)
        if counts is not None:
            detail += f", {counts.completed}/{counts.total} done, {counts.failed} failed"
        if batch.status in _PENDING:
            return BatchStatus("pending", detail)
        return BatchStatus("failed" if batch.status in _FAILED else "done", detail)

    async def results(self, batch_id: str) -> dict[str, ChatResponse]:
        """Answers by custom id, from the output file and the error file."""
        batch = await self._retrieve(batch_id)
        found: dict[str, ChatResponse] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                content = await self._client.files.content(file_id)
            except Exception as e:
                raise self._translate(e) from None
            for line in content.text.splitlines():
                parsed = _parse_output_line(line)
                if parsed is not None:
                    found[parsed[0]] = parsed[1]
        return found


register_backend(backend_settings("openai"), lambda o: OpenAIBackend(o.base_url, o.api_key_env))
register_backend(backend_settings("openai-batch"), lambda o: OpenAIBatchBackend(o.base_url, o.api_key_env))
