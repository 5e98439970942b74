"""An on-disk cache of answers, so that a rerun asks nothing it has asked before.

One JSON object per line, `{"key": <request key>, "model": ..., "response": {...}}`, appended with
a single `write` to a file opened in append mode — concurrent writers (tasks, threads, processes)
never interleave inside a line on a local file system, and a line cut short by a killed run is
skipped on the next load (the next answer starts on a new line). Only successful answers are
stored; the key is the SHA-256 of the whole request with the backend's name and URL
(`ChatRequest.key`), never an API key, and nothing else about the request is written.

This module knows nothing about providers or retries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .base import ChatResponse

logger = logging.getLogger(__name__)


class ResponseCache:
    """Answers by request key, backed by a JSON-lines file (created on the first answer stored)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, ChatResponse] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, ChatResponse]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, ChatResponse] = {}
        skipped = 0
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        entries[str(row["key"])] = ChatResponse.from_dict(row["response"], cached=True)
                    except (ValueError, KeyError, TypeError):
                        skipped += 1
        if skipped:
            logger.warning("response cache %s: skipped %d unreadable line(s)", self.path, skipped)
        self._entries = entries
        return entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._load()

    def get(self, key: str) -> ChatResponse | None:
        """The stored answer (marked `cached`), or None."""
        with self._lock:
            return self._load().get(key)

    def put(self, key: str, response: ChatResponse, model: str = "") -> None:
        """Store a successful answer (failures are not stored, so that a rerun asks again)."""
        if not response.ok:
            return
        line = json.dumps({"key": key, "model": model, "response": response.to_dict()}, ensure_ascii=False)
        data = (line + "\n").encode("utf-8")
        with self._lock:
            entries = self._load()
            if key in entries:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # after a line cut short: start afresh
                    data = b"\n" + data
                os.write(fd, data)
            finally:
                os.close(fd)
            entries[key] = response._replace(cached=True)
