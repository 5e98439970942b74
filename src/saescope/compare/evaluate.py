"""`saescope eval --metrics core,absorption,probing`: the metric families measured and written together.

    saescope eval runs/demo/sae --metrics core,absorption,probing

Core (reconstruction, sparsity, downstream) is `saescope.evals`' own evaluation, run unchanged;
absorption (`absorption.measure`) and sparse probing (`probing.measure`) are measured here on the
same bound SAEs (one model load shared by all). Each family's result is cached beside the SAE
(`evals/<family>-<key>.json`, the key from the weights and the family's settings, so rerunning
reuses it) and recorded in the SAE's eval.json under its name, with the digest of the weights it
is of; `--json` prints every SAE's families with the core metrics. The core metrics are also
written in SAEBench's layout (`eval_saebench_core.json`), and absorption and probing in theirs
(`eval_saebench_absorption.json`, `eval_saebench_probing.json`), beside the SAE (`saebench`).

A tokenizer with too few letter-only tokens for the first-letter task is an error for absorption
(one line, exit 2); the probing task of the same name is then listed as not measured.
This module knows nothing about how the families measure.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ..bound import BoundSAE, bind_sae
from ..config import EvalConfig, model_of
from ..config.compare import AbsorptionSettings, ProbingSettings
from ..errors import SaescopeError
from ..evals import EVALS_DIR, EvalResult, SAEEval, format_table, headline, record_family, weights_digest
from ..evals import evaluate as evaluate_core
from ..files import json_safe, read_json, text_sha256, write_json
from ..models import LoadedModel
from ..sae.source import sae_home
from . import absorption, probing
from .saebench import absorption_layout, core_layout, probing_layout

log = logging.getLogger(__name__)

SAEBENCH_FILES = {
    "core": "eval_saebench_core.json",
    "absorption": "eval_saebench_absorption.json",
    "probing": "eval_saebench_probing.json",
}
"""Beside each SAE: its families in SAEBench's layouts."""


class Evaluation(NamedTuple):
    """Every SAE's metric families."""

    evals: list[SAEEval]
    """One per SAE, in the order given: eval.json's core metrics (when measured) and each family asked."""
    comparison_plot: Path | None
    """The L0-vs-FVU plot when several SAEs' core metrics were compared."""
    families: tuple[str, ...]
    """The families measured."""

    def to_json(self) -> dict[str, Any]:
        return EvalResult(self.evals, self.comparison_plot).to_json()

    def render(self) -> str:
        from .eval_report import render_evaluation

        return render_evaluation(self)


def family_settings(cfg: EvalConfig, family: str) -> dict[str, Any]:
    """What a family's result depends on besides the weights (its cache key)."""
    base = {"model": cfg.model, "revision": cfg.revision, "model_dtype": cfg.model_dtype}
    if family == "absorption":
        return {**base, "absorption": dataclasses.asdict(AbsorptionSettings())}
    labelled = cfg.probing_texts
    digest = text_sha256(labelled.read_text(encoding="utf-8")) if labelled and labelled.is_file() else None
    return {
        **base,
        "probing": dataclasses.asdict(ProbingSettings()),
        "absorption": dataclasses.asdict(AbsorptionSettings()),
        "labelled": [str(labelled), digest] if labelled else None,
        "corpus": [cfg.dataset, cfg.split, cfg.text_field],
    }


def family_file(path: Path, family: str, cfg: EvalConfig) -> Path:
    """`evals/<family>-<key>.json` beside the SAE."""
    settings = json.dumps(json_safe(family_settings(cfg, family)), sort_keys=True)
    return path / EVALS_DIR / f"{family}-{text_sha256(weights_digest(path) + settings)[:16]}.json"


def cached(target: Path) -> dict[str, Any] | None:
    if not target.is_file():
        return None
    found = read_json(target)
    return found if isinstance(found, dict) else None


class Measurer(NamedTuple):
    """One SAE bound to its model on first use, and its first-letter word activations read once
    for absorption and sparse probing both."""

    bind: Callable[[], BoundSAE]
    """The bound SAE (bound on the first call)."""
    words: Callable[[], absorption.WordActivations]
    """Its word activations (read on the first call)."""

    def measure(self, family: str, cfg: EvalConfig) -> dict[str, Any]:
        """One family's result as JSON."""
        if family == "absorption":
            return absorption.measure(self.bind(), words=self.words()).to_json()
        try:
            words: absorption.WordActivations | None = self.words()
        except SaescopeError:  # too few letter-only tokens: probing's first-letter task says so
            words = None
        found = probing.measure(self.bind(), labelled=cfg.probing_texts, words=words, corpus=cfg.dataset)
        return found.to_json()


def family_of(path: Path, family: str, cfg: EvalConfig, measurer: Measurer) -> dict[str, Any]:
    """A family's result for the SAE at `path`: cached, or measured and cached."""
    target = family_file(path, family, cfg)
    found = cached(target)
    if found is not None:
        log.info("%s: reusing its %s result (%s)", path, family, target)
        return found
    result = measurer.measure(family, cfg)
    target.parent.mkdir(exist_ok=True)
    write_json(target, result)
    return result


def measurer(path: Path, cfg: EvalConfig, models: dict[str, LoadedModel]) -> Measurer:
    """The SAE at `path`, bound (sharing `models`) and its words read only when first asked for."""
    bound: list[BoundSAE] = []
    words: list[absorption.WordActivations] = []

    def bind() -> BoundSAE:
        if not bound:
            settings = model_of(cfg)
            bound.append(bind_sae(path, cfg.model or None, force=cfg.force, settings=settings, models=models))
        return bound[0]

    def read_words() -> absorption.WordActivations:
        if not words:
            words.append(absorption.word_activations(bind(), AbsorptionSettings()))
        return words[0]

    return Measurer(bind, read_words)


def write_saebench(path: Path, evaluation: dict[str, Any], families: tuple[str, ...]) -> None:
    """The families measured, in SAEBench's layouts beside the SAE."""
    sae_cfg = read_json(path / "cfg.json") if (path / "cfg.json").is_file() else {}
    layouts = {"core": core_layout, "absorption": absorption_layout, "probing": probing_layout}
    for family in families:
        if family == "core" and "reconstruction" not in evaluation:
            continue
        source = evaluation if family == "core" else evaluation.get(family)
        if isinstance(source, dict):
            write_json(path / SAEBENCH_FILES[family], layouts[family](source, sae_cfg))


def evaluate(cfg: EvalConfig) -> Evaluation:
    """`saescope eval` with every family of `cfg.metrics` (see the module docstring)."""
    models: dict[str, LoadedModel] = {}
    core = (
        evaluate_core(dataclasses.replace(cfg, metrics=("core",), probing_texts=None), models)
        if "core" in cfg.metrics
        else None
    )
    extra = [m for m in cfg.metrics if m != "core"]
    paths = [e.path for e in core.evals] if core else [sae_home(p) for p in cfg.saes]
    evals = []
    for i, path in enumerate(paths):
        measuring = measurer(path, cfg, models)
        metrics = dict(core.evals[i].metrics) if core else {}
        evaluation = headline(path) or {}
        for family in extra:
            result = family_of(path, family, cfg, measuring)
            evaluation = record_family(path, family, result)
            metrics[family] = result
        write_saebench(path, {**evaluation, **metrics}, tuple(cfg.metrics))
        evals.append(SAEEval(path, metrics))
    return Evaluation(evals, core.comparison_plot if core else None, tuple(cfg.metrics))


__all__ = ["SAEBENCH_FILES", "Evaluation", "evaluate", "format_table"]
