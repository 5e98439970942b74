"""saescope: find interpretable features inside language models with sparse autoencoders.

The public API — every stage as a plain function taking its config, and the pieces a notebook
needs:

    import saescope
    saescope.capture_activations(saescope.CaptureConfig(tokens=20_000, out=Path("runs/nb/acts")))
    saescope.train_saes(saescope.TrainConfig(acts=Path("runs/nb/acts"), out=Path("runs/nb/sae")))
    bound = saescope.bind_sae("runs/nb/sae")            # the SAE with its model and hookpoint

Stage functions carry a verb-object name here because `saescope.capture`, `saescope.train`, …
are the modules that hold them. Names are imported on first use, so `import saescope` (and the
command line's `--help`) stays quick; heavy libraries load only when a stage runs.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any

try:
    __version__ = _version("saescope")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    # stages, in pipeline order (public name: the module and the function's own name)
    "capture_activations": "saescope.capture:capture",
    "verify_store": "saescope.store.verify",
    "train_saes": "saescope.train:train",
    "evaluate": "saescope.evals",
    "convert_sae": "saescope.convert:convert",
    "build_index": "saescope.index.build",
    "query_index": "saescope.index.query:query",
    "interpret_latents": "saescope.interpret.command:interpret_latents",
    "write_dashboard": "saescope.dashboard:dashboard",
    "steer_generation": "saescope.steer.experiment:steer",
    "measure_effects": "saescope.steer.effects:effects",
    "contrast_texts": "saescope.steer.contrast:contrast",
    "attribution_graph": "saescope.circuit.command:circuit",
    "serve_run": "saescope.web.serve:serve",
    "compare_saes": "saescope.compare.command:compare",
    "evaluate_metrics": "saescope.compare.evaluate:evaluate",
    "run_demo": "saescope.demo:demo",
    # configs
    "CaptureConfig": "saescope.config",
    "VerifyConfig": "saescope.config",
    "TrainConfig": "saescope.config",
    "EvalConfig": "saescope.config",
    "ConvertConfig": "saescope.config",
    "IndexConfig": "saescope.config",
    "QueryConfig": "saescope.config",
    "InterpretConfig": "saescope.config",
    "ExplanationsConfig": "saescope.config",
    "DashboardConfig": "saescope.config",
    "SteerConfig": "saescope.config",
    "EffectsConfig": "saescope.config",
    "ContrastConfig": "saescope.config",
    "CircuitConfig": "saescope.config",
    "ServeConfig": "saescope.config",
    "CompareConfig": "saescope.config",
    "DemoConfig": "saescope.config",
    "ModelSettings": "saescope.config",
    "CorpusSettings": "saescope.config",
    # models, SAEs, hooks
    "load_model": "saescope.models",
    "load_tokenizer": "saescope.models",
    "load_sae": "saescope.sae.formats",
    "save_sae": "saescope.sae.formats",
    "bind_sae": "saescope.bound",
    "encode_text": "saescope.bound",
    "heldout_corpus": "saescope.bound",
    "BoundSAE": "saescope.bound",
    "resolve_hookpoints": "saescope.hookpoints",
    "collect_activations": "saescope.hooks",
    "patch_activations": "saescope.hooks",
    "iter_positions": "saescope.positions",
    "ActivationStore": "saescope.store",
    # what the later stages hand a notebook: an index to query, edits to generate with
    "Index": "saescope.index.reader",
    "Intervention": "saescope.steer.interventions",
    "Sampling": "saescope.steer.generate",
    "generate_steered": "saescope.steer.steering",
    "latent_effects": "saescope.steer.effects",
    "contrast_latents": "saescope.steer.contrast",
    "best_explanations": "saescope.interpret.tables",
    # measuring SAEs against each other (on activations you have, or a bound SAE)
    "match_decoders": "saescope.compare.matching",
    "measure_absorption": "saescope.compare.absorption:measure",
    "measure_probing": "saescope.compare.probing:measure",
    "SaescopeError": "saescope.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'saescope' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
