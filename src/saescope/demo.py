"""`saescope demo`: the whole pipeline on the embedded model and the built-in corpus.

capture (SmolLM2-135M, resid_post:15, built-in corpus) → train a TopK SAE (8× width) → evaluate
it on held-out text. Each stage reuses what an earlier run already finished, so running the demo
twice is cheap. Only calls the stage functions, exactly as the CLI would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from .capture import CaptureResult, capture
from .config import CaptureConfig, DemoConfig, EvalConfig, TrainConfig
from .errors import ConfigError
from .evals import EvalResult, evaluate, format_table
from .files import read_json_object
from .train import TrainedSAE, train

log = logging.getLogger(__name__)


class DemoResult(NamedTuple):
    store: Path
    sae: TrainedSAE | None
    sae_path: Path
    evaluation: EvalResult

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "sae": str(self.sae_path),
            "trained": self.sae._asdict() if self.sae is not None else None,
            "evaluation": self.evaluation.to_json(),
        }

    def render(self) -> str:
        return self.summary()

    def summary(self) -> str:
        lines = [f"activation store: {self.store}", f"SAE: {self.sae_path}"]
        if self.sae is not None:
            lines.append(
                f"  trained on {self.sae.tokens:,} tokens: FVU {self.sae.fvu:.4f}, L0 {self.sae.l0:.1f},"
                f" dead {100 * self.sae.dead_fraction:.2f}% ({self.sae.tokens_per_second:,.0f} tok/s)"
            )
        lines += ["evaluation on held-out text:", format_table(self.evaluation)]
        return "\n".join(lines)


def check_reusable(sae_dir: Path, cfg: DemoConfig) -> None:
    """Refuse to reuse a trained SAE of another width or k (it would be reported as this run's)."""
    if not (sae_dir / "sae.safetensors").exists():
        return
    saved = read_json_object(sae_dir / "cfg.json")
    there = (saved.get("architecture"), saved.get("d_sae"), saved.get("k"))
    if there != ("topk", cfg.latents, cfg.k):
        raise ConfigError(
            f"{sae_dir} holds a {there[0]} SAE with {there[1]} latents and k={there[2]}, not "
            f"--latents {cfg.latents} --k {cfg.k}; use another --out"
        )


def demo(cfg: DemoConfig) -> DemoResult:
    acts, sae_dir = cfg.out / "acts", cfg.out / "sae"
    check_reusable(sae_dir, cfg)
    log.info("[1/3] capture: smollm2-135m × built-in corpus → %s", acts)
    captured: CaptureResult = capture(
        CaptureConfig(
            model="smollm2-135m",
            dataset="builtin",
            hookpoints=("resid_post:15",),
            tokens=cfg.tokens,
            out=acts,
            context_len=256,
            batch_size=8,
        )
    )
    log.info("      %s", "; ".join(f"{s.rows:,} rows of {s.hookpoint} in {s.path}" for s in captured.stores))
    trained = None
    if (sae_dir / "sae.safetensors").exists():
        log.info("[2/3] train: %s already holds a trained SAE; reusing it", sae_dir)
    else:
        log.info("[2/3] train: TopK SAE, %d latents, k=%d → %s", cfg.latents, cfg.k, sae_dir)
        resume = (sae_dir / "checkpoints").is_dir() and any((sae_dir / "checkpoints").glob("step-*"))
        result = train(
            TrainConfig(
                acts=acts,
                out=sae_dir,
                architecture="topk",
                latents=(cfg.latents,),
                k=(cfg.k,),
                epochs=cfg.epochs,
                lr=cfg.lr,
                batch_size=2048,
                dead_tokens=max(cfg.tokens // 4, 4096),
                checkpoint_every=100,
                resume=resume,
            )
        )
        trained = result.saes[0]
    log.info("[3/3] eval: %d held-out tokens", cfg.eval_tokens)
    evaluation = evaluate(EvalConfig(saes=(sae_dir,), tokens=cfg.eval_tokens, batch_size=8))
    return DemoResult(acts, trained, sae_dir, evaluation)
