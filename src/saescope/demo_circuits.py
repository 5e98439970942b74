"""`saescope demo --circuits`: an attribution graph of the embedded model, from nothing, checked.

capture every MLP's input and output of SmolLM2-135M-Instruct on the built-in corpus (60 sibling
stores from one forward pass per batch: training from disk keeps memory low, where on the fly the
shuffle buffer of 30 layers' pairs took more than 10 GB) → train a transcoder at every MLP (all 30
layers from each batch read, a few epochs over the store) → evaluate them on held-out
text (each layer's MLP-output FVU; CE and KL with every MLP replaced at once) → build the
attribution graph of one short Python prompt the model gets right (`saescope circuit`: pruned,
scored, and its most influential nodes ablated in the graph and in the real model). Each stage
reuses what an earlier run finished (a complete store, trained transcoders, an interrupted
training's checkpoints,
each layer's evaluation with the same settings), so running it twice costs the every-MLP
evaluation and the graph. Only calls the stage functions, as the CLI would.

This module knows nothing about how transcoders are trained or graphs are built.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

from .capture import CaptureResult, capture
from .circuit import CircuitResult, circuit
from .config import CaptureConfig, DemoConfig, EvalConfig, TrainConfig
from .config.circuit import CircuitConfig
from .errors import ConfigError
from .evals import SAEEval, evaluate_one, replaced_every_mlp
from .files import read_json_object
from .models import LoadedModel
from .runs import SAE_CONFIG, Run
from .sae.transcoder import transcoder_folders
from .train import TrainedSAE, train

log = logging.getLogger(__name__)

GRAPH_NAME = "demo"
"""The graph's name in RUN/circuits (its files' stem, and its page: /graphs/demo)."""


class CircuitsPlan(NamedTuple):
    """The circuits demo's settings once the defaults (full or quick) are filled in."""

    out: Path
    """Run folder."""
    model: str
    """The model (the embedded SmolLM2-135M; tests pass a tiny one)."""
    dataset: str
    """Training and held-out text (the built-in corpus; tests pass a small file)."""
    tokens: int
    """Tokens captured (every MLP's input and output) for training."""
    epochs: float
    """Passes of training over them."""
    latents: int
    """Latents per transcoder."""
    k: int
    """Active latents per token."""
    batch_size: int
    """Rows per optimisation step."""
    eval_tokens: int
    """Held-out tokens of the evaluation."""
    prompt: str
    """The prompt whose next token the graph explains."""
    target: str
    """The next token it explains (the model's top token on the prompt)."""
    max_feature_nodes: int
    """Latents whose incoming edges the graph computes."""


CIRCUITS = CircuitsPlan(
    out=Path("runs/demo-circuits"),
    model="smollm2-135m",
    dataset="builtin",
    tokens=32_768,
    epochs=2.0,
    latents=1152,
    k=32,
    batch_size=1024,
    eval_tokens=1024,
    prompt="x = f(g(y",
    target="))",
    max_feature_nodes=200,
)
CIRCUITS_QUICK = CIRCUITS._replace(
    out=Path("runs/demo-circuits-quick"), tokens=8192, latents=576, k=16, batch_size=512, eval_tokens=256
)
NOT_FOR_CIRCUITS = ("index_tokens", "explain")
"""Settings of the plain demo that the circuits demo has no stage for."""


def circuits_plan_of(cfg: DemoConfig) -> CircuitsPlan:
    """The quick or full defaults of the circuits demo, with every setting `cfg` gives."""
    unused = [f"--{n.replace('_', '-')}" for n in NOT_FOR_CIRCUITS if getattr(cfg, n) is not None]
    if unused:
        raise ConfigError(f"{', '.join(unused)} do(es) not apply to --circuits (no such stage); drop it")
    base = CIRCUITS_QUICK if cfg.quick else CIRCUITS
    names = ("out", "tokens", "epochs", "latents", "k", "eval_tokens", "prompt", "target")
    given = {n: getattr(cfg, n) for n in names if getattr(cfg, n) is not None}
    plan = base._replace(**given)
    if plan.k > plan.latents:
        raise ConfigError(f"--k {plan.k} is larger than the transcoder width ({plan.latents} latents)")
    return plan


class CircuitsDemoResult(NamedTuple):
    """Everything the circuits demo made."""

    plan: CircuitsPlan
    """The settings it ran with."""
    store: CaptureResult
    """The stores of every MLP's input and output."""
    trained: list[TrainedSAE] | None
    """This run's training, one per layer (None when an earlier run's transcoders were reused)."""
    transcoders: Path
    """The transcoder set's folder."""
    layers: list[SAEEval]
    """Each layer's evaluation on held-out text (MLP-output reconstruction; no splicing)."""
    every_mlp: SAEEval
    """CE and KL with every MLP replaced by its transcoder at once."""
    graph: CircuitResult
    """The attribution graph, its scores and its check against the real model."""
    seconds: float
    """Wall time of this run."""

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": {**self.plan._asdict(), "out": str(self.plan.out)},
            "store": self.store.to_json(),
            "trained": None
            if self.trained is None
            else [{**t._asdict(), "path": str(t.path)} for t in self.trained],
            "transcoders": str(self.transcoders),
            "evaluation": {
                "layers": [{"path": str(e.path), **e.metrics} for e in self.layers],
                "every_mlp": self.every_mlp.metrics,
            },
            "graph": self.graph.to_json(),
            "seconds": self.seconds,
        }

    def render(self) -> str:
        from .demo import saescope_command

        n = len(self.layers)
        corpus = "built-in corpus" if self.plan.dataset == "builtin" else self.plan.dataset
        lines = [
            f"saescope demo --circuits: {self.plan.model}, a transcoder at each of its {n} MLPs, "
            f"{corpus} → {self.plan.out} ({self.seconds:.0f} s)",
            "",
            "[capture] " + self.capture_line(),
            "[train]   " + self.trained_line(),
            "[eval]    " + self.eval_line(),
            "",
            self.graph.render(),
            "",
            *self.top_latents(),
            "",
            f"[graph] open it in the browser: {saescope_command()} serve {self.plan.out}, then "
            f"http://127.0.0.1:8000/graphs/{GRAPH_NAME} (circuit-tracer's viewer and Neuronpedia read "
            f"{self.graph.files[2]})",
        ]
        return "\n".join(lines)

    def top_latents(self, n: int = 8) -> list[str]:
        """The graph's `n` most influential kept latents, with their explanations where an index of
        their transcoder holds one."""
        g, influence = self.graph.graph, self.graph.pruned.influence
        kept = [i for i in g.indices("latent").tolist() if bool(self.graph.pruned.nodes[i])]
        if not kept:
            return ["top latents: the pruned graph keeps no latent (error nodes and tokens carry it)"]
        explained = sum((g.nodes[i].layer, g.nodes[i].feature) in self.graph.explanations for i in kept)
        lines = [
            f"top latents of the {len(kept)} the pruned graph keeps, by influence on the logits "
            f"({explained} explained: only transcoders with a latent index have explanations):",
            f"  {'latent':<12}{'position':<22}{'activation':>11}{'influence':>11}  explanation",
        ]
        for i in sorted(kept, key=lambda i: -float(influence[i]))[:n]:
            node = g.nodes[i]
            where = f"@{node.position} {g.tokens[node.position]!r}"
            text = self.graph.explanations.get((node.layer, node.feature), "–")
            lines.append(
                f"  {f'L{node.layer}/{node.feature}':<12}{where:<22}{node.value:>11.3f}"
                f"{float(influence[i]):>11.4f}  {text}"
            )
        return lines

    def capture_line(self) -> str:
        stores = self.store.stores
        return (
            f"stored {stores[0].rows:,} rows of each MLP's input and output ({len(stores)} stores, "
            f"d_model {stores[0].d_model}) in {self.plan.out / 'acts'}"
        )

    def trained_line(self) -> str:
        p = self.plan
        head = f"{len(self.layers)} transcoders (mlp_in:L → mlp_out:L), {p.latents:,} latents, k={p.k}"
        if self.trained is None:
            return f"{head}: {self.transcoders} already held them; reused them"
        fits = sorted(self.trained, key=lambda t: t.fvu)
        t = self.trained[0]
        mean = sum(x.fvu for x in fits) / len(fits)
        dead = sum(x.dead_fraction for x in fits) / len(fits)
        return (
            f"{head}, trained together ({p.epochs:g} epochs): training FVU of the MLP outputs "
            f"{mean:.3f} on average "
            f"(best {fits[0].fvu:.3f} {_layer_name(fits[0].path)}, worst {fits[-1].fvu:.3f} "
            f"{_layer_name(fits[-1].path)}), dead {100 * dead:.2f}% ({t.tokens:,} tokens, "
            f"{t.tokens_per_second:,.0f} tok/s) → {self.transcoders}"
        )

    def eval_line(self) -> str:
        fvus = sorted(
            (e.metrics["reconstruction"]["fvu"], e.metrics["settings"]["hookpoint_alias"])
            for e in self.layers
        )
        m = self.every_mlp.metrics
        pooled = m["reconstruction"]["fvu"]
        line = (
            f"{m['tokens']:,} held-out tokens: MLP-output FVU {pooled:.3f} (pooled over the layers; "
            f"{fvus[0][0]:.3f} {fvus[0][1]} to {fvus[-1][0]:.3f} {fvus[-1][1]})"
        )
        d = m.get("downstream")
        if d is None:
            return line + "; every MLP replaced: not measured"
        return (
            f"{line}; every MLP replaced at once: CE {d['ce_clean']:.3f} → {d['ce_spliced']:.3f} "
            f"(ΔCE {d['delta_ce']:+.3f}, zero-ablating every MLP {d['ce_zero_ablation']:.3f}), "
            f"KL {d['kl_spliced']:.3f}, CE-loss recovered {d['ce_loss_recovered_zero']:.3f} "
            f"({d['scored_predictions']:,} predictions)"
        )


def _layer_name(folder: Path) -> str:
    return str(read_json_object(folder / SAE_CONFIG).get("hookpoint_alias", folder.name))


def check_reusable(folder: Path, plan: CircuitsPlan) -> bool:
    """Whether `folder` holds trained transcoders of this plan's width and k (True), none (False);
    refuse others (they would be reported as this run's)."""
    folders = transcoder_folders(folder)
    for layer in folders:
        saved = read_json_object(layer / SAE_CONFIG)
        there = (saved.get("architecture"), saved.get("d_sae"), saved.get("k"))
        if there != ("transcoder", plan.latents, plan.k):
            raise ConfigError(
                f"{layer} holds a {there[0]} with {there[1]} latents and k={there[2]}, not "
                f"--latents {plan.latents} --k {plan.k}; use another --out"
            )
    return bool(folders)


def capture_pairs(plan: CircuitsPlan, acts: Path) -> CaptureResult:
    """Every MLP's input and output on the corpus (a complete store is reused)."""
    log.info("[capture] every MLP's input and output × %s → %s", plan.dataset, acts)
    return capture(
        CaptureConfig(
            model=plan.model,
            dataset=plan.dataset,
            hookpoints=("mlp_in:*", "mlp_out:*"),
            tokens=plan.tokens,
            out=acts,
            context_len=256,
            batch_size=8,
        )
    )


def train_transcoders(plan: CircuitsPlan, acts: Path, folder: Path) -> list[TrainedSAE] | None:
    """Train a transcoder at every MLP (resuming an interrupted run), or None when they are there."""
    if check_reusable(folder, plan):
        log.info("[train] %s already holds trained transcoders; reusing them", folder)
        return None
    log.info("[train] transcoders at every MLP, %d latents, k=%d → %s", plan.latents, plan.k, folder)
    steps = max(int(plan.tokens * plan.epochs) // plan.batch_size, 1)
    resume = (folder / "checkpoints").is_dir() and any((folder / "checkpoints").glob("step-*"))
    result = train(
        TrainConfig(
            acts=acts,
            architecture="transcoder",
            out=folder,
            latents=(plan.latents,),
            k=(plan.k,),
            epochs=plan.epochs,
            batch_size=plan.batch_size,
            # a latent is dead after a quarter of the run without firing (the 10M-token default is
            # longer than the whole demo)
            dead_tokens=max(int(plan.tokens * plan.epochs) // 4, plan.batch_size),
            checkpoint_every=max(steps // 3, 1),
            resume=resume,
        )
    )
    return result.saes


def evaluate_set(plan: CircuitsPlan, folder: Path) -> tuple[list[SAEEval], SAEEval]:
    """Each layer's MLP-output reconstruction (no splicing: 30 layers × four spliced passes would
    cost more than the training), then CE and KL with every MLP replaced at once."""
    models: dict[str, LoadedModel] = {}
    per_layer = EvalConfig(saes=(folder,), tokens=plan.eval_tokens, downstream=False, model=plan.model)
    layers = [evaluate_one(per_layer, f, models) for f in transcoder_folders(folder)]
    every = EvalConfig(saes=(folder,), tokens=plan.eval_tokens, downstream=True, model=plan.model)
    return layers, replaced_every_mlp(every, folder, transcoder_folders(folder), layers, models)


def circuits_demo(plan: CircuitsPlan) -> CircuitsDemoResult:
    """Run (or finish) the circuits demo; see the module docstring."""
    started = time.perf_counter()
    run = Run(plan.out)
    store = capture_pairs(plan, run.acts)
    trained = train_transcoders(plan, run.acts, run.transcoders)
    log.info("[eval] %d held-out tokens, each layer and every MLP replaced at once", plan.eval_tokens)
    layers, every_mlp = evaluate_set(plan, run.transcoders)
    log.info("[circuit] %r → %r", plan.prompt, plan.target)
    graph = circuit(
        CircuitConfig(
            run=plan.out,
            prompt=plan.prompt,
            target=plan.target,
            max_feature_nodes=plan.max_feature_nodes,
            name=GRAPH_NAME,
            model=plan.model,
        )
    )
    seconds = time.perf_counter() - started
    return CircuitsDemoResult(plan, store, trained, run.transcoders, layers, every_mlp, graph, seconds)


__all__ = [
    "CIRCUITS",
    "CIRCUITS_QUICK",
    "CircuitsDemoResult",
    "CircuitsPlan",
    "circuits_demo",
    "circuits_plan_of",
]
