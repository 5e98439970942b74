"""Server-sent events: the streamed response of a steering generation.

`EventStream` is Starlette's streaming response with one guarantee added: however the stream
ends — finished, failed, or the client gone (Starlette cancels the sending task when it sees the
disconnect) — the event iterator is closed at once, so its `finally` frees the generation slot and
closes the generators then, not whenever the garbage collector gets to it.

This module knows nothing about what the events say.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send


def sse(event: dict[str, Any]) -> str:
    """One event as a server-sent-events message (`data: JSON`, one line; JSON escapes newlines)."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


class EventStream(StreamingResponse):
    """A `text/event-stream` response whose iterator is always closed (see the module docstring)."""

    media_type = "text/event-stream"

    def __init__(self, content: Any) -> None:
        super().__init__(content, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


__all__ = ["EventStream", "sse"]
