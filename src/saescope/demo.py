"""`saescope demo`: the whole pipeline on the embedded model and the built-in corpus.

capture (SmolLM2-135M-Instruct, resid_post:15, built-in corpus) → train a TopK SAE (8× width) → evaluate it
on held-out text → index its latents on more held-out text → explain a few latents (statistics and
the embedded model) → write the static dashboard → steer one latent beside the unsteered completion
and its controls. Each stage reuses what an earlier run finished (a store that is complete, a
trained SAE, an evaluation with the same weights and settings, a complete index, stored
explanations), so running the demo twice is cheap. Only calls the stage functions, as the CLI
would; `--quick` runs every stage small (the test suite runs it). `--circuits` runs the circuits
demo instead (`saescope.demo_circuits`: transcoders at every layer and one attribution graph).
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from .capture import CaptureResult, capture
from .config import CaptureConfig, DashboardConfig, DemoConfig, EvalConfig, IndexConfig, TrainConfig
from .dashboard import DashboardResult, dashboard
from .demo_circuits import CircuitsDemoResult, circuits_demo, circuits_plan_of
from .errors import ConfigError
from .evals import EvalResult, evaluate
from .files import read_json_object
from .index import Index
from .index.build import IndexResult, build_index
from .index.query import render_examples
from .interpret.demo import DemoInterpretation, demo_interpretation
from .steer.experiment import SteerResult
from .steer.showcase import demo_steering
from .train import TrainedSAE, train

log = logging.getLogger(__name__)

MODEL, HOOKPOINT = "smollm2-135m", "resid_post:15"


class DemoPlan(NamedTuple):
    """The demo's settings once the defaults (full or quick) are filled in."""

    out: Path
    tokens: int
    latents: int
    k: int
    epochs: float
    eval_tokens: int
    index_tokens: int
    explain: int


FULL = DemoPlan(Path("runs/demo"), 200_000, 4608, 32, 4.0, 4096, 30_000, 3)
QUICK = DemoPlan(Path("runs/demo-quick"), 16_384, 1152, 16, 2.0, 512, 4096, 1)


def plan_of(cfg: DemoConfig) -> DemoPlan:
    """The quick or full defaults, with every setting `cfg` gives."""
    base = QUICK if cfg.quick else FULL
    given = {f: getattr(cfg, f) for f in DemoPlan._fields if getattr(cfg, f, None) is not None}
    plan = base._replace(**given)
    if plan.k > plan.latents:
        raise ConfigError(f"--k {plan.k} is larger than the SAE width ({plan.latents} latents)")
    return plan


class DemoResult(NamedTuple):
    """Everything the demo made."""

    plan: DemoPlan
    """The settings it ran with."""
    store: CaptureResult
    """The activation store."""
    trained: TrainedSAE | None
    """This run's training (None when an earlier run's SAE was reused)."""
    sae: Path
    """The SAE folder."""
    evaluation: EvalResult
    """Its evaluation on held-out text."""
    indexed: IndexResult
    """Its latent index."""
    interpretation: DemoInterpretation
    """A few latents explained and scored."""
    examples: dict[int, str]
    """Each explained latent's top examples, rendered."""
    dashboard: DashboardResult
    """The static dashboard."""
    steering: SteerResult
    """One steered generation with its controls."""
    seconds: float
    """Wall time of this run."""

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": {**self.plan._asdict(), "out": str(self.plan.out)},
            "store": self.store.to_json(),
            "trained": self.trained._asdict() if self.trained is not None else None,
            "sae": str(self.sae),
            "evaluation": self.evaluation.to_json(),
            "index": self.indexed.to_json(),
            "interpretation": self.interpretation.to_json(),
            "dashboard": self.dashboard.to_json(),
            "steering": self.steering.to_json(),
            "seconds": self.seconds,
        }

    def render(self) -> str:
        e = self.evaluation.evals[0].metrics
        r, s, d = e["reconstruction"], e["sparsity"], e.get("downstream", {})
        recovered = d.get("ce_loss_recovered_zero")
        lines = [
            f"saescope demo: {MODEL} @ {HOOKPOINT}, built-in corpus → {self.plan.out} ({self.seconds:.0f} s)",
            "",
            "[capture] " + self.store.render(),
            "[train]   " + (self.trained_line()),
            f"[eval]    {e['tokens']:,} held-out tokens: FVU {r['fvu']:.4f}, L0 {s['l0_mean']:.1f}, "
            f"dead {100 * s['dead_fraction']:.1f}% (of these tokens)"
            + (f", CE-loss recovered {recovered:.3f} (vs zero ablation)" if recovered is not None else ""),
            "[index]   " + self.indexed.render(),
            "",
            self.interpretation.render(),
        ]
        for latent, text in self.examples.items():
            lines += ["", f"latent {latent}, top examples:", text]
        lines += ["", "[steer]", self.steering.render(), ""]
        lines += [
            "[dashboard] " + self.dashboard.render(),
            f"browse latents, inspect texts and steer in the browser: {saescope_command()} serve "
            f"{self.plan.out}, then open http://127.0.0.1:8000",
        ]
        return "\n".join(lines)

    def trained_line(self) -> str:
        if self.trained is None:
            return f"{self.sae} already held a trained SAE; reused it"
        t = self.trained
        return (
            f"TopK SAE, {self.plan.latents:,} latents, k={self.plan.k}: FVU {t.fvu:.4f}, L0 {t.l0:.1f}, "
            f"dead {100 * t.dead_fraction:.2f}% ({t.tokens:,} tokens, {t.tokens_per_second:,.0f} tok/s)"
            f" → {self.sae}"
        )


def saescope_command() -> str:
    """How to run saescope from the user's shell: `saescope` when that is this installation, else
    the path of this environment's script (`make demo` does not activate the .venv it made)."""
    script = Path(sys.executable).parent / "saescope"
    found = shutil.which("saescope")
    if not script.exists() or (found is not None and Path(found).resolve() == script.resolve()):
        return "saescope"
    try:
        return str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def check_reusable(sae_dir: Path, plan: DemoPlan) -> None:
    """Refuse to reuse a trained SAE of another width or k (it would be reported as this run's)."""
    if not (sae_dir / "sae.safetensors").exists():
        return
    saved = read_json_object(sae_dir / "cfg.json")
    there = (saved.get("architecture"), saved.get("d_sae"), saved.get("k"))
    if there != ("topk", plan.latents, plan.k):
        raise ConfigError(
            f"{sae_dir} holds a {there[0]} SAE with {there[1]} latents and k={there[2]}, not "
            f"--latents {plan.latents} --k {plan.k}; use another --out"
        )


def train_sae(plan: DemoPlan, acts: Path, sae_dir: Path) -> TrainedSAE | None:
    """Train the demo's SAE (resuming an interrupted run), or None when one is already there."""
    if (sae_dir / "sae.safetensors").exists():
        log.info("[train] %s already holds a trained SAE; reusing it", sae_dir)
        return None
    log.info("[train] TopK SAE, %d latents, k=%d → %s", plan.latents, plan.k, sae_dir)
    resume = (sae_dir / "checkpoints").is_dir() and any((sae_dir / "checkpoints").glob("step-*"))
    result = train(
        TrainConfig(
            acts=acts,
            out=sae_dir,
            architecture="topk",
            latents=(plan.latents,),
            k=(plan.k,),
            epochs=plan.epochs,
            batch_size=2048,
            # a latent is dead after a quarter of the run without firing (the 10M-token default is
            # longer than the whole demo)
            dead_tokens=max(int(plan.tokens * plan.epochs) // 4, 4096),
            checkpoint_every=100,
            resume=resume,
        )
    )
    return result.saes[0]


def top_examples(index_dir: Path, latents: list[int], n: int = 3) -> dict[int, str]:
    """Each latent's `n` top examples, rendered as the query command shows them (no colour)."""
    index = Index(index_dir)
    return {
        latent: render_examples("", index.top_examples(latent, n), colour=False).strip("\n")
        for latent in latents
    }


def demo(cfg: DemoConfig) -> DemoResult | CircuitsDemoResult:
    """Run (or finish) the whole demo pipeline, or with --circuits the circuits demo; see the module
    docstring."""
    if cfg.circuits:
        return circuits_demo(circuits_plan_of(cfg))
    started = time.perf_counter()
    plan = plan_of(cfg)
    acts, sae_dir, index_dir, board = (plan.out / p for p in ("acts", "sae", "index", "dashboard"))
    check_reusable(sae_dir, plan)
    log.info("[capture] %s × built-in corpus → %s", MODEL, acts)
    store = capture(
        CaptureConfig(
            model=MODEL,
            dataset="builtin",
            hookpoints=(HOOKPOINT,),
            tokens=plan.tokens,
            out=acts,
            context_len=256,
            batch_size=8,
        )
    )
    trained = train_sae(plan, acts, sae_dir)
    log.info("[eval] %d held-out tokens", plan.eval_tokens)
    evaluation = evaluate(EvalConfig(saes=(sae_dir,), tokens=plan.eval_tokens, batch_size=8))
    log.info("[index] %d held-out tokens → %s", plan.index_tokens, index_dir)
    indexed = build_index(IndexConfig(saes=(sae_dir,), out=(index_dir,), tokens=plan.index_tokens))
    log.info("[interpret] %d latents, by statistics and by %s", plan.explain, MODEL)
    interpretation = demo_interpretation(index_dir, plan.explain)
    examples = top_examples(index_dir, [r.latent for r in interpretation.stats])
    log.info("[dashboard] → %s", board)
    pages = dashboard(DashboardConfig(index=index_dir, out=board))
    log.info("[steer] one latent, beside the unsteered completion and two controls")
    steering = demo_steering(sae_dir, max_new_tokens=16 if cfg.quick else 24)
    seconds = time.perf_counter() - started
    return DemoResult(
        plan, store, trained, sae_dir, evaluation, indexed, interpretation, examples, pages, steering, seconds
    )


__all__ = ["FULL", "QUICK", "DemoPlan", "DemoResult", "demo", "plan_of"]
