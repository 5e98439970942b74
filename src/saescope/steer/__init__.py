"""Steering, clamping, ablation, attribution and contrast with a saved SAE (issue 12).

    from saescope.bound import bind_sae
    from saescope.steer import Intervention, Sampling, generate_steered, latent_effects

    bound = bind_sae("runs/demo/sae")
    edits = [Intervention(1234, "add", 8.0)]
    run = generate_steered(bound, ["The weather"], edits, Sampling(max_new_tokens=30))
    effects = latent_effects(bound, "The Eiffel Tower is in Paris")

One file per concept:

- `interventions`: what an edit of one latent is (mode, value, where);
- `edit`: the arithmetic — x + decode(f') − decode(f), the SAE's error kept by default;
- `places`: which columns of each forward pass an edit covers, for left-padded, KV-cached batches;
- `generate`: our own token-by-token loop over the KV cache (streamable, closable), with a patch;
- `steering`: the Python API binding the three (`generate_steered`, `stream_steered`);
- `controls`, `targets`, `frequencies`: control latents and directions, the effect measure's tokens,
  per-latent statistics (latent index, eval output, or held-out text);
- `variants`: the variants of a request (unsteered, steered, controls) decided, run and measured one
  way for the command line and the server; `measures`: the numbers they report (next-token effect
  and KL, teacher-forced; the change along a completion; perplexity, repeated n-grams);
- `sweep`: the edit at several strengths, with its fluency cost; `preflight`: what is refused
  before the model loads;
- `experiment`: `saescope steer` (steered beside unsteered and controls, with effects);
- `effects`: `saescope effects` (ablation effects, attribution, their correlation);
- `contrast`: `saescope contrast` (the separation score of "Do I Know This Entity?"
  between two sets of texts);
- `texts`: reading and tokenizing the texts users give; `showcase`: the demo's steering run.

The stage functions the command line runs are `experiment.steer`, `effects.effects` and
`contrast.contrast` (each takes its config). The package reads an SAE through `saescope.bound`
and may read a latent index; it knows nothing about training, capture or the web server.
"""

from .contrast import ContrastResult, contrast_latents
from .edit import Steering
from .effects import EffectsResult, latent_effects
from .experiment import SteerResult, run_steering
from .frequencies import FiringStats, firing_stats
from .generate import Completion, Generation, Sampling, Step, generate, generate_steps
from .interventions import Intervention, parse_interventions
from .showcase import demo_steering
from .steering import generate_steered, make_steering, stream_steered
from .sweep import Sweep
from .variants import SteerOptions

__all__ = [
    "Completion",
    "ContrastResult",
    "EffectsResult",
    "FiringStats",
    "Generation",
    "Intervention",
    "Sampling",
    "SteerOptions",
    "SteerResult",
    "Steering",
    "Step",
    "Sweep",
    "contrast_latents",
    "demo_steering",
    "firing_stats",
    "generate",
    "generate_steered",
    "generate_steps",
    "latent_effects",
    "make_steering",
    "parse_interventions",
    "run_steering",
    "stream_steered",
]
