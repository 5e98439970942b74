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
    # stages (public name: the module and the function's own name)
    "capture_activations": "saescope.capture:capture",
    "train_saes": "saescope.train:train",
    "evaluate": "saescope.evals",
    "convert_sae": "saescope.convert:convert",
    "run_demo": "saescope.demo:demo",
    "verify_store": "saescope.store.verify",
    # configs
    "CaptureConfig": "saescope.config",
    "TrainConfig": "saescope.config",
    "EvalConfig": "saescope.config",
    "ConvertConfig": "saescope.config",
    "DemoConfig": "saescope.config",
    "VerifyConfig": "saescope.config",
    "ModelSettings": "saescope.config",
    "CorpusSettings": "saescope.config",
    # models, SAEs, hooks
    "load_model": "saescope.models",
    "load_tokenizer": "saescope.models",
    "load_sae": "saescope.sae.formats",
    "save_sae": "saescope.sae.formats",
    "bind_sae": "saescope.bound",
    "heldout_corpus": "saescope.bound",
    "BoundSAE": "saescope.bound",
    "resolve_hookpoints": "saescope.hookpoints",
    "collect_activations": "saescope.hooks",
    "patch_activations": "saescope.hooks",
    "iter_positions": "saescope.positions",
    "ActivationStore": "saescope.store",
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
