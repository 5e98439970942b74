"""Sparse probing (SAEBench's, offline): can a few latents tell the classes of a task apart?

    found = measure(bound_sae)                        # the offline tasks (`tasks`)
    found.tasks[0].accuracy[1], .ceiling, .floor       # held-out balanced accuracies

For each task, each binary problem (two classes; one class against the rest for each class of a
task with more), classes balanced by sampling (`per_class` each at most, so chance is 0.5) and
split (stratified, seeded) into training and held-out examples:

- the SAE at k (k in `ks`): the k latents whose mean activation differs most between the classes
  on the training examples (absolute difference of means, SAEBench), a logistic regression on
  them (`logistic`), its balanced accuracy on the held-out examples;
- ceiling: the same logistic regression on all of the raw activations;
- floor: the SAE's procedure on a random projection of the raw activations to as many directions
  as the SAE has latents (Gaussian, seeded): what choosing k of that many directions gives with no
  dictionary learning. `floor` is its k = 1 accuracy (beside the SAE's top-1), `floor_by_k` all.

A per-document example is the mean over its tokens (BOS left out) of the raw activations, of the
SAE's latents (SAEBench pools latents, not inputs) and of the projection. A task's accuracies are
the means over its binary problems. A task or class with too few examples is not measured and
says so; no number is averaged over nothing.
This module knows nothing about files or the CLI.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..bound import BoundSAE, heldout_corpus
from ..config.compare import AbsorptionSettings, ProbingSettings
from .absorption import WordActivations
from .activations import activations_at
from .logistic import balanced_accuracy, fit_logistic
from .tasks import ProbeItem, ProbingTask, code_vs_prose, first_letter_task, in_string, labelled_texts, script

log = logging.getLogger(__name__)

Encoder = Callable[[Tensor], Tensor]
"""Activations [n, d_in] → dense latent activations [n, d_sae]."""


class Features(NamedTuple):
    """A task's examples as probe inputs."""

    raw: Tensor
    """[n, d_in] the model's activations (pooled per document)."""
    latents: Tensor
    """[n, d_sae] the SAE's latents (pooled per document)."""
    labels: list[str]
    """[n] classes."""


class ProblemAccuracy(NamedTuple):
    """Held-out balanced accuracies of one binary problem."""

    sae: dict[int, float]
    """k → the SAE's k-latent probe."""
    ceiling: float
    """The probe on all raw activations."""
    floor: dict[int, float]
    """k → the same procedure on the random projection."""
    train: int
    """Training examples (both classes)."""
    test: int
    """Held-out examples (both classes)."""


class TaskProbing(NamedTuple):
    """One task's sparse probing (or why it was not measured)."""

    task: str
    """Its name."""
    unit: str
    """`document` or `token`."""
    description: str
    """What is labelled."""
    classes: tuple[str, ...]
    """The classes probed (one problem for two; one against the rest for each of more)."""
    train_examples: int
    """Training examples, summed over the problems."""
    test_examples: int
    """Held-out examples every accuracy is measured on, summed over the problems."""
    accuracy: dict[int, float]
    """k → the SAE's mean held-out balanced accuracy."""
    ceiling: float | None
    """The raw activations' (None: not measured)."""
    floor: dict[int, float]
    """k → the random projection's."""
    reason: str = ""
    """Why it was not measured ("" when it was)."""

    @property
    def measured(self) -> bool:
        return not self.reason

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"k{k}": v for k, v in self.accuracy.items()}
        out.update(
            ceiling=self.ceiling,
            floor=self.floor.get(1, next(iter(self.floor.values()), None)) if self.floor else None,
            floor_by_k={f"k{k}": v for k, v in self.floor.items()},
            measured=self.measured,
            reason=self.reason,
            unit=self.unit,
            description=self.description,
            classes=list(self.classes),
            train_examples=self.train_examples,
            test_examples=self.test_examples,
            chance=0.5,
        )
        return out


class Probing(NamedTuple):
    """Sparse probing of one SAE over its tasks."""

    tasks: tuple[TaskProbing, ...]
    """In the order run."""
    latents: int
    """The SAE's width (and the random projection's)."""
    settings: dict[str, Any]
    """The settings it ran with."""

    def top1(self) -> float | None:
        """The mean k = 1 accuracy over the measured tasks (None when none was)."""
        values = [t.accuracy[1] for t in self.tasks if t.measured and 1 in t.accuracy]
        return sum(values) / len(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {t.task: t.to_json() for t in self.tasks}


# ----- one binary problem ----------------------------------------------------------------------------
def top_by_mean_difference(features: Tensor, positive: Tensor, k: int) -> Tensor:
    """The `k` features whose means differ most (absolute) between positives and the rest."""
    difference = (features[positive].mean(0) - features[~positive].mean(0)).abs()
    return difference.topk(min(k, features.shape[1])).indices


def accuracy_of(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> float:
    probe = fit_logistic(train_x, train_y)
    return balanced_accuracy(probe.decision(test_x)[:, 0] > 0, test_y)


def probe_problem(
    train: Features, train_y: Tensor, test: Features, test_y: Tensor, projection: Tensor, ks: Sequence[int]
) -> ProblemAccuracy:
    """The SAE's k-sparse probes, the ceiling and the floor of one balanced binary problem."""
    sae, floor = {}, {}
    biggest = max(ks)
    top_latents = top_by_mean_difference(train.latents, train_y, biggest)
    # the projection is linear: its features' mean difference is the raw one's, projected
    raw_difference = train.raw[train_y].mean(0) - train.raw[~train_y].mean(0)
    top_directions = (raw_difference @ projection).abs().topk(min(biggest, projection.shape[1])).indices
    proj_train, proj_test = (
        train.raw @ projection[:, top_directions],
        test.raw @ projection[:, top_directions],
    )
    for k in ks:
        chosen = top_latents[:k]
        sae[k] = accuracy_of(train.latents[:, chosen], train_y, test.latents[:, chosen], test_y)
        floor[k] = accuracy_of(proj_train[:, :k], train_y, proj_test[:, :k], test_y)
    ceiling = accuracy_of(train.raw, train_y, test.raw, test_y)
    return ProblemAccuracy(sae, ceiling, floor, len(train_y), len(test_y))


def balanced_split(
    labels: Sequence[str], positive: str, per_class: int, heldout: float, seed: int
) -> tuple[list[int], list[int]] | None:
    """(training, held-out) example indices of `positive` against the rest, classes balanced by
    sampling and split alike; None when a class has fewer than 2 examples."""
    rng = random.Random(seed)
    pos = [i for i, label in enumerate(labels) if label == positive]
    neg = [i for i, label in enumerate(labels) if label != positive]
    n = min(len(pos), len(neg), per_class)
    if n < 2:
        return None
    train, test = [], []
    for group in (rng.sample(pos, n), rng.sample(neg, n)):
        cut = n - max(1, round(heldout * n))
        train += group[:cut]
        test += group[cut:]
    return sorted(train), sorted(test)


def subset(features: Features, rows: list[int]) -> Features:
    return Features(features.raw[rows], features.latents[rows], [features.labels[i] for i in rows])


def probe_features(
    name: str, features: Features, projection: Tensor, settings: ProbingSettings
) -> tuple[list[str], list[ProblemAccuracy], str]:
    """(classes probed, each problem's accuracies, why not measured) of a task's features."""
    counts: dict[str, int] = {}
    for label in features.labels:
        counts[label] = counts.get(label, 0) + 1
    classes = sorted(c for c, n in counts.items() if n >= settings.min_per_class)
    if len(classes) < 2:
        shown = ", ".join(f"{c}: {n}" for c, n in sorted(counts.items())) or "none"
        return [], [], f"fewer than two classes with {settings.min_per_class} examples ({shown})"
    kept = [i for i, label in enumerate(features.labels) if label in classes]
    features = subset(features, kept)
    positives = classes[1:] if len(classes) == 2 else classes
    problems = []
    for c in positives:
        split = balanced_split(
            features.labels, c, settings.per_class, settings.heldout_fraction, settings.seed
        )
        if split is None:
            continue
        train, test = subset(features, split[0]), subset(features, split[1])
        y_train = torch.tensor([label == c for label in train.labels])
        y_test = torch.tensor([label == c for label in test.labels])
        problems.append(probe_problem(train, y_train, test, y_test, projection, settings.ks))
    log.info("probing %s: %d problems over %d examples", name, len(problems), len(features.labels))
    return classes, problems, "" if problems else "no class had examples on both sides"


def task_probing(
    task: ProbingTask, features: Features | None, projection: Tensor, settings: ProbingSettings
) -> TaskProbing:
    """A task's accuracies, means over its binary problems."""
    if features is None or task.reason:
        return TaskProbing(
            task.name, task.unit, task.description, (), 0, 0, {}, None, {}, task.reason or "no examples"
        )
    classes, problems, reason = probe_features(task.name, features, projection, settings)
    if reason:
        return TaskProbing(task.name, task.unit, task.description, tuple(classes), 0, 0, {}, None, {}, reason)
    n = len(problems)
    return TaskProbing(
        task.name,
        task.unit,
        task.description,
        tuple(classes),
        sum(p.train for p in problems),
        sum(p.test for p in problems),
        {k: sum(p.sae[k] for p in problems) / n for k in settings.ks},
        sum(p.ceiling for p in problems) / n,
        {k: sum(p.floor[k] for p in problems) / n for k in settings.ks},
    )


# ----- features from the model ---------------------------------------------------------------------
def compact(task: ProbingTask) -> ProbingTask:
    """The task with only the sequences its items use (the model reads no other)."""
    used = sorted({item.text for item in task.items})
    where = {old: new for new, old in enumerate(used)}
    items = [ProbeItem(where[i.text], i.positions, i.label) for i in task.items]
    return task._replace(sequences=[task.sequences[i] for i in used], items=items)


def task_features(bound: BoundSAE, task: ProbingTask, encode: Encoder, batch_size: int) -> Features | None:
    """Raw activations and latents of a task's items (pooled per document), None without items."""
    if not task.items:
        return None
    task = compact(task)
    positions = [
        sorted({p for item in task.items if item.text == i for p in item.positions})
        for i in range(len(task.sequences))
    ]
    rows = activations_at(bound, task.sequences, positions, batch_size, f"probing {task.name}")
    raw, latents = [], []
    for item in task.items:
        at = [positions[item.text].index(p) for p in item.positions]
        x = rows[item.text][at]
        raw.append(x.mean(0))
        latents.append(encode(x).float().cpu().mean(0))
    return Features(torch.stack(raw), torch.stack(latents), [item.label for item in task.items])


def random_projection(d_in: int, width: int, seed: int) -> Tensor:
    """[d_in, width] Gaussian directions, unit columns (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(d_in, width, generator=gen)
    return r / r.norm(dim=0, keepdim=True)


def offline_tasks(
    bound: BoundSAE, settings: ProbingSettings, absorption: AbsorptionSettings, corpus: str | None = None
) -> list[ProbingTask]:
    """The offline tasks `settings.tasks` names, built for this SAE's tokenizer; the script task
    reads `corpus` (a dataset as `--dataset` takes it), else the SAE's own."""
    tokenizer = bound.loaded_model.tokenizer
    text = heldout_corpus(bound.sae, corpus).corpus
    builders: dict[str, Callable[[], ProbingTask]] = {
        "code_vs_prose": lambda: code_vs_prose(tokenizer, settings),
        "in_string": lambda: in_string(tokenizer, settings),
        "script": lambda: script(tokenizer, settings, text),
        "first_letter": lambda: first_letter_task(tokenizer, absorption),
    }
    return [builders[name]() for name in settings.tasks]


def word_features(words: WordActivations, encode: Encoder) -> Features:
    """The first-letter task's features from word activations already read (absorption's)."""
    raw = torch.cat([words.x_train, words.x_test])
    latents = torch.cat([encode(raw[s : s + 1024]).float().cpu() for s in range(0, len(raw), 1024)])
    return Features(raw, latents, [w.letter for w in [*words.train, *words.test]])


def measure(
    bound: BoundSAE,
    settings: ProbingSettings | None = None,
    labelled: Path | None = None,
    absorption: AbsorptionSettings | None = None,
    words: WordActivations | None = None,
    corpus: str | None = None,
) -> Probing:
    """Sparse probing of a bound SAE on the offline tasks (and `labelled`, a JSONL of labelled
    texts); see the module docstring. `absorption` sets the first-letter words; `words`: their
    activations when the caller has read them (`absorption.word_activations`); `corpus`: the
    script task's corpus (default: the SAE's own)."""
    settings = settings or ProbingSettings()
    absorption = absorption or AbsorptionSettings()
    sae = bound.sae
    tasks = offline_tasks(bound, settings, absorption, corpus)
    if labelled is not None:
        tasks.append(labelled_texts(bound.loaded_model.tokenizer, labelled, settings))
    projection = random_projection(sae.d_in, sae.d_sae, settings.seed)

    def encode(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return sae.encode_dense(x.to(sae.W_dec.device))

    results = []
    for task in tasks:
        if task.name == "first_letter" and words is not None and not task.reason:
            features: Features | None = word_features(words, encode)
        else:
            features = task_features(bound, task, encode, settings.batch_size)
        results.append(task_probing(task, features, projection, settings))
    return Probing(
        tuple(results), sae.d_sae, {**settings.__dict__, "labelled": str(labelled) if labelled else None}
    )


def probing_of(
    tasks: Sequence[tuple[ProbingTask, Features]], d_sae: int, settings: ProbingSettings | None = None
) -> Probing:
    """Sparse probing of features already computed (tests, benchmarks): each task with its features."""
    settings = settings or ProbingSettings()
    d_in = tasks[0][1].raw.shape[1] if tasks else 1
    projection = random_projection(d_in, d_sae, settings.seed)
    return Probing(
        tuple(task_probing(task, features, projection, settings) for task, features in tasks),
        d_sae,
        dict(settings.__dict__),
    )


__all__ = [
    "Features",
    "Probing",
    "TaskProbing",
    "balanced_split",
    "measure",
    "probe_problem",
    "probing_of",
    "random_projection",
    "top_by_mean_difference",
]
