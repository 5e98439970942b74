"""Our evaluation in SAEBench's JSON layouts, so SAEBench users can line ours up with theirs.

SAEBench (Karvonen et al. 2025, `sae_bench/evals/*/eval_output.py`) writes one JSON document per
SAE and eval: `eval_type_id`, `eval_config`, `eval_id`, `datetime_epoch_millis`,
`eval_result_metrics` (categories of flat metrics), `eval_result_details` (per feature, letter or
dataset), `eval_result_unstructured`, `sae_bench_commit_hash`, `sae_lens_id`,
`sae_lens_release_id`, `sae_lens_version`, `sae_cfg_dict`. Here:

- core (`core`): ours map one to one — CE loss score = CE loss recovered against zero ablation
  (SAEBench ablates to zero), KL divergence score = 1 − KL(spliced)/KL(zero-ablated), explained
  variance = 1 − FVU (against the mean), MSE per element, mean cosine, L2 ratio = mean ‖x̂‖/‖x‖,
  relative reconstruction bias, L0, fraction alive, fraction of latents firing on more than 10% of
  tokens. Metrics saescope does not measure (L1, the mean input and output norms, the legacy
  explained variance, the encoder/decoder similarity statistics) are left out, never filled with
  a placeholder, and named in `saescope.not_measured`;
- absorption (`absorption_first_letter`): the mean absorption fraction and full-absorption rate
  over the letters measured, the main latents per letter (`num_split_features`), per-letter details;
- sparse probing (`sparse_probing`): `llm_test_accuracy` is our ceiling, `sae_top_k_test_accuracy`
  our k-latent accuracies (means over the tasks measured); per-task details. SAEBench's
  `llm_top_k` (top-k raw neurons) is not measured (null, which its schema allows).

Our tasks, words and token counts differ from SAEBench's datasets: the layout lines the numbers
up, it does not make them the same experiment (`saescope.notes` says so in every file).
This module knows nothing about how the numbers were measured.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from .. import __version__

NOTE = (
    "measured by saescope on its own offline data (see eval_config): same definitions as SAEBench, "
    "not the same datasets or token counts"
)
CORE_NOT_MEASURED = (
    "sparsity.l1",
    "shrinkage.l2_norm_in",
    "shrinkage.l2_norm_out",
    "reconstruction_quality.explained_variance_legacy",
    "misc_metrics.freq_over_1_percent",
    "misc_metrics.normalized_freq_over_1_percent",
    "misc_metrics.normalized_freq_over_10_percent",
    "misc_metrics.average_max_encoder_cosine_sim",
    "misc_metrics.average_max_decoder_cosine_sim",
)


def envelope(
    eval_type: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    details: list[Any],
    sae_cfg: dict[str, Any],
    not_measured: list[str],
) -> dict[str, Any]:
    """The fields every SAEBench eval output has."""
    return {
        "eval_type_id": eval_type,
        "eval_config": config,
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": metrics,
        "eval_result_details": details,
        "eval_result_unstructured": None,
        "sae_bench_commit_hash": None,
        "sae_lens_id": None,
        "sae_lens_release_id": None,
        "sae_lens_version": None,
        "sae_cfg_dict": sae_cfg,
        "saescope": {"version": __version__, "notes": NOTE, "not_measured": not_measured},
    }


def core_layout(metrics: dict[str, Any], sae_cfg: dict[str, Any]) -> dict[str, Any]:
    """`eval.json`'s core metrics as SAEBench's core eval output."""
    r, s, d = metrics["reconstruction"], metrics["sparsity"], metrics.get("downstream")
    settings = metrics.get("settings", {})
    tokens = int(metrics["tokens"])
    d_sae = int(metrics.get("sae", {}).get("d_sae") or sae_cfg.get("d_sae") or 0)
    out: dict[str, Any] = {
        "reconstruction_quality": {
            "explained_variance": r["explained_variance"],
            "mse": r["mse"],
            "cossim": r["cosine_similarity"],
        },
        "shrinkage": {
            "l2_ratio": r["norm_ratio"],
            "relative_reconstruction_bias": r["relative_reconstruction_bias"],
        },
        "sparsity": {"l0": s["l0_mean"]},
        "token_stats": {
            "total_tokens_eval_reconstruction": tokens,
            "total_tokens_eval_sparsity_variance": tokens,
        },
        "misc_metrics": {
            "frac_alive": 1.0 - s["dead_fraction"],
            "freq_over_10_percent": s["dense_latents"] / d_sae if d_sae else None,
        },
    }
    not_measured = list(CORE_NOT_MEASURED)
    if d is not None:
        out["model_behavior_preservation"] = {
            "kl_div_score": d["kl_score_zero"],
            "kl_div_with_ablation": d["kl_zero_ablation"],
            "kl_div_with_sae": d["kl_spliced"],
        }
        out["model_performance_preservation"] = {
            "ce_loss_score": d["ce_loss_recovered_zero"],
            "ce_loss_with_ablation": d["ce_zero_ablation"],
            "ce_loss_with_sae": d["ce_spliced"],
            "ce_loss_without_sae": d["ce_clean"],
        }
    else:
        not_measured += ["model_behavior_preservation", "model_performance_preservation"]
    eval_config = settings.get("eval_config", {})
    config = {
        "model_name": settings.get("model", ""),
        "dataset": (settings.get("corpus") or {}).get("dataset", ""),
        "context_size": (settings.get("corpus") or {}).get("context_len"),
        "batch_size_prompts": eval_config.get("batch_size"),
        "compute_kl": d is not None,
        "compute_ce_loss": d is not None,
        "compute_l2_norms": False,
        "compute_sparsity_metrics": True,
        "compute_variance_metrics": True,
        "compute_featurewise_density_statistics": False,
        "compute_featurewise_weight_based_metrics": False,
        "exclude_special_tokens_from_reconstruction": True,
        "saescope_hookpoint": settings.get("hookpoint"),
    }
    return envelope("core", config, out, [], sae_cfg, not_measured)


def spread(values: list[float]) -> float | None:
    """Standard deviation of at least two values (None for fewer: not measured)."""
    return statistics.stdev(values) if len(values) >= 2 else None


def absorption_layout(found: dict[str, Any], sae_cfg: dict[str, Any]) -> dict[str, Any]:
    """Our absorption result (`Absorption.to_json()`) as SAEBench's absorption eval output."""
    letters = found.get("per_letter", {})
    fractions = [v["mean_fraction"] for v in letters.values()]
    fulls = [v["full_rate"] for v in letters.values()]
    splits = [float(len(v["main_latents"])) for v in letters.values()]
    metrics = {
        "mean": {
            "mean_absorption_fraction_score": found.get("mean_fraction"),
            "mean_full_absorption_score": found.get("full_rate"),
            "mean_num_split_features": sum(splits) / len(splits) if splits else None,
            "std_dev_absorption_fraction_score": spread(fractions),
            "std_dev_full_absorption_score": spread(fulls),
            "std_dev_num_split_features": spread(splits),
        }
    }
    details = [
        {
            "first_letter": letter,
            "mean_absorption_fraction": v["mean_fraction"],
            "full_absorption_rate": v["full_rate"],
            "num_full_absorption": v["full_absorptions"],
            "num_probe_true_positives": v["probe_true_positives"],
            "num_split_features": len(v["main_latents"]),
        }
        for letter, v in sorted(letters.items())
    ]
    settings = found.get("settings", {})
    config = {
        "model_name": sae_cfg.get("model", ""),
        "random_seed": settings.get("seed"),
        "f1_jump_threshold": settings.get("f1_jump"),
        "max_k_value": settings.get("max_k"),
        "prompt_template": "{word} has the first letter:",
        "min_GT_probe_f1": settings.get("min_probe_f1"),
        "saescope_words": found.get("heldout_words", 0) + found.get("train_words", 0),
    }
    return envelope(
        "absorption_first_letter",
        config,
        metrics,
        details,
        sae_cfg,
        [f"letter {s['letter']}: {s['reason']}" for s in found.get("skipped", [])],
    )


def probing_layout(found: dict[str, Any], sae_cfg: dict[str, Any]) -> dict[str, Any]:
    """Our sparse probing (`Probing.to_json()`) as SAEBench's sparse-probing eval output."""
    measured = {name: t for name, t in found.items() if t.get("measured")}
    ks = sorted({int(k[1:]) for t in measured.values() for k in t if k[:1] == "k" and k[1:].isdigit()})

    def mean(key: str) -> float | None:
        values = [t[key] for t in measured.values() if t.get(key) is not None]
        return sum(values) / len(values) if values else None

    sae = {"sae_test_accuracy": None, **{f"sae_top_{k}_test_accuracy": mean(f"k{k}") for k in ks}}
    llm = {"llm_test_accuracy": mean("ceiling"), **{f"llm_top_{k}_test_accuracy": None for k in ks}}
    details = [
        {
            "dataset_name": name,
            "llm_test_accuracy": t["ceiling"],
            **{f"sae_top_{k}_test_accuracy": t.get(f"k{k}") for k in ks},
        }
        for name, t in measured.items()
    ]
    config = {"model_name": sae_cfg.get("model", ""), "dataset_names": list(measured), "k_values": ks}
    not_measured = ["sae_test_accuracy", "llm_top_k_test_accuracy"] + [
        f"{n}: {t.get('reason')}" for n, t in found.items() if not t.get("measured")
    ]
    return envelope("sparse_probing", config, {"llm": llm, "sae": sae}, details, sae_cfg, not_measured)


__all__ = ["absorption_layout", "core_layout", "probing_layout"]
