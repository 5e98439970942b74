"""Sparse probing: a latent that equals the label is found at k = 1 with held-out accuracy 1 while
the random-projection floor stays near chance; a task with one class is not measured and says so;
a user's labelled JSONL with one class or an unknown field is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from saescope.compare.probing import Features, balanced_split, probing_of, top_by_mean_difference
from saescope.compare.tasks import ProbingTask, labelled_texts
from saescope.config.compare import ProbingSettings
from saescope.errors import SaescopeError
from tests.builders import one_thread, tiny_tokenizer

from .builders import planted_probe_sae


def planted(n: int = 800, d_in: int = 64, d_sae: int = 48, seed: int = 0) -> tuple[Features, int]:
    """Gaussian inputs whose first coordinate is the label (0 or 1), and an SAE whose latent 0 is
    that coordinate thresholded: the latent equals the label (scaled)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen)
    label = torch.rand(n, generator=gen) > 0.5
    x[:, 0] = label.float()
    labels = ["yes" if bool(v) else "no" for v in label]
    sae = planted_probe_sae(d_in, d_sae, seed)
    with torch.no_grad():
        latents = sae.encode_dense(x)
    return Features(x, latents, labels), d_sae


def test_a_latent_equal_to_the_label_gives_accuracy_one_at_k1_and_the_floor_stays_near_chance() -> None:
    features, d_sae = planted()
    task = ProbingTask("planted", "token", "the first input coordinate", [], [])
    with one_thread():
        found = probing_of([(task, features)], d_sae, ProbingSettings(ks=(1, 2, 5)))
    (result,) = found.tasks
    assert result.measured and result.classes == ("no", "yes")
    assert result.accuracy[1] == 1.0
    assert abs(result.floor[1] - 0.5) < 0.1  # near chance: the best of 48 random directions in 64
    assert result.ceiling is not None and result.ceiling > 0.95  # the label is in x
    assert result.test_examples >= 200 and result.train_examples >= 500
    assert found.top1() == 1.0
    shown = result.to_json()
    assert shown["k1"] == 1.0 and shown["floor"] == result.floor[1] and shown["chance"] == 0.5


def test_the_latent_chosen_at_k1_is_the_planted_one() -> None:
    features, _ = planted()
    positive = torch.tensor([label == "yes" for label in features.labels])
    assert top_by_mean_difference(features.latents, positive, 1).tolist() == [0]


def test_a_task_with_one_class_is_not_measured_and_says_why() -> None:
    features, d_sae = planted()
    one = Features(features.raw, features.latents, ["same"] * len(features.labels))
    found = probing_of([(ProbingTask("one", "token", "", [], []), one)], d_sae)
    (result,) = found.tasks
    assert not result.measured and "fewer than two classes" in result.reason
    assert result.accuracy == {} and result.ceiling is None
    assert found.top1() is None  # nothing averaged over nothing
    assert result.to_json()["measured"] is False


def test_classes_are_balanced_and_split_alike() -> None:
    labels = ["a"] * 100 + ["b"] * 30
    train, test = balanced_split(labels, "b", per_class=500, heldout=0.3, seed=0) or ([], [])
    chosen = [labels[i] for i in train + test]
    assert chosen.count("a") == chosen.count("b") == 30
    assert [labels[i] for i in test].count("b") == 9 and not set(train) & set(test)
    assert balanced_split(["a", "a", "b"], "b", 10, 0.3, 0) is None


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_labelled_texts_with_one_class_or_an_unknown_field_are_refused(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "the cat", "label": "x"}] * 5)
    with pytest.raises(SaescopeError, match="one class"):
        labelled_texts(tok, one, ProbingSettings())
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"text": "the cat", "label": "x", "lang": "en"}])
    with pytest.raises(SaescopeError, match=r"unknown\.jsonl:1 has the unknown field 'lang'"):
        labelled_texts(tok, unknown, ProbingSettings())
    good = write_jsonl(
        tmp_path / "good.jsonl", [{"text": "the cat is on the mat", "label": i % 2 == 0} for i in range(6)]
    )
    task = labelled_texts(tok, good, ProbingSettings())
    assert {i.label for i in task.items} == {"True", "False"} and task.unit == "document"
    assert all(i.positions[0] == 1 for i in task.items)  # BOS is not pooled
