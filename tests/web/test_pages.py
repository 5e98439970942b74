"""The overview page: every count labelled with the tokens it covers, in words, not snake_case keys."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from saescope.index.reader import Index

from .servers import Running


@pytest.fixture(scope="module")
def http(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def test_counts_say_which_tokens_they_cover(http: httpx.Client, run: Path) -> None:
    html = http.get("/").text
    evaluation = json.loads((run / "sae" / "eval.json").read_text())
    index = Index(run / "index")
    eval_tokens, indexed = f"{evaluation['tokens']:,}", f"{index.header.tokens:,}"
    assert eval_tokens != indexed  # two token sets: the page must tell them apart
    assert f"Sparsity (on the {eval_tokens} evaluation tokens)" in html
    assert "dead latents (never fired on these tokens)" in html
    dead = int(index.header.summary["dead"])
    assert re.search(rf"dead latents \(never fired on the {indexed} indexed tokens\)</td><td>{dead:,}<", html)
    assert "fraction of variance unexplained (FVU)" in html


def test_no_snake_case_keys_on_the_overview(http: httpx.Client) -> None:
    cells = re.findall(r"<td>([^<]*)</td>", http.get("/").text)
    assert cells and not [c for c in cells if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", c)]
