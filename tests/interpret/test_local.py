"""The local transformers backend on a tiny random-init Llama: the plumbing, not the prose."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from saescope.interpret.clients import ChatClient, ChatRequest, ChatResponse, Message, make_client
from saescope.interpret.clients.local import LocalBackend, preload, prompt_text
from saescope.interpret.explainers import LLMExplainer

from .fakes import token_latent

TEMPLATE = (
    "{% for m in messages %}<bos>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a chat template (the shared fixture's tokenizer has none)."""
    folder = tmp_path_factory.mktemp("chat_model") / "tiny-chat"
    shutil.copytree(tiny_model_dir, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = TEMPLATE
    config_path.write_text(json.dumps(config))
    return folder


def local_client() -> ChatClient:
    client = make_client("local", timeout=120)
    assert isinstance(client, ChatClient)
    return client


@pytest.mark.parametrize("templated", [False, True])
def test_local_model_answers_with_token_counts(
    tiny_model_dir: Path, chat_model_dir: Path, templated: bool, tmp_path: Path
) -> None:
    model = str(chat_model_dir if templated else tiny_model_dir)
    request = ChatRequest.of(model, "Which token?", system="Be brief.", max_tokens=6)
    client = make_client("local", cache=tmp_path / "cache.jsonl")

    async def go() -> list:
        return [await client.chat(request), await client.chat(request)]

    response, again = asyncio.run(go())
    assert response.ok and isinstance(response.text, str)
    assert response.prompt_tokens > 10 and 1 <= response.completion_tokens <= 6
    assert again.cached and again.text == response.text
    summary = client.usage.summary()
    assert summary.startswith("1 calls (1 cached, 0 failed)") and "no price" not in summary  # local is free


def test_local_model_prompt_uses_the_chat_template(tiny_model_dir: Path, chat_model_dir: Path) -> None:
    request = ChatRequest.of("unused", "Which token?", system="Be brief.")
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    chat = AutoTokenizer.from_pretrained(chat_model_dir)
    assert prompt_text(plain, request) == ("System: Be brief.\n\nUser: Which token?\n\nAssistant:", False)
    assert prompt_text(chat, request) == ("<bos>system: Be brief.\n<bos>user: Which token?\nassistant:", True)


def test_garbage_from_a_local_model_is_a_recorded_failure(tiny_model_dir: Path) -> None:
    explainer = LLMExplainer(local_client(), str(tiny_model_dir), n_examples=4, max_tokens=8)
    explanation = asyncio.run(explainer.explain(token_latent(" def", n_train=10)))
    assert not explanation.ok and explanation.text == ""
    assert explanation.error and "JSON" in explanation.error
    assert explanation.n_examples == 4 and explanation.model == str(tiny_model_dir)


def test_a_final_assistant_message_is_continued(tiny_model_dir: Path, chat_model_dir: Path) -> None:
    begun = ChatRequest(
        "unused",
        (Message("system", "Be brief."), Message("user", "Which token?"), Message("assistant", '{"a": "')),
    )
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    chat = AutoTokenizer.from_pretrained(chat_model_dir)
    assert prompt_text(plain, begun) == (
        'System: Be brief.\n\nUser: Which token?\n\nAssistant: {"a": "',
        False,
    )
    assert prompt_text(chat, begun) == (
        '<bos>system: Be brief.\n<bos>user: Which token?\n<bos>assistant: {"a": "',
        True,
    )


class Continuing:
    """Continues a begun answer the way a model kept to the format would."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse('the token \\"def\\"", "confidence": 0.7}\nAnything after.', 10, 5)

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return [await self.chat(r) for r in requests]


def test_a_prefilled_explanation_is_read_from_the_whole_answer() -> None:
    llm = Continuing()
    explainer = LLMExplainer(llm, "m", n_examples=4, prefill=True)
    explanation = asyncio.run(explainer.explain(token_latent(" def", n_train=10)))
    assert explanation.ok and explanation.text == 'the token "def"' and explanation.confidence == 0.7
    assert explanation.raw.startswith('{"explanation": "the token')
    assert llm.requests[0].messages[-1] == Message("assistant", '{"explanation": "')
    assert explainer.prompt_version.endswith("+prefill")
    with pytest.raises(ValueError, match="prefill or chain_of_thought"):
        LLMExplainer(llm, "m", prefill=True, chain_of_thought=True)


def test_a_local_model_continues_a_prefilled_answer(tiny_model_dir: Path) -> None:
    explainer = LLMExplainer(local_client(), str(tiny_model_dir), n_examples=4, max_tokens=6, prefill=True)
    explanation = asyncio.run(explainer.explain(token_latent(" def", n_train=10)))
    assert explanation.raw.startswith('{"explanation": "') and len(explanation.raw) > len('{"explanation": "')
    assert explanation.ok or "JSON" in (explanation.error or "")  # random weights: usually unreadable


def test_preloading_puts_the_model_in_memory_before_any_request(tiny_model_dir: Path) -> None:
    client = local_client()
    backend = client.backend
    assert isinstance(backend, LocalBackend) and not backend._models
    asyncio.run(preload(client, str(tiny_model_dir)))
    assert str(tiny_model_dir) in backend._models
    asyncio.run(preload(Continuing(), "anything"))  # no local backend: nothing to do
