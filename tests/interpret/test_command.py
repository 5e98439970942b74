"""`saescope interpret` end to end on the tiny index: stored results, reruns that skip done work,
latent choice, one failing latent among good ones, and the CLI's JSON, usage line and errors."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from saescope.cli import main
from saescope.config.interpret import InterpretConfig
from saescope.errors import SaescopeError
from saescope.files import json_safe
from saescope.index.reader import Index, read_explanations
from saescope.interpret.clients.base import ChatRequest, Message
from saescope.interpret.command import interpret_latents
from saescope.interpret.explainers import LLMExplainer
from saescope.interpret.prompts import DETECT_SYSTEM, EXPLAIN_SYSTEM, FUZZ_SYSTEM
from saescope.interpret.resumable import interpret_index
from saescope.interpret.scorers import StatsScorer
from saescope.interpret.source import IndexRecords
from saescope.interpret.summary import InterpretResult, LatentReport
from saescope.interpret.tables import ResultStore, read_interpretations

from .fakes import ScriptedLLM
from .wire import WireServer, serving

KEY_ENV = "SAESCOPE_TEST_INTERPRET_KEY"


def counts_of(index_dir: Path) -> np.ndarray:
    return pq.read_table(index_dir / "latents.parquet").column("count").to_numpy()


def live(index_dir: Path, n: int, at_least: int = 10) -> list[int]:
    """The first `n` latents firing at least `at_least` times."""
    return [int(i) for i in np.flatnonzero(counts_of(index_dir) >= at_least)[:n]]


def spec(latents: list[int]) -> str:
    return ",".join(map(str, latents))


def systems(llm: ScriptedLLM) -> list[str]:
    return [r.messages[0].content for r in llm.requests]


def text_of(report: LatentReport) -> str:
    return report.explanation.text if report.explanation is not None else ""


def scores_of(result: InterpretResult) -> list[Any]:
    return [json_safe([s.to_dict() for s in r.scores]) for r in result.latents if r.ok]


def test_stats_run_stores_every_result_and_a_rerun_skips_them(index_dir: Path) -> None:
    chosen = live(index_dir, 6)
    first = interpret_latents(InterpretConfig(index=index_dir, latents=spec(chosen)))
    assert [r.latent for r in first.latents] == chosen and first.usage.calls == 0
    assert {r.status for r in first.latents} <= {"new", "failed"} and first.succeeded >= 4
    table = pq.read_table(index_dir / "explanations.parquet").to_pylist()
    assert sorted(r["latent"] for r in table) == chosen
    assert all(r["explainer"] == "stats" and r["prompt_version"] == "saescope-stats-v1" for r in table)
    scores = pq.read_table(index_dir / "scores.parquet").to_pylist()
    ok = [r.latent for r in first.latents if r.ok]
    assert {r["latent"] for r in scores} >= set(ok) and {r["scorer"] for r in scores} == {"statistics"}
    assert read_explanations(index_dir) == {r.latent: text_of(r) for r in first.latents if r.ok}
    stamp = (index_dir / "explanations.parquet").stat().st_mtime_ns

    again = interpret_latents(InterpretConfig(index=index_dir, latents=spec(chosen)))
    assert all(r.status == "stored" for r in again.latents if r.latent in ok)
    assert [r.explanation for r in again.latents] == [r.explanation for r in first.latents]
    assert scores_of(again) == scores_of(first)  # as stored (NaN kept as null)
    assert (index_dir / "explanations.parquet").stat().st_mtime_ns == stamp  # nothing rewritten
    assert "overall" in again.render() and "statistics auroc" in again.render()


def test_llm_calls_are_never_repeated_and_new_scorers_reuse_the_explanation(index_dir: Path) -> None:
    chosen = live(index_dir, 4)
    llm = ScriptedLLM()
    settings: dict[str, Any] = {"index": index_dir, "explainer": "llm", "latents": spec(chosen)}
    first = interpret_latents(InterpretConfig(**settings, scorers=("detection", "stats")), llm=llm)
    assert all(r.status == "new" for r in first.latents)
    asked = systems(llm)
    assert asked.count(EXPLAIN_SYSTEM) == 4 and asked.count(DETECT_SYSTEM) > 0
    texts = {r.latent: text_of(r) for r in first.latents}
    assert all(t.startswith("the token") for t in texts.values())

    again = interpret_latents(InterpretConfig(**settings, scorers=("detection", "stats")), llm=llm)
    assert len(llm.requests) == len(asked) and all(r.status == "stored" for r in again.latents)

    more = interpret_latents(InterpretConfig(**settings, scorers=("detection", "fuzzing", "stats")), llm=llm)
    new = systems(llm)[len(asked) :]
    assert new and set(new) == {FUZZ_SYSTEM}  # only the missing scorer asked; explanations reused
    assert {r.latent: text_of(r) for r in more.latents} == texts
    assert {s.scorer for r in more.latents for s in r.scores} == {"detection", "fuzzing", "statistics"}
    stored = read_interpretations(index_dir)
    assert len(stored) == 4 and all(len({s.scorer for s in i.scores}) == 3 for i in stored)


def test_sample_and_min_count_choose_among_live_latents(index_dir: Path) -> None:
    counts = counts_of(index_dir)
    result = interpret_latents(InterpretConfig(index=index_dir, sample=5, min_count=20))
    assert len(result.latents) == 5 and all(counts[r.latent] >= 20 for r in result.latents)
    assert {s.latent for s in result.skipped} == set(np.flatnonzero(counts < 20).tolist())
    assert "skipped" in result.render()
    dead = int(np.flatnonzero(counts == 0)[0])
    rare = int(np.flatnonzero((counts > 0) & (counts < 10))[0])
    good = live(index_dir, 1, 20)[0]
    mixed = interpret_latents(InterpretConfig(index=index_dir, latents=spec([dead, rare, good])))
    assert [r.latent for r in mixed.latents] == [good]
    assert [(s.latent, s.reason.split()[0]) for s in mixed.skipped] == sorted(
        [(dead, "dead"), (rare, "fires")]
    )
    with pytest.raises(SaescopeError, match="no latent to interpret"):
        interpret_latents(InterpretConfig(index=index_dir, latents=str(dead)))


class Unreadable(ScriptedLLM):
    """Answers explanation requests without JSON: all of them, or only the first `only` ones."""

    def __init__(self, only: int | None = None) -> None:
        super().__init__()
        self.only = only
        self.explained = 0

    def answer(self, request: ChatRequest) -> str:
        if request.messages[0].content == EXPLAIN_SYSTEM:
            self.explained += 1
            if self.only is None or self.explained <= self.only:
                return "I think it is about cats, maybe."
        return super().answer(request)


def test_a_failing_latent_is_reported_and_the_others_go_on(
    index_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chosen = live(index_dir, 4)
    cfg = InterpretConfig(index=index_dir, explainer="llm", latents=spec(chosen))
    result = interpret_latents(cfg, llm=Unreadable(only=1))
    failed = [r for r in result.latents if not r.ok]
    assert len(failed) == 1 and result.succeeded == 3
    assert failed[0].messages == ("no explanation: no JSON object found in the answer",)
    assert "! no explanation: no JSON object found in the answer" in result.render()
    assert f"latent {failed[0].latent}: no explanation" in caplog.text
    # the failure is stored and tried again next time (answering now)
    again = interpret_latents(cfg, llm=ScriptedLLM())
    assert all(r.ok for r in again.latents) and [r.status for r in again.latents].count("new") == 1


def test_nothing_succeeding_is_an_error(index_dir: Path) -> None:
    cfg = InterpretConfig(index=index_dir, explainer="llm", latents=spec(live(index_dir, 3)))
    with pytest.raises(
        SaescopeError, match=r"no latent could be interpreted \(3 failed; e.g. latent \d+: no"
    ):
        interpret_latents(cfg, llm=Unreadable())


def test_a_latent_without_examples_fails_alone(index_dir: Path) -> None:
    counts = counts_of(index_dir)
    dead = int(np.flatnonzero(counts == 0)[0])
    chosen = sorted([dead, *live(index_dir, 2)])
    llm = ScriptedLLM()
    outcome = asyncio.run(
        interpret_index(
            IndexRecords(Index(index_dir)),
            chosen,
            LLMExplainer(llm, "fake"),
            [StatsScorer()],
            ResultStore(index_dir),
            progress=False,
        )
    )
    by_latent = {r.latent: r for r in outcome.reports}
    assert by_latent[dead].messages == ("no explanation: no activating examples to explain",)
    assert all(by_latent[i].ok for i in chosen if i != dead)
    assert systems(llm).count(EXPLAIN_SYSTEM) == 2  # nothing asked about the dead latent


# ------------------------------------------------------------------------------------------ CLI


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_is_one_document(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chosen = live(index_dir, 3)
    code, out, _ = run(capsys, "interpret", index_dir, "--latents", spec(chosen), "--json")
    assert code == 0
    document = json.loads(out)  # the whole of stdout is one JSON document
    assert [r["latent"] for r in document["latents"]] == chosen
    assert document["usage"]["calls"] == 0 and document["scorers"] == ["stats"]
    assert {"explanation", "scores", "status", "messages"} <= set(document["latents"][0])
    word = document["latents"][0]["explanation"]["text"].split('"')[1].strip()
    code, out, _ = run(capsys, "explanations", index_dir, "--search", word, "--json")
    assert code == 0 and chosen[0] in [r["latent"] for r in json.loads(out)["rows"]]
    found = next(r for r in json.loads(out)["rows"] if r["latent"] == chosen[0])
    assert found["headline_name"] == "statistics auroc"  # a score says which score it is
    code, out, _ = run(capsys, "explanations", index_dir)
    assert code == 0 and "statistics auroc" in out and "n/a" not in out, out


def scripted_reply(messages: list[dict[str, Any]]) -> str:
    request = ChatRequest("m", tuple(Message(m["role"], m["content"]) for m in messages))
    return ScriptedLLM().answer(request)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    monkeypatch.setenv(KEY_ENV, "sk-test-interpret-0123456789")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with serving() as s:
        s.reply = scripted_reply
        yield s


def llm_args(index_dir: Path, url: str, latents: list[int]) -> list[object]:
    return [
        "interpret",
        index_dir,
        "--explainer",
        "llm",
        "--backend",
        "openai",
        "--base-url",
        url + "/v1",
        "--api-key-env",
        KEY_ENV,
        "--latents",
        spec(latents),
        "--retries",
        0,
    ]


def test_cli_over_an_openai_compatible_endpoint(
    index_dir: Path, server: WireServer, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = live(index_dir, 3)
    code, out, _ = run(capsys, *llm_args(index_dir, server.url, chosen), "--json")
    assert code == 0
    document = json.loads(out)
    calls = len(server.calls("POST", "/v1/chat/completions"))
    usage = document["usage"]
    assert usage["calls"] == calls > 3 and usage["prompt_tokens"] == 11 * calls  # the server's counts
    assert document["model"] == "gpt-4o-mini" and document["scorers"] == ["detection", "stats"]
    assert all(r["status"] == "new" for r in document["latents"])
    # a rerun asks nothing and says so on its usage line
    code, out, _ = run(capsys, *llm_args(index_dir, server.url, chosen))
    assert code == 0 and len(server.calls("POST", "/v1/chat/completions")) == calls
    assert "language model: 0 calls" in out and "3 already stored" in out


def test_cli_exit_status_when_nothing_succeeds(
    index_dir: Path, server: WireServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.reply = lambda messages: "Sorry, I cannot help with that."
    code, out, err = run(capsys, *llm_args(index_dir, server.url, live(index_dir, 2)))
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("saescope interpret: error: no latent could be interpreted (2 failed")


def test_missing_key_and_unreachable_endpoint_are_one_line(
    index_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    code, _, err = run(capsys, *llm_args(index_dir, "http://127.0.0.1:9", live(index_dir, 2)))
    assert code == 2 and err.count("\n") == 1 and KEY_ENV in err and "Traceback" not in err
    monkeypatch.setenv(KEY_ENV, "sk-test-interpret-0123456789")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(capsys, *llm_args(index_dir, f"http://127.0.0.1:{port}", live(index_dir, 2)))
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("saescope interpret: error: cannot reach") and str(port) in last
    assert "sk-test" not in err


def test_missing_index_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "interpret", tmp_path / "nowhere")
    assert code == 2 and "is not a latent index" in err and err.count("\n") == 1
