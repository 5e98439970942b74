"""Anthropic's Messages API, online and as Message Batches, through the official `anthropic` package.

`AnthropicBackend` sends one `/v1/messages` request (`AsyncAnthropic`, its own retries off —
`ChatClient` retries); system messages go into the `system` field. `AnthropicBatchBackend` submits
requests as one Message Batch, polls its `processing_status`, and streams its results back by
custom id. The key is read from the environment variable the caller names (default
`ANTHROPIC_API_KEY`) and lives only inside the SDK client. The API has no JSON mode: `json_mode` is
ignored (the prompts ask for JSON themselves). The current SDK has no `temperature` parameter, so
the request's temperature is sent only when asked for (`send_temperature=True`, for models that
still accept it); otherwise the model samples at its default and the response cache keeps reruns
reproducible.
Registered as the backends `anthropic` and `anthropic-batch`, priced only at api.anthropic.com.

This module knows nothing about caching, retries or prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...config.backends import ANTHROPIC_URL, backend_settings
from .base import BatchStatus, ChatRequest, ChatResponse
from .errors import RequestFailedError
from .registry import register_backend
from .sdk import SDKClient, as_dict, import_sdk, read_api_key


def messages_body(request: ChatRequest, send_temperature: bool = False) -> dict[str, Any]:
    """The JSON body of a Messages request (`temperature` only with `send_temperature`)."""
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
    }
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["system"] = system
    if send_temperature:
        body["temperature"] = request.temperature
    return body


def parse_message(body: Mapping[str, Any]) -> ChatResponse:
    """A `ChatResponse` from a Messages response body; RequestFailedError when it has no text."""
    blocks = body.get("content")
    if not isinstance(blocks, list):
        raise RequestFailedError("malformed response: no content")
    texts = [b.get("text", "") for b in blocks if isinstance(b, Mapping) and b.get("type") == "text"]
    if not texts:
        raise RequestFailedError(f"no text in the answer (stop_reason {body.get('stop_reason')})")
    usage = body.get("usage") or {}
    return ChatResponse(
        "".join(texts), int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    )


class _AnthropicBase(SDKClient):
    name = "anthropic"

    def __init__(
        self,
        base_url: str | None = None,
        api_key_env: str = "ANTHROPIC_API_KEY",
        send_temperature: bool = False,
    ) -> None:
        self._sdk = import_sdk("anthropic")
        self.send_temperature = send_temperature
        self.base_url = (base_url or ANTHROPIC_URL).rstrip("/")
        self.api_key_env = api_key_env
        self._secret = read_api_key(api_key_env, "anthropic")
        self._client = self._sdk.AsyncAnthropic(api_key=self._secret, base_url=self.base_url, max_retries=0)


class AnthropicBackend(_AnthropicBase):
    """Online Messages API."""

    async def complete(self, request: ChatRequest, timeout: float) -> ChatResponse:
        """Send one request."""
        try:
            body = messages_body(request, self.send_temperature)
            extra = {"temperature": body.pop("temperature")} if "temperature" in body else None
            message = await self._client.messages.create(**body, extra_body=extra, timeout=timeout)
        except Exception as e:
            raise self._translate(e) from None
        return parse_message(as_dict(message))


class AnthropicBatchBackend(_AnthropicBase):
    """Message Batches (half price, answers within 24 h)."""

    discount = 0.5

    async def submit(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        """Create a Message Batch of the requests; returns its id."""
        requests = [{"custom_id": k, "params": messages_body(r, self.send_temperature)} for k, r in items]
        try:
            batch = await self._client.messages.batches.create(requests=requests)
        except Exception as e:
            raise self._translate(e) from None
        return str(batch.id)

    async def poll(self, batch_id: str) -> BatchStatus:
        """The batch's status (`ended` is done; Anthropic reports failures per request)."""
        try:
            batch = await self._client.messages.batches.retrieve(batch_id)
        except Exception as e:
            raise self._translate(e) from None
        counts = getattr(batch, "request_counts", None)
        detail = str(batch.processing_status)
        if counts is not None:
            detail += (
                f", {counts.succeeded} succeeded, {counts.errored} errored, {counts.processing} processing"
            )
        return BatchStatus("done" if batch.processing_status == "ended" else "pending", detail)

    async def results(self, batch_id: str) -> dict[str, ChatResponse]:
        """Answers by custom id."""
        found: dict[str, ChatResponse] = {}
        try:
            async for entry in await self._client.messages.batches.results(batch_id):
                found[str(entry.custom_id)] = self._answer(as_dict(entry.result))
        except Exception as e:
            raise self._translate(e) from None
        return found

    @staticmethod
    def _answer(result: Mapping[str, Any]) -> ChatResponse:
        if result.get("type") != "succeeded":
            error = (result.get("error") or {}).get("error") or result.get("error") or {}
            detail = error.get("message") if isinstance(error, Mapping) else error
            return ChatResponse("", error=f"batch request {result.get('type')}: {detail or 'no detail'}")
        try:
            return parse_message(result.get("message") or {})
        except RequestFailedError as e:
            return ChatResponse("", error=str(e))


register_backend(
    backend_settings("anthropic"),
    lambda o: AnthropicBackend(o.base_url, o.api_key_env or "ANTHROPIC_API_KEY"),
)
register_backend(
    backend_settings("anthropic-batch"),
    lambda o: AnthropicBatchBackend(o.base_url, o.api_key_env or "ANTHROPIC_API_KEY"),
)
