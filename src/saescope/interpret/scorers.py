"""Scorers: how well an explanation predicts where a latent fires, on examples the explainer never saw.

A `Scorer` has a `name` and an async `score(record, explanation, baseline) -> list[Score]`, one
`Score` per metric. Each scores on a seeded mix of held-out examples — the same number from each
activation quantile plus as many non-activating ones (`sampling.held_out_mix`):

- `DetectionScorer`: a language model told the explanation says, for excerpts in groups of
  `group_size`, which ones the feature fires in (a JSON list of 0/1, or probabilities): accuracy,
  precision, recall, F1, and AUROC when it gave probabilities.
- `FuzzingScorer`: activating excerpts with tokens marked `<<like this>>` — half marked where the
  latent fires, half on random other tokens; the model says which markings fit the explanation.
- `SimulationScorer`: the model predicts every token's activation (0–10) from the explanation;
  Pearson correlation with the true activations over all tokens (OpenAI's explain–simulate–score).
- `StatsScorer`: no language model: the rules an explanation states (a statistics explanation's
  evidence, or the quoted tokens of any other) predict firing token by token; AUROC, F1,
  precision, recall, with each rule's own numbers in `details`. An explanation that states no
  rule (`"descriptions of legal contracts"`) is *not testable* by it — still an explanation.

Every value has a 95% interval (`metrics.estimate`: Wilson for proportions, a seeded bootstrap
over examples otherwise) with its support, and a chance baseline: the same scorer on the same
examples with another explanation (typically another latent's, passed in by the caller) or a given
baseline text, with its own interval. Each `Score` says whether it was `measured`, is `undefined`
on these examples (precision when nothing is predicted to fire), whether the explanation is
`not_testable` by this scorer, or whether scoring `failed` — with the reason; only measured scores
carry a number. `aggregate` averages measured scores over latents (bootstrap interval over
latents); `by_latent` tabulates them per latent.

Each scorer is registered under its `--scorers` name with how it is built from the settings
(`scorer_registry`; the built-in ones at the end of this module).

This module knows nothing about where records and explanations come from.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import numpy as np

from ..example import Example
from . import metrics as M
from .clients.base import LLM, ChatRequest, ChatResponse, Message
from .evidence import Evidence
from .explainers import Explanation, evidence_of, given_explanation
from .parsing import read_activations, read_labels
from .prompts import PROMPT_VERSION, detect_prompt, fuzz_prompt, simulate_prompt
from .records import DEFAULT_ACTIVE_FRACTION, LatentRecord, active_mask
from .sampling import held_out_mix
from .scorer_registry import register_scorer, scorer_settings

if TYPE_CHECKING:
    from ..config.interpret import InterpretConfig

logger = logging.getLogger(__name__)

Baseline = Explanation | str | None
"""A chance baseline: another explanation, a fixed text, or none."""


ScoreStatus = Literal["measured", "undefined", "not_testable", "failed"]
"""What became of one metric: `measured` (it has a value), `undefined` (the scorer ran, but the
metric has no value on these examples), `not_testable` (the scorer cannot test this explanation)
or `failed` (the scorer could not score it)."""


class Score(NamedTuple):
    """One metric of one explanation of one latent, with its interval and its chance baseline."""

    latent: int
    """The latent's index."""
    scorer: str
    """Which scorer (`detection`, `fuzzing`, `simulation`, `statistics`)."""
    metric: str
    """Which metric (`accuracy`, `precision`, `recall`, `f1`, `auroc`, `pearson`)."""
    value: float
    """The metric over all scored examples (NaN unless `status` is `measured`)."""
    ci_low: float
    """Lower end of the 95% interval (Wilson for proportions, bootstrap otherwise; NaN when none)."""
    ci_high: float
    """Upper end of the 95% interval."""
    baseline: float
    """The same metric for the baseline explanation (NaN without a baseline, or when it has none)."""
    baseline_ci_low: float
    """Lower end of the baseline's 95% interval."""
    baseline_ci_high: float
    """Upper end of the baseline's 95% interval."""
    n: int
    """Examples scored (those the model gave a usable answer for)."""
    details: dict[str, Any]
    """JSON values: counts, failures, per-rule numbers, the baseline's text."""
    status: ScoreStatus = "measured"
    """`measured`, `undefined`, `not_testable` or `failed` (see `ScoreStatus`)."""
    reason: str = ""
    """Why there is no value ("" when measured)."""
    support: int = 0
    """What the value rests on: the items predicted to fire (precision), those that fire (recall,
    F1), all of them (accuracy), the rarer class (AUROC), the examples (Pearson) — items are the
    examples, or what `details["support_unit"]` names (the statistics scorer's tokens); 0 when
    unknown (scores stored by earlier versions). Below `metrics.FEW` the interval is flagged wide."""

    @property
    def measured(self) -> bool:
        """Whether the metric has a value."""
        return self.status == "measured" and bool(np.isfinite(self.value))

    @property
    def wide(self) -> bool:
        """Whether its interval rests on fewer than `metrics.FEW` items."""
        return 0 < self.support < M.FEW

    def to_dict(self) -> dict[str, Any]:
        """JSON values (NaN kept as NaN, which Python's json writes and reads)."""
        return self._asdict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        """The inverse of `to_dict` (also of one written before `status` existed)."""
        fields = {k: d[k] for k in cls._fields if k in d}
        if "status" not in d:
            fields["status"], fields["reason"] = legacy_status(float(d["value"]), d["details"])
        return cls(**fields)


def settled(score: Score) -> Score:
    """`score` with a status that fits its value: one left `measured` without a value (built by code
    that predates statuses) reads as `legacy_status` says."""
    if score.status == "measured" and not np.isfinite(score.value):
        status, reason = legacy_status(score.value, score.details)
        return score._replace(status=status, reason=reason)
    return score


def legacy_status(value: float, details: dict[str, Any]) -> tuple[ScoreStatus, str]:
    """The status and reason of a score stored before scores had one: failed with the error its
    details hold, else measured or undefined by its value."""
    error = details.get("error")
    if error:
        return "failed", str(error)
    if np.isfinite(value):
        return "measured", ""
    return "undefined", "not measured"


class Scorer(Protocol):
    """Anything that scores explanations."""

    name: str

    async def score(
        self, record: LatentRecord, explanation: Explanation, baseline: Baseline = None
    ) -> list[Score]:
        """One `Score` per metric."""
        ...


MeasureStatus = Literal["measured", "not_testable", "failed"]
"""What became of one scorer's measurement of one explanation (its metrics may still be undefined)."""


class Measured(NamedTuple):
    """Per-example statistics of one explanation, ready for the intervals."""

    rows: dict[str, tuple[np.ndarray, M.Metric]]
    """Metric name → (rows, one per example; the function of their sum)."""
    n: int
    """Examples scored."""
    details: dict[str, Any]
    """JSON values: counts, failures, per-rule numbers."""
    status: MeasureStatus = "measured"
    """`measured`, `not_testable` (the explanation gives this scorer nothing to test) or `failed`."""
    reason: str = ""
    """Why nothing was measured ("" when measured)."""
    missing: tuple[tuple[str, str], ...] = ()
    """(metric, why it has no value) for metrics left out of `rows` on purpose."""


def _failed(reason: str) -> Measured:
    return Measured({}, 0, {"error": reason}, "failed", reason)


def _not_testable(reason: str) -> Measured:
    return Measured({}, 0, {}, "not_testable", reason)


def as_explanation(baseline: Explanation | str) -> Explanation:
    """A baseline as an `Explanation` (a text becomes a `given` one)."""
    return baseline if isinstance(baseline, Explanation) else given_explanation(baseline)


class _ScorerBase:
    """Runs `measure` on the explanation and on the baseline, and bootstraps every metric."""

    name = "base"
    metrics: tuple[str, ...] = ()

    def __init__(
        self, *, per_bin: int = 5, n_bins: int = 4, seed: int = 0, n_resamples: int = M.N_RESAMPLES
    ) -> None:
        self.per_bin = per_bin
        self.n_bins = n_bins
        self.seed = seed
        self.n_resamples = n_resamples

    def held_out(self, record: LatentRecord) -> list[tuple[Example, bool]]:
        """The scoring examples with their truth (the same for every explanation of `record`)."""
        return held_out_mix(
            record.held_out_active,
            record.held_out_inactive,
            self.per_bin,
            self.n_bins,
            self.seed + record.latent,
        )

    async def measure(self, record: LatentRecord, explanation: Explanation) -> Measured:
        raise NotImplementedError

    async def _measure(self, record: LatentRecord, explanation: Explanation) -> Measured:
        if not explanation.ok or not explanation.text.strip():
            return _failed(f"no explanation to score ({explanation.error or 'empty'})")
        return await self.measure(record, explanation)

    async def score(
        self, record: LatentRecord, explanation: Explanation, baseline: Baseline = None
    ) -> list[Score]:
        """One `Score` per metric, with the baseline's values when `baseline` is given."""
        base = as_explanation(baseline) if baseline is not None else None
        explanations = [explanation] if base is None else [explanation, base]
        measured = await asyncio.gather(*(self._measure(record, e) for e in explanations))
        main, other = measured[0], (measured[1] if base is not None else None)
        if main.status != "measured":
            logger.info("latent %d: %s scorer: %s: %s", record.latent, self.name, main.status, main.reason)
        details = dict(main.details)
        if base is not None and other is not None:
            details["baseline_text"] = base.text
            if other.status != "measured":
                details["baseline_error"] = other.reason
        return [self._score(record.latent, metric, main, other, details) for metric in self.metrics]

    def _score(
        self, latent: int, metric: str, main: Measured, other: Measured | None, details: dict[str, Any]
    ) -> Score:
        value = self._estimate(main, metric)
        chance = self._estimate(other, metric)
        status: ScoreStatus = main.status
        reason = main.reason
        if status == "measured" and not np.isfinite(value.value):
            status, reason = "undefined", value.undefined or dict(main.missing).get(metric, "not measured")
        head = (latent, self.name, metric, *value[:3], *chance[:3], main.n, details)
        return Score(*head, status, reason, value.support)

    def _estimate(self, measured: Measured | None, metric: str) -> M.Estimate:
        if measured is None or measured.status != "measured":
            return M.Estimate(math.nan, math.nan, math.nan, 0, "")
        if metric not in measured.rows:
            return M.Estimate(math.nan, math.nan, math.nan, 0, dict(measured.missing).get(metric, ""))
        rows, fn = measured.rows[metric]
        return M.estimate(rows, fn, self.n_resamples, self.seed)


NO_PROBABILITIES = "the answers said yes or no, without probabilities"
"""Why a label scorer has no AUROC."""


def _confusion_and_auroc(
    truth: Sequence[bool], answers: Sequence[float], metrics: Sequence[str]
) -> dict[str, tuple[np.ndarray, M.Metric]]:
    """Rows for the confusion metrics (answer ≥ 0.5 means yes) and, when some answer is a
    probability strictly between 0 and 1, for AUROC; one item per example."""
    n = len(truth)
    ids = list(range(n))
    confusion = M.confusion_rows(truth, [a >= 0.5 for a in answers], ids, n)
    rows: dict[str, tuple[np.ndarray, M.Metric]] = {
        m: (confusion, M.CONFUSION_METRICS[m]) for m in metrics if m in M.CONFUSION_METRICS
    }
    if "auroc" in metrics and any(0 < a < 1 for a in answers):
        rows["auroc"] = (M.auroc_rows(truth, answers, ids, n), M.auroc)
    return rows


def _read_groups(
    responses: Sequence[ChatResponse], sizes: Sequence[int]
) -> tuple[list[list[float] | None], list[str]]:
    """Each group's answers (None when unusable) and the reasons for the unusable ones."""
    answers: list[list[float] | None] = []
    errors = []
    for response, size in zip(responses, sizes):
        if not response.ok:
            answers.append(None)
            errors.append(f"request failed: {response.error}")
            continue
        values, error = read_labels(response.text, size)
        answers.append(None if error else values)
        if error:
            errors.append(error)
    return answers, errors


class _ModelScorer(_ScorerBase):
    """A scorer that asks a language model (`client`, `model`); the other options as `_ScorerBase`."""

    def __init__(self, client: LLM, model: str, **options: Any) -> None:
        super().__init__(**options)
        self.client = client
        self.model = model


class _LabelScorer(_ModelScorer):
    """Shared by detection and fuzzing: excerpts in groups, one 0/1 (or probability) per excerpt."""

    metrics = ("accuracy", "precision", "recall", "f1", "auroc")

    def __init__(
        self, client: LLM, model: str, *, group_size: int = 5, max_tokens: int = 200, **options: Any
    ) -> None:
        super().__init__(client, model, **options)
        self.group_size = group_size
        self.max_tokens = max_tokens

    def items(self, record: LatentRecord) -> list[tuple[Example, Sequence[bool] | None, bool]]:
        """(example, marking or None, truth) for each excerpt shown."""
        raise NotImplementedError

    def prompt(
        self, explanation: str, group: Sequence[tuple[Example, Sequence[bool] | None, bool]]
    ) -> tuple[str, str]:
        raise NotImplementedError

    async def measure(self, record: LatentRecord, explanation: Explanation) -> Measured:
        """Ask about every group; score the answers that could be read."""
        items = self.items(record)
        if not items:
            return _failed("no held-out examples to score on")
        groups = [items[i : i + self.group_size] for i in range(0, len(items), self.group_size)]
        requests = []
        for g in groups:
            system, user = self.prompt(explanation.text, g)
            requests.append(
                ChatRequest(self.model, (Message("system", system), Message("user", user)), self.max_tokens)
            )
        responses = await self.client.chat_many(requests)
        answers, errors = _read_groups(responses, [len(g) for g in groups])
        truth: list[bool] = []
        said: list[float] = []
        for g, a in zip(groups, answers):
            if a is not None:
                truth.extend(t for _, _, t in g)
                said.extend(a)
        details: dict[str, Any] = {
            "prompt_version": PROMPT_VERSION,
            "model": self.model,
            "n_shown": len(items),
            "n_positive": sum(truth),
            "failed_prompts": len(errors),
            "errors": errors[:3],
        }
        if not truth:
            return Measured({}, 0, {**details, "error": "no usable answer"}, "failed", "no usable answer")
        rows = _confusion_and_auroc(truth, said, self.metrics)
        missing = (("auroc", NO_PROBABILITIES),) if "auroc" in self.metrics and "auroc" not in rows else ()
        return Measured(rows, len(truth), details, missing=missing)


class DetectionScorer(_LabelScorer):
    """Does the explanation let a model tell which excerpts the latent fires in?"""

    name = "detection"

    def items(self, record: LatentRecord) -> list[tuple[Example, Sequence[bool] | None, bool]]:
        return [(ex, None, fires) for ex, fires in self.held_out(record)]

    def prompt(
        self, explanation: str, group: Sequence[tuple[Example, Sequence[bool] | None, bool]]
    ) -> tuple[str, str]:
        return detect_prompt(explanation, [ex for ex, _, _ in group])


def wrong_marks(example: Example, correct: Sequence[bool], rng: random.Random) -> list[bool] | None:
    """As many marked tokens as `correct` has, at random positions it does not mark (None when there
    are no such positions)."""
    k = max(1, sum(correct))
    others = [i for i, m in enumerate(correct) if not m and example.tokens[i].strip()]
    if not others:
        return None
    chosen = set(rng.sample(others, min(k, len(others))))
    return [i in chosen for i in range(len(correct))]


class FuzzingScorer(_LabelScorer):
    """Does the explanation let a model tell correct markings from random ones?"""

    name = "fuzzing"

    def __init__(
        self, client: LLM, model: str, *, fraction: float = DEFAULT_ACTIVE_FRACTION, **options: Any
    ) -> None:
        super().__init__(client, model, **options)
        self.fraction = fraction

    def items(self, record: LatentRecord) -> list[tuple[Example, Sequence[bool] | None, bool]]:
        rng = random.Random(self.seed + record.latent)
        positives = [ex for ex, fires in self.held_out(record) if fires]
        out: list[tuple[Example, Sequence[bool] | None, bool]] = []
        for i, ex in enumerate(positives):
            correct = active_mask(ex, self.fraction)
            wrong = wrong_marks(ex, correct, rng) if i % 2 else None
            out.append((ex, wrong, False) if wrong is not None else (ex, correct, True))
        rng.shuffle(out)
        return out

    def prompt(
        self, explanation: str, group: Sequence[tuple[Example, Sequence[bool] | None, bool]]
    ) -> tuple[str, str]:
        masks = [m if m is not None else [False] * len(ex.tokens) for ex, m, _ in group]
        return fuzz_prompt(explanation, [ex for ex, _, _ in group], masks)


class SimulationScorer(_ModelScorer):
    """How well do activations a model predicts from the explanation correlate with the truth?"""

    name = "simulation"
    metrics = ("pearson",)

    async def measure(self, record: LatentRecord, explanation: Explanation) -> Measured:
        """One request per excerpt; Pearson correlation over all tokens of the answered ones."""
        examples = [ex for ex, _ in self.held_out(record)]
        if not examples:
            return _failed("no held-out examples to score on")
        requests = []
        for ex in examples:
            system, user = simulate_prompt(explanation.text, ex)
            messages = (Message("system", system), Message("user", user))
            requests.append(ChatRequest(self.model, messages, 4 * len(ex.tokens) + 32))
        responses = await self.client.chat_many(requests)
        predicted: list[float] = []
        true: list[float] = []
        groups: list[int] = []
        errors = []
        n = 0
        for ex, response in zip(examples, responses):
            values, error = (
                read_activations(response.text, len(ex.tokens)) if response.ok else ([], response.error)
            )
            if error:
                errors.append(error)
                continue
            predicted.extend(values)
            true.extend(float(a) for a in ex.activations)
            groups.extend([n] * len(values))
            n += 1
        details = {
            "prompt_version": PROMPT_VERSION,
            "model": self.model,
            "n_shown": len(examples),
            "failed_prompts": len(errors),
            "errors": errors[:3],
        }
        if n == 0:
            return Measured({}, 0, {**details, "error": "no usable answer"}, "failed", "no usable answer")
        return Measured({"pearson": (M.pearson_rows(predicted, true, groups, n), M.pearson)}, n, details)


def _rule_label(rule: Evidence) -> str:
    text = "".join(rule.items) if rule.kind == "ngram" else rule.items[0]
    return f"{rule.kind} {text!r}"


def _rule_numbers(rule: Evidence, hits: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    tp = int((hits & truth).sum())
    fp = int((hits & ~truth).sum())
    fn = int((~hits & truth).sum())
    tn = int((~hits & ~truth).sum())
    counts = np.array([tp, fp, fn, tn], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {m: float(M.CONFUSION_METRICS[m](counts)) for m in ("precision", "recall", "f1")}
        values["auroc"] = float(M.balanced_accuracy(counts))  # AUROC of a yes/no rule
    return {"rule": _rule_label(rule), "matches": tp + fp, **values}


class StatsScorer(_ScorerBase):
    """How well do the rules an explanation states predict firing, token by token? No model needed."""

    name = "statistics"
    metrics = ("auroc", "f1", "precision", "recall")

    def __init__(self, *, min_precision: float = 0.5, **options: Any) -> None:
        super().__init__(**options)
        self.min_precision = min_precision

    async def measure(self, record: LatentRecord, explanation: Explanation) -> Measured:
        """Each token's score is the best precision among the rules matching there (a rule predicts
        firing when its precision is at least `min_precision`)."""
        rules = evidence_of(explanation)
        if not rules:
            return _not_testable("the explanation quotes no tokens and states no token rules")
        examples = [ex for ex, _ in self.held_out(record)]
        if not examples:
            return _failed("no held-out examples to score on")
        truth: list[bool] = []
        scores: list[float] = []
        groups: list[int] = []
        hits = np.zeros((len(rules), sum(len(ex.tokens) for ex in examples)), dtype=bool)
        for g, ex in enumerate(examples):
            for i, a in enumerate(ex.activations):
                matched = [r for r, rule in enumerate(rules) if rule.matches(ex.tokens, i)]
                hits[matched, len(truth)] = True
                truth.append(a > 0)
                scores.append(max((rules[r].precision for r in matched), default=0.0))
                groups.append(g)
        n = len(examples)
        predicted = [s >= self.min_precision and s > 0 for s in scores]
        confusion = M.confusion_rows(truth, predicted, groups, n)
        rows: dict[str, tuple[np.ndarray, M.Metric]] = {
            m: (confusion, M.CONFUSION_METRICS[m]) for m in ("f1", "precision", "recall")
        }
        rows["auroc"] = (M.auroc_rows(truth, scores, groups, n), M.auroc)
        y = np.asarray(truth, dtype=bool)
        details = {
            "n_tokens": len(truth),
            "support_unit": "tokens",
            "n_firing_tokens": int(y.sum()),
            "rules": [_rule_numbers(rule, hits[r], y) for r, rule in enumerate(rules)],
        }
        return Measured(rows, n, details)


# ----------------------------------------------------------------------------- aggregation


class Aggregate(NamedTuple):
    """One scorer's metric averaged over latents."""

    scorer: str
    """Which scorer."""
    metric: str
    """Which metric."""
    mean: float
    """Mean over the latents where it was measured."""
    ci_low: float
    """Lower end of the bootstrap 95% interval of the mean, resampling latents (NaN from one latent)."""
    ci_high: float
    """Upper end of that interval."""
    baseline: float
    """Mean of the baselines over latents that have one (NaN when none has)."""
    baseline_ci_low: float
    """Lower end of the baseline mean's interval."""
    baseline_ci_high: float
    """Upper end of the baseline mean's interval."""
    n_latents: int
    """Latents where the metric was measured."""
    n_baselines: int = 0
    """Of those, latents whose baseline has a value."""

    def line(self) -> str:
        """`detection f1: 0.820 [0.780, 0.850] vs baseline 0.510 [0.470, 0.550] (n=120 latents)`; a
        mean over fewer than `metrics.FEW` latents is flagged wide, one over a single latent has no
        interval."""
        text = f"{self.scorer} {self.metric}: {M.interval_text(self.mean, self.ci_low, self.ci_high)}"
        if np.isfinite(self.baseline):
            chance = M.interval_text(self.baseline, self.baseline_ci_low, self.baseline_ci_high)
            text += f" vs baseline {chance}"
        count = f"n={self.n_latents} latent{'s' * (self.n_latents != 1)}"
        if self.n_latents == 1:
            count += ": no interval"
        elif self.n_latents < M.FEW:
            count += ", wide"
        if np.isfinite(self.baseline) and self.n_baselines != self.n_latents:
            count += f"; baseline n={self.n_baselines}"
        return f"{text} ({count})"


def aggregate(scores: Iterable[Score], n_resamples: int = M.N_RESAMPLES, seed: int = 0) -> list[Aggregate]:
    """Mean of each (scorer, metric) over the latents where it was measured, with bootstrap
    intervals over latents (a metric measured nowhere is left out)."""
    by_key: dict[tuple[str, str], list[Score]] = {}
    for s in scores:
        if s.measured:
            by_key.setdefault((s.scorer, s.metric), []).append(s)
    out = []
    for (scorer, metric), group in by_key.items():
        values = M.mean_rows([s.value for s in group])
        baselines = M.mean_rows([s.baseline for s in group])
        mean = M.estimate(values, M.mean, n_resamples, seed)
        base = M.estimate(baselines, M.mean, n_resamples, seed)
        counts = (len(values), len(baselines))
        out.append(Aggregate(scorer, metric, *mean[:3], *base[:3], *counts))
    return out


def by_latent(scores: Iterable[Score]) -> dict[int, dict[str, Score]]:
    """Scores per latent, keyed `scorer/metric` (e.g. `detection/f1`)."""
    out: dict[int, dict[str, Score]] = {}
    for s in scores:
        out.setdefault(s.latent, {})[f"{s.scorer}/{s.metric}"] = s
    return out


def beats_baseline(score: Score) -> bool:
    """Whether the score's interval lies entirely above its baseline's interval."""
    return bool(
        np.isfinite(score.ci_low)
        and np.isfinite(score.baseline_ci_high)
        and score.ci_low > score.baseline_ci_high
    )


# ----------------------------------------------------------------------------- registered


def _sizes(cfg: InterpretConfig) -> dict[str, int]:
    return {"per_bin": cfg.score_per_bin, "n_bins": cfg.score_bins, "seed": cfg.seed}


def _asked(client: LLM | None) -> LLM:
    assert client is not None, "the registry builds a scorer that asks a model only with a client"
    return client


@register_scorer(scorer_settings("detection"))
def detection_scorer(cfg: InterpretConfig, client: LLM | None) -> Scorer:
    return DetectionScorer(_asked(client), cfg.llm_model, **_sizes(cfg))


@register_scorer(scorer_settings("fuzzing"))
def fuzzing_scorer(cfg: InterpretConfig, client: LLM | None) -> Scorer:
    return FuzzingScorer(_asked(client), cfg.llm_model, **_sizes(cfg))


@register_scorer(scorer_settings("simulation"))
def simulation_scorer(cfg: InterpretConfig, client: LLM | None) -> Scorer:
    return SimulationScorer(_asked(client), cfg.llm_model, **_sizes(cfg))


@register_scorer(scorer_settings("stats"))
def stats_scorer(cfg: InterpretConfig, client: LLM | None) -> Scorer:
    return StatsScorer(**_sizes(cfg))
