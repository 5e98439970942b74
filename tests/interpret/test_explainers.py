"""Explainers on constructed latents: the statistics baseline finds the token, the LLM explainer
sends the right prompt and reads (or refuses) the answer."""

from __future__ import annotations

import asyncio
import json

from saescope.interpret.explainers import LLMExplainer, StatsExplainer, evidence_of, given_explanation
from saescope.interpret.prompts import PROMPT_VERSION
from saescope.interpret.records import TokenStat

from .fakes import ScriptedLLM, token_latent


def test_stats_explainer_names_the_token_with_lift_and_counts() -> None:
    record = token_latent(" def")
    e = asyncio.run(StatsExplainer().explain(record))
    assert e.ok and e.explainer == "stats" and e.model == "" and not e.few_examples
    firings = sum(1 for ex in record.train for a in ex.activations if a > 0)
    assert e.text.startswith('fires on " def" (lift ')
    assert f"{firings}/{firings} firings" in e.text
    assert e.confidence == 1.0
    [token] = [ev for ev in evidence_of(e) if ev.kind == "token"]
    assert token.items == (" def",) and token.background == 0 and token.precision == 1.0
    assert token.lift > 10
    assert json.loads(e.raw)["evidence"][0]["items"] == [" def"]


def test_stats_explainer_finds_a_preceding_token() -> None:
    record = token_latent(" def")
    # make every firing follow "\n" and make "\n" rare elsewhere: the context rule must show up
    train = []
    for ex in record.train:
        tokens = [t if t != "\n" else " x" for t in ex.tokens]
        for i, a in enumerate(ex.activations):
            if a > 0 and i > 0:
                tokens[i - 1] = "\n"
        train.append(ex._replace(tokens=tuple(tokens)))
    e = StatsExplainer().explain_now(record.__class__(0, tuple(train), record.held_out, record.background))
    assert 'after "\\n"' in e.text


def test_stats_explainer_works_with_few_examples_and_says_so() -> None:
    record = token_latent(" def", n_train=6, n_held_out=4)
    assert record.n_firings < 20
    e = StatsExplainer().explain_now(record)
    assert e.ok and e.few_examples and e.text.startswith('fires on " def"') and e.n_examples == 6


def test_stats_explainer_fails_when_nothing_stands_out() -> None:
    record = token_latent(" def", n_train=1)  # one or two firings: below min_count once seen once
    e = StatsExplainer(min_count=3).explain_now(record)
    assert not e.ok and e.text == "" and "stands out" in (e.error or "")


def test_stats_explainer_uses_corpus_token_counts_when_given() -> None:
    record = token_latent(" def")
    stats = (TokenStat(" def", 900, 1000), TokenStat(" the", 60, 50_000))
    record = record.__class__(0, record.train, record.held_out, (), 0.001, 1000, 10.0, stats)
    e = StatsExplainer().explain_now(record)
    [token] = [ev for ev in evidence_of(e) if ev.kind == "token"]
    assert token.items == (" def",) and token.firings == 900 and token.precision == 0.9
    assert "900/1000 firings" in e.text


def test_llm_explainer_prompt_and_answer() -> None:
    llm = ScriptedLLM()
    record = token_latent(" def")
    explainer = LLMExplainer(llm, "fake-model", n_examples=8, show_activations=True)
    e = asyncio.run(explainer.explain(record))
    assert e.ok and e.text == 'the token "def"' and e.confidence == 0.8 and e.n_examples == 8
    assert e.prompt_version == PROMPT_VERSION + "+acts" and e.model == "fake-model"
    [request] = llm.requests
    user = request.messages[-1].content
    assert user.count("Example ") == 8 and "<<def>>" in user and 'Active tokens: "def" (' in user
    assert request.json_mode and request.temperature == 0.0


def test_llm_explainer_chain_of_thought_prompt() -> None:
    llm = ScriptedLLM()
    explainer = LLMExplainer(llm, "fake-model", chain_of_thought=True)
    e = asyncio.run(explainer.explain(token_latent(" def")))
    assert e.ok and e.prompt_version == PROMPT_VERSION + "+cot"
    [request] = llm.requests
    assert "outliers" in request.messages[-1].content and not request.json_mode and request.max_tokens == 1500


def test_llm_explainer_without_examples_fails_without_asking() -> None:
    llm = ScriptedLLM()
    record = token_latent(" def")
    empty = record.__class__(record.latent, (), record.held_out)
    e = asyncio.run(LLMExplainer(llm, "m").explain(empty))
    assert not e.ok and e.error == "no activating examples to explain" and not llm.requests and e.few_examples


def test_quoted_tokens_of_any_explanation_are_loose_rules() -> None:
    [rule] = evidence_of(given_explanation('the Python keyword "def"'))
    assert rule.matches(["x", " Def"], 1) and not rule.matches(["x", " define"], 1)
    assert evidence_of(given_explanation("no quotes here")) == []
