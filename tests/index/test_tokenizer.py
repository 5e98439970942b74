"""`Index.tokenizer` loads under one lock shared by every `Index`: transformers' lazy imports race
when several threads load a tokenizer at once (ImportError and a crash were seen in the server)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from saescope import models
from saescope.index.reader import Index


def test_threads_never_load_tokenizers_at_once(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inside, most, lock = 0, 0, threading.Lock()
    real = models.load_tokenizer

    def slow_load(settings: object) -> object:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)  # long enough for every other thread to arrive meanwhile
        with lock:
            inside -= 1
        return real(settings)  # type: ignore[arg-type]

    monkeypatch.setattr(models, "load_tokenizer", slow_load)
    indexes = [Index(built) for _ in range(4)]
    shared = Index(built)
    loaded: list[object] = []
    threads = [
        threading.Thread(target=lambda i=i: loaded.append(i.tokenizer)) for i in [*indexes, shared, shared]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 6 and most == 1
    assert loaded.count(shared.tokenizer) == 2  # one instance loads its tokenizer once
    assert shared.decode([5, 6]) == indexes[0].decode([5, 6])
