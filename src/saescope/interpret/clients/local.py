"""A local transformers model as a chat backend: offline, free, and slow on a CPU.

The model named in each request (`ChatRequest.model`: the embedded default `smollm2-135m`, a local
folder, a `.gguf` file or a Hugging Face id in the local cache) is loaded once with
`saescope.models.load_model` and kept. Prompts go through the tokenizer's chat template (a plain
`Role: text` transcript when it has none); generation is greedy at temperature 0 and sampled
otherwise. A conversation ending in an assistant message is continued from it (a *prefill*, as
Anthropic's API does: `{"explanation": "` keeps a small model to the JSON asked for); the answer
is the continuation alone. Loading and generating run in a worker thread, one generation at a
time, so the event loop stays free. A timed-out request stops waiting, but the generation
already running in its thread finishes before the next one starts.
Registered as the backend `local` (free).

This module knows nothing about caching, retries or prompts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from ...config.backends import backend_settings
from .base import ChatRequest, ChatResponse
from .errors import RequestFailedError
from .registry import register_backend

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = backend_settings("local").default_model
"""The model the `local` backend asks when none is named (the embedded SmolLM2-135M-Instruct)."""


def plain_transcript(messages: list[dict[str, str]]) -> str:
    """A prompt for a tokenizer without a chat template: `System: …`, `User: …`, then `Assistant:`
    (followed by the final assistant message's text when the conversation ends in one)."""
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    if messages and messages[-1]["role"] == "assistant":
        return "\n\n".join(turns)
    return "\n\n".join([*turns, "Assistant:"])


def prompt_text(tokenizer: Any, request: ChatRequest) -> tuple[str, bool]:
    """The prompt the model sees, and whether it came from the tokenizer's chat template (which then
    holds the special tokens itself). A final assistant message is left open, to be continued."""
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    if getattr(tokenizer, "chat_template", None):
        prefilled = bool(messages) and messages[-1]["role"] == "assistant"
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not prefilled, continue_final_message=prefilled
        )
        return str(text), True
    return plain_transcript(messages), False


async def preload(client: Any, model: str) -> None:
    """Load `model` into `client`'s local backend, when it has one (loading is not generation: it
    should not count against a request's timeout)."""
    backend = getattr(client, "backend", None)
    if isinstance(backend, LocalBackend):
        await asyncio.to_thread(backend.load, model)


class LocalBackend:
    """Chat completions from a local causal LM (transformers), in a worker thread."""

    name = "local"
    base_url = "local"
    discount = 0.0
    """Local tokens cost nothing."""

    def __init__(self, device: str = "cpu", model_dtype: str = "auto") -> None:
        self.device = device
        self.model_dtype = model_dtype
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _loaded(self, model: str) -> Any:
        from saescope.config import GenerationSettings
        from saescope.models import load_model

        with self._lock:
            if model not in self._models:
                settings = GenerationSettings(model=model, device=self.device, model_dtype=self.model_dtype)  # type: ignore[arg-type]
                logger.info("loading local model %s on %s", model, self.device)
                self._models[model] = load_model(settings)
            return self._models[model]

    def load(self, model: str) -> None:
        """Load `model` now, so that the first request's timeout covers its generation only."""
        self._loaded(model)

    def _prompt_ids(self, tokenizer: Any, request: ChatRequest) -> Any:
        text, templated = prompt_text(tokenizer, request)
        return tokenizer(text, add_special_tokens=not templated, return_tensors="pt")

    def _generate(self, request: ChatRequest) -> ChatResponse:
        import torch

        loaded = self._loaded(request.model)
        tokenizer, model = loaded.tokenizer, loaded.model
        inputs = self._prompt_ids(tokenizer, request).to(loaded.device)
        sample = request.temperature > 0
        options: dict[str, Any] = {"do_sample": sample, "max_new_tokens": request.max_tokens}
        if sample:
            options["temperature"] = request.temperature
        else:  # silence the model's own sampling defaults under greedy decoding
            options.update(temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode():
            out = model.generate(**inputs, pad_token_id=tokenizer.pad_token_id, **options)
        n_prompt = int(inputs["input_ids"].shape[1])
        new = out[0, n_prompt:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return ChatResponse(text, n_prompt, int(new.shape[0]))

    async def complete(self, request: ChatRequest, timeout: float) -> ChatResponse:
        """Generate an answer in a worker thread (the caller enforces `timeout`)."""
        if not request.model:
            raise RequestFailedError("no local model named in the request")
        return await asyncio.to_thread(self._generate, request)

    async def aclose(self) -> None:
        """Forget the loaded models."""
        with self._lock:
            self._models.clear()


register_backend(backend_settings("local"), lambda o: LocalBackend(o.device))
