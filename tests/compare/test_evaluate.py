"""`saescope eval --metrics`: absorption and probing measured beside the core metrics, written to
eval.json (kept when a later core evaluation replaces it) and in SAEBench's layout; an unknown
family, or absorption on a tokenizer with too few letter-only tokens, is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from saescope import cli
from saescope.compare.saebench import core_layout
from saescope.files import read_json
from tests.builders import one_thread
from tests.index.builders import save, topk_sae, write_corpus


@pytest.fixture
def sae_and_texts(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path, Path]:
    sae = save(topk_sae(tiny_model_dir, d_sae=32, k=4), tmp_path / "run" / "sae")
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs=20)
    labelled = tmp_path / "labelled.jsonl"
    lines = [{"text": f"the cat is on the mat number {i}", "label": "cat"} for i in range(30)]
    lines += [{"text": f"42 7 42 7 river stone {i}", "label": "numbers"} for i in range(30)]
    labelled.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return sae, corpus, labelled


def eval_argv(sae: Path, corpus: Path, *more: str) -> list[str]:
    return [
        "eval",
        str(sae),
        "--dataset",
        str(corpus),
        "--tokens",
        "200",
        "--context-len",
        "24",
        "--device",
        "cpu",
        *more,
    ]


def test_probing_is_written_beside_core_and_kept_by_a_later_core_evaluation(
    sae_and_texts: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sae, corpus, labelled = sae_and_texts
    argv = eval_argv(
        sae, corpus, "--metrics", "core,probing", "--probing-texts", str(labelled), "--no-downstream"
    )
    with one_thread():
        assert cli.main([*argv, "--json"]) == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)["saes"][0]
    probing = shown["probing"]
    assert probing["labelled"]["measured"] and probing["labelled"]["classes"] == ["cat", "numbers"]
    assert probing["labelled"]["test_examples"] > 0 and 0.0 <= probing["labelled"]["k1"] <= 1.0
    assert (
        not probing["first_letter"]["measured"] and "letter-only tokens" in probing["first_letter"]["reason"]
    )
    assert not probing["script"]["measured"] and "fewer than two scripts" in probing["script"]["reason"]
    assert probing["code_vs_prose"]["measured"] and "reconstruction" in shown
    evaluation = read_json(sae / "eval.json")
    assert evaluation["probing"]["labelled"] == probing["labelled"] and set(
        evaluation["family_weights_sha256"]
    ) == {"probing"}
    saebench = read_json(sae / "eval_saebench_core.json")
    assert saebench["eval_type_id"] == "core" and "sparsity.l1" in saebench["saescope"]["not_measured"]
    assert saebench["eval_result_metrics"]["sparsity"]["l0"] == pytest.approx(4.0)
    assert read_json(sae / "eval_saebench_probing.json")["eval_type_id"] == "sparse_probing"
    # a later core evaluation (other settings) replaces eval.json and keeps the probing result
    with one_thread():
        assert cli.main(eval_argv(sae, corpus, "--tokens", "150", "--no-downstream")) == 0
    text = capsys.readouterr().out
    again = read_json(sae / "eval.json")
    assert again["tokens"] >= 150 and again["probing"] == evaluation["probing"]
    assert "absorption" not in text


def test_an_unknown_metric_family_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", str(tmp_path), "--metrics", "core,splitting"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown metric family 'splitting'" in err[0]


def test_absorption_on_a_tokenizer_with_too_few_letter_tokens_is_one_line(
    sae_and_texts: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sae, corpus, _ = sae_and_texts
    with one_thread():
        assert cli.main(eval_argv(sae, corpus, "--metrics", "absorption")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "letter-only tokens, fewer than the 260" in err[0]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"text": "the cat", "label": "cat"}, "has one class ('cat'"),
        ({"text": "the cat", "label": "cat", "lang": "en"}, "bad.jsonl:1 has the unknown field 'lang'"),
    ],
    ids=["one class", "unknown field"],
)
def test_labelled_texts_with_one_class_or_an_unknown_field_are_one_line(
    sae_and_texts: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    record: dict[str, str],
    message: str,
) -> None:
    sae, corpus, labelled = sae_and_texts
    bad = labelled.with_name("bad.jsonl")
    bad.write_text(json.dumps(record) + "\n")
    with one_thread():
        assert cli.main(eval_argv(sae, corpus, "--metrics", "probing", "--probing-texts", str(bad))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_the_core_metrics_in_saebench_layout_map_one_to_one() -> None:
    metrics = {
        "tokens": 100,
        "reconstruction": {
            "explained_variance": 0.8,
            "mse": 0.01,
            "cosine_similarity": 0.9,
            "norm_ratio": 0.95,
            "relative_reconstruction_bias": 0.97,
        },
        "sparsity": {"l0_mean": 32.0, "dead_fraction": 0.25, "dense_latents": 2},
        "downstream": {
            "kl_score_zero": 0.9,
            "kl_zero_ablation": 5.0,
            "kl_spliced": 0.5,
            "ce_loss_recovered_zero": 0.95,
            "ce_zero_ablation": 9.0,
            "ce_spliced": 3.3,
            "ce_clean": 3.0,
        },
        "sae": {"d_sae": 8},
        "settings": {"model": "m", "corpus": {"dataset": "builtin", "context_len": 256}},
    }
    out = core_layout(metrics, {"d_sae": 8})
    m = out["eval_result_metrics"]
    assert m["model_performance_preservation"]["ce_loss_score"] == 0.95
    assert m["model_behavior_preservation"]["kl_div_score"] == 0.9
    assert m["reconstruction_quality"] == {"explained_variance": 0.8, "mse": 0.01, "cossim": 0.9}
    assert m["misc_metrics"] == {"frac_alive": 0.75, "freq_over_10_percent": 0.25}
    assert m["token_stats"]["total_tokens_eval_reconstruction"] == 100
    assert set(out) >= {
        "eval_type_id",
        "eval_config",
        "eval_id",
        "datetime_epoch_millis",
        "eval_result_details",
    }
    del metrics["downstream"]
    assert "model_performance_preservation" in core_layout(metrics, {})["saescope"]["not_measured"]


def test_absorption_in_saebench_layout_names_only_the_letters_skipped() -> None:
    from saescope.compare.saebench import absorption_layout

    letter = {
        "probe_f1": 0.9,
        "heldout_words": 10,
        "main_latents": [3, 4],
        "main_f1": 0.8,
        "probe_true_positives": 9,
        "mean_fraction": 0.25,
        "full_rate": 0.5,
        "full_absorptions": 4,
    }
    found = {"mean_fraction": 0.25, "full_rate": 0.5, "per_letter": {"a": letter}, "skipped": []}
    out = absorption_layout(found, {})
    assert out["saescope"]["not_measured"] == []
    assert out["eval_result_metrics"]["mean"]["mean_num_split_features"] == 2.0
    assert out["eval_result_metrics"]["mean"]["std_dev_absorption_fraction_score"] is None  # one letter
    skipped = {**found, "skipped": [{"letter": "z", "reason": "probe F1 0.400 < 0.6"}]}
    assert absorption_layout(skipped, {})["saescope"]["not_measured"] == ["letter z: probe F1 0.400 < 0.6"]
