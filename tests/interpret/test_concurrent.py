"""`explain_and_score`: many latents concurrently, shuffled baselines, resumption, failures one at a time."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from saescope.interpret.clients import EndpointUnreachableError
from saescope.interpret.concurrent import LatentResult, explain_and_score, shuffled_baselines
from saescope.interpret.explainers import Explanation, LLMExplainer, StatsExplainer, given_explanation
from saescope.interpret.prompts import EXPLAIN_SYSTEM
from saescope.interpret.records import LatentRecord
from saescope.interpret.scorers import DetectionScorer, StatsScorer, aggregate, beats_baseline
from saescope.interpret.summary import LatentReport

from .fakes import ScriptedLLM, token_latent

TOKENS = (" def", " class", " import", " lambda")


def records() -> list[LatentRecord]:
    return [token_latent(t, latent=i, seed=i, n_train=20, n_held_out=20) for i, t in enumerate(TOKENS)]


def test_explain_and_score_with_shuffled_baselines() -> None:
    llm = ScriptedLLM()
    seen: list[LatentResult] = []
    results = asyncio.run(
        explain_and_score(
            records(),
            LLMExplainer(llm, "fake"),
            [DetectionScorer(llm, "fake"), StatsScorer()],
            on_result=seen.append,
        )
    )
    assert [r.latent for r in results] == [0, 1, 2, 3] and all(r.ok for r in results)
    assert sorted(r.latent for r in seen) == [0, 1, 2, 3]
    for r, token in zip(results, TOKENS):
        assert r.explanation is not None and r.explanation.text == f'the token "{token.strip()}"'
        baseline_text = r.scores[0].details["baseline_text"]
        assert baseline_text != r.explanation.text  # another latent's explanation
        assert all(beats_baseline(s) for s in r.scores if s.metric in ("accuracy", "f1"))
    overall = {(a.scorer, a.metric): a for a in aggregate(s for r in results for s in r.scores)}
    assert (
        overall[("detection", "accuracy")].mean == 1.0 and overall[("detection", "accuracy")].baseline == 0.5
    )
    # results survive a round trip through JSON (one line per latent in a results file)
    again = [LatentResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in results]
    assert [a.explanation for a in again] == [r.explanation for r in results]
    assert [len(a.scores) for a in again] == [len(r.scores) for r in results]


def test_done_latents_are_skipped() -> None:
    first = asyncio.run(explain_and_score(records()[:2], StatsExplainer(), [StatsScorer()]))
    llm = ScriptedLLM()
    results = asyncio.run(
        explain_and_score(records(), LLMExplainer(llm, "fake"), [StatsScorer()], done=first)
    )
    assert results[:2] == first
    explained = [r.messages[-1].content for r in llm.requests]
    assert len(explained) == 2 and all("<<import>>" in u or "<<lambda>>" in u for u in explained)
    # the done latents' explanations still serve as baselines for the new ones
    assert all(r.ok and r.scores[0].details.get("baseline_text") for r in results[2:])


def test_one_failing_latent_does_not_stop_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Boom(StatsScorer):
        async def measure(self, record, explanation):  # type: ignore[no-untyped-def]
            if record.latent == 1:
                raise RuntimeError("scorer exploded")
            return await super().measure(record, explanation)

    recs = records()
    recs[2] = LatentRecord(2, ())  # nothing to explain
    with caplog.at_level(logging.WARNING):
        results = asyncio.run(explain_and_score(recs, StatsExplainer(), [Boom()], baseline='the word "the"'))
    ok = {r.latent: r for r in results}
    assert ok[0].ok and ok[3].ok
    assert ok[1].error == "statistics scorer failed: RuntimeError: scorer exploded" and ok[1].explanation
    assert ok[2].error is not None and ok[2].error.startswith("no explanation: no token")
    assert "latent 1: statistics scorer failed" in caplog.text and "latent 2: no explanation" in caplog.text
    assert ok[0].scores[0].details["baseline_text"] == 'the word "the"'
    # a failed latent is tried again on the next run
    rerun = asyncio.run(explain_and_score(records(), StatsExplainer(), [StatsScorer()], done=results))
    assert all(r.ok for r in rerun)


def test_an_unusable_backend_stops_the_run() -> None:
    class Unreachable(ScriptedLLM):
        async def chat(self, request):  # type: ignore[no-untyped-def]
            raise EndpointUnreachableError("cannot reach http://127.0.0.1:9/v1")

    with pytest.raises(EndpointUnreachableError):
        asyncio.run(explain_and_score(records(), LLMExplainer(Unreachable(), "fake")))


def test_shuffled_baselines_are_a_derangement() -> None:
    explanations = {r.latent: StatsExplainer().explain_now(r) for r in records()}
    baselines = shuffled_baselines(explanations, seed=0)
    assert sorted(baselines) == [0, 1, 2, 3]
    assert all(b.latent != latent for latent, b in baselines.items())
    assert len({b.latent for b in baselines.values()}) == 4
    assert shuffled_baselines({0: explanations[0]}) == {}


class NoAnswers(ScriptedLLM):
    """Explains, then answers every scoring request with nothing usable."""

    def answer(self, request):  # type: ignore[no-untyped-def]
        return super().answer(request) if request.messages[0].content == EXPLAIN_SYSTEM else "no idea"


def test_failures_are_counted_as_the_report_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="saescope.interpret.concurrent")
    llm = NoAnswers()
    results = asyncio.run(
        explain_and_score(records()[:2], LLMExplainer(llm, "fake"), [DetectionScorer(llm, "fake")])
    )
    # explained, but every scorer failed: a failed latent, in the log line as in the run's summary
    assert all(r.error is None and not r.ok for r in results)
    assert all(LatentReport.of(r, 10).status == "failed" for r in results)
    assert "latents done: 2, of which 2 failed" in caplog.text
    prose = given_explanation("descriptions of legal contracts", latent=0)
    [untestable] = asyncio.run(explain_and_score(records()[:1], Given(prose), [StatsScorer()], baseline=None))
    assert untestable.ok and LatentReport.of(untestable, 10).status == "new"  # not testable is no failure


class Given:
    """An explainer that says the same thing of every latent."""

    name = "given"

    def __init__(self, explanation: Explanation) -> None:
        self.explanation = explanation

    async def explain(self, record: LatentRecord) -> Explanation:
        return self.explanation._replace(latent=record.latent)
