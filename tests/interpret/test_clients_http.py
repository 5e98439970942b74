"""The clients over a real HTTP server on 127.0.0.1 speaking the OpenAI and Anthropic wire formats.

Each test starts the server (`wire.serving`), builds a client with the official SDK underneath,
and checks what crossed the wire: retries that wait for `retry-after`, timeouts, malformed
answers recorded as failures, batches polled until done and resumed after a kill without being
resubmitted, cache hits that send nothing, and a key that reaches the server but never a log,
the cache file or the batch state file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from saescope.cli import main
from saescope.errors import SaescopeError
from saescope.index.reader import Index
from saescope.interpret.clients import (
    AuthenticationFailedError,
    BatchClient,
    ChatClient,
    ChatRequest,
    EndpointUnreachableError,
    MissingAPIKeyError,
    RetryPolicy,
    make_client,
    parse_retry_after,
)
from saescope.interpret.clients.usage import NOT_OWN_ENDPOINT
from saescope.interpret.explainers import LLMExplainer

from .fakes import token_latent
from .wire import Action, WireServer, serving

KEY_ENV = "SAESCOPE_TEST_LLM_KEY"
SECRET = "sk-test-S3CRET-0123456789abcdef"
FAST = RetryPolicy(max_retries=2, base_delay=0.01, seed=0)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[WireServer]:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    caplog.set_level(logging.DEBUG)  # every library's debug logs, to look for the key in them
    with serving() as s:
        yield s
    assert SECRET not in caplog.text


def openai_client(server: WireServer, **options: object) -> ChatClient:
    client = make_client("openai", base_url=server.url + "/v1", api_key_env=KEY_ENV, retry=FAST, **options)  # type: ignore[arg-type]
    assert isinstance(client, ChatClient)
    return client


def ask(client: ChatClient | BatchClient, *requests: ChatRequest) -> list:
    async def go() -> list:
        async with client:
            return await client.chat_many(list(requests))

    return asyncio.run(go())


REQUEST = ChatRequest.of("gpt-4o-mini", "Which token?", system="You study features.")


def test_openai_request_on_the_wire(server: WireServer) -> None:
    [response] = ask(openai_client(server), REQUEST)
    assert response.ok and response.text.startswith('{"explanation"')
    assert (response.prompt_tokens, response.completion_tokens, response.cached) == (11, 7, False)
    [call] = server.calls("POST", "/v1/chat/completions")
    assert call.headers["authorization"] == f"Bearer {SECRET}"  # the key did reach the server
    body = call.json()
    assert body["messages"] == [
        {"role": "system", "content": "You study features."},
        {"role": "user", "content": "Which token?"},
    ]
    assert body["max_tokens"] == 512 and body["temperature"] == 0.0 and "response_format" not in body


def test_429_with_retry_after_waits_then_succeeds(server: WireServer) -> None:
    server.script.append(Action(status=429, headers={"retry-after": "0.5"}))
    client = openai_client(server)
    [response] = ask(client, REQUEST)
    first, second = server.calls("POST", "/v1/chat/completions")
    assert response.ok
    assert second.at - first.at >= 0.45  # waited as the server asked (our backoff alone is 10 ms)
    assert second.headers["x-stainless-retry-count"] == "0"  # the SDK's own retries are off: we retried
    assert client.usage.total().calls == 1 and client.usage.total().failed == 0


def test_server_errors_are_retried_until_the_limit(server: WireServer) -> None:
    server.script.extend(Action(status=503) for _ in range(3))
    [response] = ask(openai_client(server), REQUEST)
    assert (
        not response.ok
        and "HTTP 503" in (response.error or "")
        and "after 2 retries" in (response.error or "")
    )
    assert len(server.calls("POST", "/v1/chat/completions")) == 3


def test_timeout_is_retried_then_recorded(server: WireServer) -> None:
    server.script.extend([Action(delay=1.5), Action(delay=1.5)])
    client = make_client(
        "openai", base_url=server.url + "/v1", api_key_env=KEY_ENV, timeout=0.3, retry=RetryPolicy(1, 0.01)
    )
    [response] = ask(client, REQUEST)
    assert response.error == "timed out after 0.3s (after 1 retries)"
    assert len(server.calls("POST", "/v1/chat/completions")) == 2


def test_malformed_answers_are_recorded_as_failures(server: WireServer) -> None:
    record = token_latent(" def")
    server.reply = lambda messages: "The feature is about def {but I forgot the JSON"
    server.script.append(Action(body=b'{"choices": [{"message": {"content": "unterminated'))
    explainer = LLMExplainer(openai_client(server, max_concurrency=1), "gpt-4o-mini")

    async def twice() -> list:
        return [await explainer.explain(record), await explainer.explain(record)]

    broken_body, broken_answer = asyncio.run(twice())
    assert not broken_body.ok and "malformed response" in (broken_body.error or "")
    assert (
        not broken_answer.ok and broken_answer.text == "" and "no JSON object" in (broken_answer.error or "")
    )
    assert broken_answer.raw.startswith("The feature is about def")  # the raw answer is kept for inspection
    assert server.calls("POST", "/v1/chat/completions")[0].json()["response_format"] == {
        "type": "json_object"
    }


def test_concurrency_limit_holds(server: WireServer) -> None:
    server.script.extend(Action(delay=0.1) for _ in range(6))
    requests = [ChatRequest.of("gpt-4o-mini", f"Question {i}") for i in range(6)]
    responses = ask(openai_client(server, max_concurrency=2), *requests)
    assert all(r.ok for r in responses) and server.max_in_flight == 2


def test_cache_hit_on_rerun_sends_nothing(server: WireServer, tmp_path: Path) -> None:
    cache = tmp_path / "responses.jsonl"
    [first] = ask(openai_client(server, cache=cache), REQUEST)
    rerun = openai_client(server, cache=cache)
    [again] = ask(rerun, REQUEST)
    assert again.cached and again.text == first.text and not first.cached
    assert len(server.calls("POST", "/v1/chat/completions")) == 1
    assert rerun.usage.summary().startswith("0 calls (1 cached, 0 failed)")
    # another model, or another endpoint, is another request
    ask(
        openai_client(server, cache=cache),
        ChatRequest.of("gpt-4o", "Which token?", system="You study features."),
    )
    assert len(server.calls("POST", "/v1/chat/completions")) == 2
    text = cache.read_text()
    assert SECRET not in text and len(text.splitlines()) == 2


def test_failures_are_not_cached(server: WireServer, tmp_path: Path) -> None:
    cache = tmp_path / "responses.jsonl"
    server.script.append(Action(status=400))
    [failed] = ask(openai_client(server, cache=cache), REQUEST)
    [ok] = ask(openai_client(server, cache=cache), REQUEST)
    assert not failed.ok and "HTTP 400" in (failed.error or "") and ok.ok and not ok.cached


def test_rejected_key_is_one_line_without_the_key(server: WireServer) -> None:
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}"}}).encode()
    server.script.append(Action(status=401, body=echo))
    with pytest.raises(AuthenticationFailedError) as info:
        ask(openai_client(server), REQUEST)
    message = str(info.value)
    assert f"${KEY_ENV}" in message and "HTTP 401" in message
    assert SECRET not in message and "\n" not in message and info.value.__cause__ is None


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MissingAPIKeyError, match=KEY_ENV):
        make_client("openai", base_url="http://127.0.0.1:1/v1", api_key_env=KEY_ENV)
    with pytest.raises(MissingAPIKeyError, match=KEY_ENV):
        make_client("anthropic-batch", api_key_env=KEY_ENV, state_path="unused.json")
    # servers that need no key (vLLM, Ollama) are fine without one
    assert make_client("openai", base_url="http://127.0.0.1:1/v1", api_key_env=None)


def test_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client("openai", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=KEY_ENV, retry=FAST)
    with pytest.raises(EndpointUnreachableError) as info:
        ask(client, REQUEST)
    message = str(info.value)
    assert isinstance(info.value, SaescopeError) and f"127.0.0.1:{port}" in message and "\n" not in message
    assert SECRET not in message


def test_anthropic_messages_on_the_wire(server: WireServer) -> None:
    client = make_client("anthropic", base_url=server.url, api_key_env=KEY_ENV, retry=FAST)
    server.script.append(Action(status=529, headers={"retry-after": "0"}))  # overloaded, then fine
    [response] = ask(client, ChatRequest.of("claude-haiku-4-5", "Which token?", system="You study features."))
    assert response.ok and (response.prompt_tokens, response.completion_tokens) == (13, 5)
    overloaded, call = server.calls("POST", "/v1/messages")
    assert overloaded.json() == call.json()  # the same request, retried
    assert SECRET in (
        call.headers.get("x-api-key"),
        call.headers.get("authorization", "").removeprefix("Bearer "),
    )
    body = call.json()
    assert body["system"] == "You study features."
    assert body["messages"] == [{"role": "user", "content": "Which token?"}]
    assert "temperature" not in body
    # a server other than api.anthropic.com: counted, but its price is not the table's
    assert client.usage.summary().endswith(f"cost unpriced (claude-haiku-4-5: {NOT_OWN_ENDPOINT})")


# ----------------------------------------------------------------------------- pricing


def test_a_custom_base_url_is_unpriced_even_for_a_model_in_the_table(server: WireServer) -> None:
    client = openai_client(server)  # gpt-4o-mini, which the price table knows, at a local server
    ask(client, REQUEST)
    assert not client.priced and client.usage.cost() is None
    assert client.usage.summary() == (
        "1 calls (0 cached, 0 failed), 11 prompt + 7 completion tokens, "
        f"cost unpriced (gpt-4o-mini: {NOT_OWN_ENDPOINT})"
    )


def test_only_the_providers_own_endpoint_is_priced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    state = tmp_path / "state.json"
    priced = {
        ("openai", None): True,
        ("openai", "https://api.openai.com/v1/"): True,
        ("openai", "http://localhost:8000/v1"): False,  # a local vLLM serving a model of the same name
        ("openai", "https://openrouter.ai/api/v1"): False,
        ("openai-batch", None): True,
        ("anthropic", None): True,
        ("anthropic-batch", "http://127.0.0.1:9/"): False,
    }
    for (backend, url), expected in priced.items():
        client = make_client(backend, base_url=url, api_key_env=KEY_ENV, state_path=state)
        assert client.priced is expected, (backend, url)
    local = make_client("local")
    assert isinstance(local, ChatClient) and not local.priced  # free instead: no price applies


# ----------------------------------------------------------------------------- logging


@pytest.fixture
def sdk_loggers() -> Iterator[None]:
    """The level of every logger the CLI sets, put back afterwards."""
    names = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbose", [False, True])
def test_sdk_request_lines_are_logged_only_with_verbose(
    server: WireServer,
    index_dir: Path,
    sdk_loggers: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    verbose: bool,
) -> None:
    latent = next(i for i, n in enumerate(Index(index_dir).stats().column("count").to_pylist()) if n >= 10)
    args = ["interpret", str(index_dir), "--explainer", "llm", "--latents", str(latent), "--scorers", "stats"]
    args += ["--backend", "openai", "--base-url", server.url + "/v1", "--api-key-env", KEY_ENV, "--no-cache"]
    code = main(args + (["-v"] if verbose else []))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert server.calls("POST", "/v1/chat/completions")  # the model was asked over HTTP
    # one INFO line per request from the SDK's HTTP client (httpx2), and the SDK's own debug lines
    sdk_lines = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("httpx2", "openai")]
    assert any(line.startswith("HTTP Request: POST") for line in sdk_lines) is verbose
    assert bool(sdk_lines) is verbose
    # the answer quotes no token: the statistics scorer cannot test it, and says so; the run succeeds
    assert "statistics: not testable" in out and f"cost unpriced (gpt-4o-mini: {NOT_OWN_ENDPOINT})" in out


# ----------------------------------------------------------------------------- batches


def batch_client(server: WireServer, kind: str, state: Path, cache: Path | None = None) -> BatchClient:
    base = server.url + "/v1" if kind == "openai" else server.url
    client = make_client(
        f"{kind}-batch",  # type: ignore[arg-type]
        base_url=base,
        api_key_env=KEY_ENV,
        state_path=state,
        cache=cache,
        retry=FAST,
        poll_interval=0.02,
    )
    assert isinstance(client, BatchClient)
    return client


def batch_requests(kind: str) -> list[ChatRequest]:
    model = "gpt-4o-mini" if kind == "openai" else "claude-haiku-4-5"
    return [ChatRequest.of(model, f"Question {i}") for i in range(3)]


def submissions(server: WireServer) -> int:
    return len(server.calls("POST", "/v1/batches")) + len(server.calls("POST", "/v1/messages/batches"))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_batch_completes_on_the_third_poll(server: WireServer, tmp_path: Path, kind: str) -> None:
    server.reply = lambda messages: f"answer to {messages[-1]['content']}"
    client = batch_client(server, kind, tmp_path / "batch.json")
    responses = ask(client, *batch_requests(kind))
    assert [r.text for r in responses] == [
        f"answer to Question {i}" for i in range(3)
    ]  # mapped back in order
    [batch] = server.batches.values()
    assert batch.polls == 3 + 1  # done on the third poll; one more read to find the results
    assert submissions(server) == 1
    assert json.loads((tmp_path / "batch.json").read_text())["batches"] == []  # collected, forgotten
    assert client.usage.total().calls == 3
    if kind == "openai":
        [upload] = server.calls("POST", "/v1/files")
        assert b'"custom_id"' in upload.body and b"/v1/chat/completions" in upload.body


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_killed_batch_resumes_polling_without_resubmitting(
    server: WireServer, tmp_path: Path, kind: str
) -> None:
    state, cache = tmp_path / "batch.json", tmp_path / "cache.jsonl"
    server.complete_after = 10_000  # the provider takes its time; the run is killed while it waits

    async def killed() -> None:
        client = batch_client(server, kind, state, cache)
        await asyncio.wait_for(client.chat_many(batch_requests(kind)), timeout=0.5)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(killed())
    saved = json.loads(state.read_text())
    [pending] = saved["batches"]
    assert pending["id"] in server.batches and len(pending["keys"]) == 3
    polls_before = server.batches[pending["id"]].polls
    assert polls_before >= 2

    server.complete_after = polls_before + 2
    resumed = batch_client(server, kind, state, cache)
    responses = ask(resumed, *batch_requests(kind))
    assert all(r.ok and not r.cached for r in responses)
    assert submissions(server) == 1  # nothing resubmitted
    assert json.loads(state.read_text())["batches"] == []
    # a third run finds every answer in the cache and sends nothing at all
    n_requests = len(server.requests)
    again = ask(batch_client(server, kind, state, cache), *batch_requests(kind))
    assert all(r.cached for r in again) and len(server.requests) == n_requests
    for path in (state, cache):
        assert SECRET not in path.read_text()


def test_batch_state_of_another_backend_is_refused(server: WireServer, tmp_path: Path) -> None:
    state = tmp_path / "batch.json"
    state.write_text(json.dumps({"format": 1, "backend": "anthropic", "base_url": server.url, "batches": []}))
    with pytest.raises(SaescopeError, match="belongs to another backend"):
        ask(batch_client(server, "openai", state), *batch_requests("openai"))


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:25 GMT"}, now=now) == pytest.approx(5.0)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
