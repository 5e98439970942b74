"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats, for client tests.

Endpoints: OpenAI `POST /v1/chat/completions`, `POST /v1/files` (multipart upload),
`POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/files/{id}/content`; Anthropic
`POST /v1/messages`, `POST /v1/messages/batches`, `GET /v1/messages/batches/{id}` and its
`/results`. Every request is recorded (method, path, headers, body). Chat answers come from
`reply(messages)`; `script` holds one-off behaviours consumed by the next chat requests (an error
status with headers, a delay, a raw malformed body). A batch reports itself finished on poll
number `complete_after`.

This module knows nothing about saescope; the tests drive it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

Reply = Callable[[list[dict[str, Any]]], str]


@dataclass
class Action:
    """A one-off behaviour for the next chat request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    """Raw body to send instead of a normal answer (malformed JSON, an error object)."""
    delay: float = 0.0
    """Seconds to wait before answering."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Batch:
    kind: str
    lines: list[dict[str, Any]]
    polls: int = 0


def default_reply(messages: list[dict[str, Any]]) -> str:
    return '{"explanation": "the token def", "confidence": 0.9}'


def openai_completion(text: str, model: str, n_prompt: int = 11, n_completion: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": n_prompt,
            "completion_tokens": n_completion,
            "total_tokens": n_prompt + n_completion,
        },
    }


def anthropic_message(text: str, model: str, n_prompt: int = 13, n_completion: int = 5) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": n_prompt, "output_tokens": n_completion},
    }


def _multipart_file(body: bytes, content_type: str) -> bytes:
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return content[:-2] if content.endswith(b"\r\n") else content
    raise ValueError("no file part")


class WireServer:
    """The server's state; `url` is its base URL (no trailing slash)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Action] = deque()
        self.reply: Reply = default_reply
        self.complete_after = 3
        self.in_flight = 0
        self.max_in_flight = 0
        self.batches: dict[str, Batch] = {}
        self.files: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    # ------------------------------------------------------------------ bookkeeping for tests

    def calls(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests with this method whose path starts with `path`."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path)]

    def everything_received(self) -> str:
        """Every header and body the server saw, as one text (to look for leaked secrets)."""
        with self.lock:
            return "\n".join(f"{r.headers}\n{r.body.decode(errors='replace')}" for r in self.requests)

    # ------------------------------------------------------------------ routes

    def _route(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(json.loads(body), openai=True)
        if method == "POST" and path == "/v1/messages":
            return self._chat(json.loads(body), openai=False)
        if method == "POST" and path == "/v1/files":
            return self._upload(_multipart_file(body, headers.get("content-type", "")))
        if method == "POST" and path == "/v1/batches":
            return self._create_batch("openai", json.loads(body))
        if method == "POST" and path == "/v1/messages/batches":
            return self._create_batch("anthropic", json.loads(body))
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            return self._openai_output(path.split("/")[3])
        if method == "GET" and path.startswith("/v1/messages/batches/") and path.endswith("/results"):
            return self._anthropic_results(path.split("/")[4])
        if method == "GET" and path.startswith("/v1/messages/batches/"):
            return self._poll(path.split("/")[4])
        if method == "GET" and path.startswith("/v1/batches/"):
            return self._poll(path.split("/")[3])
        return _json(404, {"error": {"message": f"no route {method} {path}"}})

    def _chat(self, body: dict[str, Any], openai: bool) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            action = self.script.popleft() if self.script else Action()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer(body, openai, action)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(
        self, body: dict[str, Any], openai: bool, action: Action
    ) -> tuple[int, dict[str, str], bytes]:
        if action.delay:
            time.sleep(action.delay)
        if action.body is not None or action.status != 200:
            payload = (
                action.body
                if action.body is not None
                else json.dumps({"error": {"message": "scripted"}}).encode()
            )
            return action.status, {"content-type": "application/json", **action.headers}, payload
        text = self.reply(body["messages"])
        answer = openai_completion(text, body["model"]) if openai else anthropic_message(text, body["model"])
        return _json(200, answer)

    def _upload(self, content: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            file_id = f"file-in-{len(self.files) + 1}"
            self.files[file_id] = content
        return _json(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": "saescope-batch.jsonl",
                "purpose": "batch",
                "status": "processed",
            },
        )

    def _create_batch(self, kind: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            batch_id = f"batch_{len(self.batches) + 1}"
            if kind == "openai":
                lines = [
                    json.loads(line)
                    for line in self.files[body["input_file_id"]].decode().splitlines()
                    if line
                ]
            else:
                lines = body["requests"]
            self.batches[batch_id] = Batch(kind, lines)
        return _json(200, self._batch_object(batch_id))

    def _poll(self, batch_id: str) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            batch = self.batches[batch_id]
            batch.polls += 1
        return _json(200, self._batch_object(batch_id))

    def _batch_object(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        done = batch.polls >= self.complete_after
        n = len(batch.lines)
        if batch.kind == "openai":
            return {
                "id": batch_id,
                "object": "batch",
                "endpoint": "/v1/chat/completions",
                "errors": None,
                "input_file_id": "file-in",
                "completion_window": "24h",
                "status": "completed" if done else "in_progress",
                "output_file_id": f"out-{batch_id}" if done else None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "request_counts": {"total": n, "completed": n if done else 0, "failed": 0},
            }
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if done else "in_progress",
            "request_counts": {
                "processing": 0 if done else n,
                "succeeded": n if done else 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": "2025-01-01T01:00:00Z" if done else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if done else None,
        }

    def _openai_output(self, file_id: str) -> tuple[int, dict[str, str], bytes]:
        batch = self.batches[file_id.removeprefix("out-")]
        out = []
        for i, line in enumerate(batch.lines):
            body = line["body"]
            answer = openai_completion(self.reply(body["messages"]), body["model"])
            response = {"status_code": 200, "request_id": f"req_{i}", "body": answer}
            out.append(
                {"id": f"batch_req_{i}", "custom_id": line["custom_id"], "response": response, "error": None}
            )
        return 200, {"content-type": "application/jsonl"}, "".join(json.dumps(o) + "\n" for o in out).encode()

    def _anthropic_results(self, batch_id: str) -> tuple[int, dict[str, str], bytes]:
        out = []
        for line in self.batches[batch_id].lines:
            params = line["params"]
            message = anthropic_message(self.reply(params["messages"]), params["model"])
            out.append({"custom_id": line["custom_id"], "result": {"type": "succeeded", "message": message}})
        return (
            200,
            {"content-type": "application/binary"},
            "".join(json.dumps(o) + "\n" for o in out).encode(),
        )

    # ------------------------------------------------------------------ plumbing

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlparse(self.path).path
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    server.requests.append(Recorded(self.command, path, headers, body, time.monotonic()))
                status, out_headers, payload = server._route(self.command, path, body, headers)
                try:
                    self.send_response(status)
                    for k, v in out_headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_POST = _serve

        return Handler

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _json(status: int, obj: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(obj).encode()


@contextmanager
def serving() -> Iterator[WireServer]:
    """A started `WireServer`, stopped afterwards."""
    server = WireServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
