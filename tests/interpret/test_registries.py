"""Scorers and backends are plug-ins: registered in a test, offered by the CLI, run by `saescope
interpret` — and an explanation that a scorer cannot test is still an explanation.

The fake backend (`ScriptedBackend`) answers as `ScriptedLLM` does, or with one fixed explanation;
it is wrapped in the real `ChatClient` (cache, usage meter), as any registered backend is.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from saescope import cli
from saescope.config import backends as declared_backends
from saescope.config import scorers as declared_scorers
from saescope.config.backends import BackendSettings
from saescope.config.interpret import InterpretConfig
from saescope.config.scorers import ScorerSettings
from saescope.errors import SaescopeError
from saescope.interpret import scorer_registry
from saescope.interpret.clients import registry as backend_registry
from saescope.interpret.clients.base import LLM, ChatRequest, ChatResponse
from saescope.interpret.clients.registry import backend_names, register_backend
from saescope.interpret.command import interpret_latents, make_scorers, open_client
from saescope.interpret.explainers import Explanation
from saescope.interpret.prompts import EXPLAIN_SYSTEM
from saescope.interpret.records import LatentRecord
from saescope.interpret.scorer_registry import register_scorer, scorer_names
from saescope.interpret.scorers import Score
from saescope.interpret.tables import read_interpretations

from .fakes import ScriptedLLM

LEGAL = "descriptions of legal contracts"
NO_RULES = "the explanation quotes no tokens and states no token rules"


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The scorer and backend registries (declarations and factories), as they were before the test
    registered anything."""
    scorer_registry.built_names(), backend_registry.built_names()  # the built-in ones bound
    monkeypatch.setattr(declared_scorers, "SCORERS", dict(declared_scorers.SCORERS))
    monkeypatch.setattr(declared_backends, "BACKENDS", dict(declared_backends.BACKENDS))
    monkeypatch.setattr(scorer_registry, "_FACTORIES", dict(scorer_registry._FACTORIES))
    monkeypatch.setattr(backend_registry, "_FACTORIES", dict(backend_registry._FACTORIES))
    yield


class ScriptedBackend:
    """A `Backend` answering as `ScriptedLLM` does, or every explanation request with `explanation`."""

    name = "scripted"
    base_url = "scripted://"

    def __init__(self, explanation: str | None = None) -> None:
        self.explanation = explanation
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, timeout: float) -> ChatResponse:
        self.requests.append(request)
        if self.explanation is not None and request.messages[0].content == EXPLAIN_SYSTEM:
            return ChatResponse(json.dumps({"explanation": self.explanation, "confidence": 0.6}), 100, 10)
        return ChatResponse(ScriptedLLM().answer(request), 100, 10)

    async def aclose(self) -> None:
        pass


class AskedScorer:
    """A plug-in scorer: asks the model once per latent whether it read the explanation."""

    name = "asked"

    def __init__(self, client: LLM, model: str) -> None:
        self.client = client
        self.model = model

    async def score(
        self, record: LatentRecord, explanation: Explanation, baseline: Any = None
    ) -> list[Score]:
        response = await self.client.chat(ChatRequest.of(self.model, f"Did you read {explanation.text!r}?"))
        value = 1.0 if response.ok else math.nan
        return [Score(record.latent, self.name, "answered", value, *[math.nan] * 5, 1, {}, support=1)]


SCRIPTED = BackendSettings("scripted", "scripted-model")


def register_fakes(backend: ScriptedBackend) -> None:
    register_backend(SCRIPTED, lambda options: backend)

    @register_scorer(ScorerSettings("asked", asks_llm=True))
    def asked(cfg: InterpretConfig, client: LLM | None) -> AskedScorer:
        assert client is not None
        return AskedScorer(client, cfg.llm_model)


def live(index_dir: Path, n: int) -> list[int]:
    counts = pq.read_table(index_dir / "latents.parquet").column("count").to_numpy()
    return [int(i) for i in np.flatnonzero(counts >= 10)[:n]]


def test_a_registered_scorer_and_backend_run_through_interpret(index_dir: Path, registries: None) -> None:
    backend = ScriptedBackend()
    register_fakes(backend)
    chosen = live(index_dir, 2)
    cfg = InterpretConfig(
        index=index_dir,
        explainer="llm",
        backend="scripted",
        scorers=("asked", "stats"),
        latents=",".join(map(str, chosen)),
    )
    assert cfg.llm_model == "scripted-model" and cfg.needs_llm
    result = interpret_latents(cfg)
    assert [r.latent for r in result.latents] == chosen and all(r.status == "new" for r in result.latents)
    stored = read_interpretations(index_dir)
    assert {i.explanation.model for i in stored} == {"scripted-model"}
    assert {(s.scorer, s.metric) for i in stored for s in i.scores if s.scorer == "asked"} == {
        ("asked", "answered")
    }
    assert len(backend.requests) == result.usage.calls == 2 * 2  # an explanation and a question per latent
    assert result.usage.cost is None and "cost unpriced" in result.usage.line  # a plug-in is not priced
    assert "asked (n=1): answered 1.000 (n=1, wide)" in result.render()


def test_the_command_builds_registered_backends_and_scorers(tmp_path: Path, registries: None) -> None:
    backend = ScriptedBackend()
    register_fakes(backend)
    cfg = InterpretConfig(index=tmp_path, explainer="llm", backend="scripted", scorers=("asked", "stats"))
    client = open_client(cfg)
    assert client.backend is backend and not client.priced
    assert [type(s).__name__ for s in make_scorers(cfg, client)] == ["AskedScorer", "StatsScorer"]
    with pytest.raises(ValueError, match="asked scorer asks a language model"):
        make_scorers(cfg, None)


def options_of(command: str) -> dict[str, argparse.Action]:
    parser = cli.build_parser([command])
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {flag: a for a in sub.choices[command]._actions for flag in a.option_strings}


def test_cli_choices_are_the_registries_names(registries: None, capsys: pytest.CaptureFixture[str]) -> None:
    def choices(flag: str) -> list[str]:
        return list(options_of("interpret")[flag].choices or [])

    assert choices("--backend") == backend_names()
    assert choices("--scorers") == scorer_names() == ["detection", "fuzzing", "simulation", "stats"]
    register_fakes(ScriptedBackend())  # a plug-in is offered as soon as it is registered
    assert choices("--backend") == backend_names() and "scripted" in backend_names()
    assert choices("--scorers") == scorer_names() and "asked" in scorer_names()
    args = cli.build_parser(["interpret"]).parse_args(
        ["interpret", "idx", "--backend", "scripted", "--scorers", "asked,stats", "--scorers", "detection"]
    )
    cfg = cli.build_config(InterpretConfig, args)
    assert (cfg.backend, cfg.scorers) == ("scripted", ("asked", "stats", "detection"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["interpret", "idx", "--scorers", "stats,nope"])
    assert exit_info.value.code == 2 and "nope" in capsys.readouterr().err
    with pytest.raises(SaescopeError, match="--backend must be one of anthropic, anthropic-batch, local"):
        InterpretConfig(index=Path("idx"), backend="nope")


def test_an_explanation_without_quotes_is_kept_and_the_run_succeeds(
    index_dir: Path, registries: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model describes a latent in prose; the statistics scorer cannot test prose, which is not
    a failure: the explanation is stored and shown, the run exits 0 and reports what it cost."""
    register_backend(SCRIPTED, lambda options: ScriptedBackend(LEGAL))
    [latent] = live(index_dir, 1)
    args = [
        "interpret",
        str(index_dir),
        "--explainer",
        "llm",
        "--backend",
        "scripted",
        "--latents",
        str(latent),
    ]
    code = cli.main([*args, "--scorers", "stats", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    [report] = document["latents"]
    assert report["status"] == "new" and report["explanation"]["text"] == LEGAL and report["messages"] == []
    assert {s["status"] for s in report["scores"]} == {"not_testable"}
    assert all(s["value"] is None and "quotes no tokens" in s["reason"] for s in report["scores"])
    assert document["overall"] == [] and document["usage"]["calls"] == 1
    [stored] = read_interpretations(index_dir)
    assert stored.explanation.text == LEGAL and {s.status for s in stored.scores} == {"not_testable"}
    # the rerun finds it done (not tested again, nothing asked) and says so in words
    code = cli.main([*args, "--scorers", "stats"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert "0 new, 1 already stored, 0 failed; not testable by statistics: 1 (" in lines[0]
    assert lines[1].endswith(f"firings, stored): {LEGAL}")
    assert f"    statistics: not testable ({NO_RULES})" in lines
    assert lines[-1].startswith("language model: 0 calls (0 cached, 0 failed)")
    assert "nan" not in out and "no latent could be interpreted" not in err


def test_a_run_where_nothing_succeeds_still_says_what_it_cost(index_dir: Path, registries: None) -> None:
    register_backend(SCRIPTED, lambda options: ScriptedBackend(""))
    cfg = InterpretConfig(
        index=index_dir, explainer="llm", backend="scripted", scorers=("stats",), latents="0-47", cache=False
    )
    with pytest.raises(
        SaescopeError, match=r"no latent could be interpreted \(\d+ failed; .*language model: \d+ calls"
    ):
        interpret_latents(cfg)


def test_every_declared_backend_and_scorer_is_built() -> None:
    """The settings `--backend`/`--scorers` offer (ground floor) and the code that builds them (the
    interpret stage) hold the same names."""
    assert backend_registry.built_names() == backend_names()
    assert scorer_registry.built_names() == scorer_names()
