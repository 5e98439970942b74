"""`saescope train` end to end on a synthetic store: learning, outputs, sweeps, aux-k, resume after a
kill (bitwise), non-finite losses, DDP on gloo, on-the-fly activations, and every kind of bad input."""

from __future__ import annotations

import copy
import csv
import dataclasses
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from saescope import cli
from saescope.config import TrainConfig
from saescope.errors import ConfigError
from saescope.sae.formats import load_sae
from saescope.store import ActivationStore
from saescope.train import trainer
from saescope.train.checkpoint import latest_checkpoint, load_checkpoint
from saescope.train.losses import SAEObjective
from saescope.train.schedule import default_peak_lr, sparsity_scale, sparsity_warmup_steps
from tests.builders import one_thread
from tests.sae.builders import ARCHITECTURES, k_of

from .builders import write_store

# Small SAEs on the d=32 synthetic store; a step takes a few milliseconds on one thread.
BASE: dict[str, Any] = {
    "latents": (64,),
    "k": (4,),
    "batch_size": 128,
    "tokens": 128 * 60,
    "lr": 1e-2,
    "warmup_steps": 5,
    "device": "cpu",
    "kernel": "torch",
    "log_every": 10,
    "checkpoint_every": 0,
}
# The resume and DDP runs: aux-k active (dead after 10 steps), checkpoints every 20 steps, 3+ epochs.
RESUMED: dict[str, Any] = BASE | {
    "batch_size": 64,
    "tokens": 64 * 200,
    "lr": 3e-3,
    "checkpoint_every": 20,
    "dead_tokens": 640,
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def config(store: Path, out: Path, **changes: Any) -> TrainConfig:
    return TrainConfig(**(BASE | {"acts": store, "out": out} | changes))


def cli_args(cfg: TrainConfig) -> list[str]:
    """`saescope train` arguments that give `cfg` (fields at their defaults are left out; the
    architecture's own hyperparameters are options of their own)."""
    args = ["train"]
    fields = dataclasses.fields(TrainConfig)
    default = {f.name: f.default_factory() if callable(f.default_factory) else f.default for f in fields}
    values = {f.name: getattr(cfg, f.name) for f in fields} | dict(cfg.arch_params)
    for name, value in values.items():
        if name == "arch_params" or value == default.get(name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, tuple):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def run_cli(cfg: TrainConfig, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *launcher, "-m", "saescope", *cli_args(cfg)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def metrics(folder: Path) -> list[dict[str, float]]:
    with open(folder / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "sae.safetensors"))


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs by {(a[name] - b[name]).abs().max()}"


def error_line(stderr: str) -> str:
    """The one error line of a failed command (logs and progress bars come before it)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    return errors[0]


@pytest.fixture(scope="module")
def raw_rows(store: Path) -> torch.Tensor:
    s = ActivationStore(store)
    return s.get(torch.arange(s.rows)).activations.float()


# ----- learning and outputs ----------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_learns_and_its_saved_sae_takes_raw_activations(
    store: Path, raw_rows: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, architecture: str
) -> None:
    trained: dict[str, Any] = {}
    finish = trainer.finish

    def spy(cfg: TrainConfig, run: trainer.SAERun, *rest: Any) -> trainer.TrainedSAE:
        trained.update(sae=copy.deepcopy(run.sae).eval(), scale=run.scale_in)
        return finish(cfg, run, *rest)

    monkeypatch.setattr(trainer, "finish", spy)
    out = tmp_path / architecture
    k = (4,) if k_of(architecture) else ()
    result = trainer.train(config(store, out, architecture=architecture, latents=(128,), k=k, log_every=5))

    (only,) = result.saes
    assert only.path == out and only.tokens == 128 * 60
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(5, 61, 5))
    assert rows[-1]["fvu"] < 0.6 * rows[0]["fvu"] and rows[-1]["recon_loss"] < 0.6 * rows[0]["recon_loss"]
    # Matryoshka's loss also holds its small prefixes' errors, which cannot fall as far. The sparsity
    # penalty is left out: it is warmed up from zero, so the first rows hold only part of it.
    first, last = (r["loss"] - r["sparsity_loss"] for r in (rows[0], rows[-1]))
    assert last < (0.9 if architecture == "matryoshka" else 0.6) * first
    assert rows[-1]["fvu"] == pytest.approx(only.fvu)
    assert rows[0]["lr"] == pytest.approx(1e-2)  # warm-up ended at step 5
    assert next((out / "logs").glob("events.out.tfevents.*")).stat().st_size > 0
    assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "checkpoints").exists()  # checkpoint_every=0: none

    # The trainer scales inputs to E‖x‖² = 1; the saved SAE has that folded in and takes raw rows.
    scale = trained["scale"]
    assert scale == pytest.approx(raw_rows.double().pow(2).sum(1).mean().rsqrt().item(), rel=1e-5)
    saved = load_sae(out)
    assert saved.cfg.normalization == {"method": "unit_mean_squared_norm", "scale": scale, "folded": True}
    assert (saved.cfg.model, saved.cfg.hookpoint, saved.cfg.hookpoint_alias) == (
        "tiny-model",
        "model.layers.1",
        "resid_post:1",
    )
    with torch.no_grad():
        expected = trained["sae"](raw_rows * scale)
        got = saved(raw_rows)
    torch.testing.assert_close(got.recon, expected.recon / scale, rtol=1e-4, atol=1e-4)
    dense = trained["sae"].encode_dense(raw_rows * scale)
    torch.testing.assert_close(saved.encode_dense(raw_rows), dense, rtol=1e-4, atol=1e-4)
    raw_fvu = (raw_rows - got.recon).pow(2).sum() / (raw_rows - raw_rows.mean(0)).pow(2).sum()
    assert raw_fvu < 0.5 * rows[0]["fvu"]


def test_a_sweep_trains_sibling_saes_from_one_pass(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = trainer.train(
        config(store, out, latents=(64, 128), k=(4, 8), lr=None, tokens=128 * 20, lr_schedule="constant")
    )
    names = ["topk-64-k4", "topk-64-k8", "topk-128-k4", "topk-128-k8"]
    assert [r.path for r in result.saes] == [out / n for n in names]
    for run, (n, k) in zip(result.saes, [(64, 4), (64, 8), (128, 4), (128, 8)]):
        sae = load_sae(run.path)
        assert (sae.cfg.k, sae.d_sae, sae.cfg.training.tokens) == (k, n, 128 * 20)
        assert [r["l0"] for r in metrics(run.path)] == pytest.approx([k, k], abs=0.01)
        assert (run.path / "training_curves.png").exists()
    # one pass: the same steps and tokens for all, different SAEs
    logs = {n: metrics(out / n) for n in names}
    assert all([r["tokens"] for r in rows] == [1280, 2560] for rows in logs.values())
    assert not torch.equal(weights(out / names[0])["W_dec"], weights(out / names[1])["W_dec"])
    # each width logs its own default learning rate, derived from its width and the 20 steps
    assert logs["topk-64-k4"][0]["lr"] == logs["topk-64-k8"][0]["lr"]
    for n in (64, 128):
        assert logs[f"topk-{n}-k4"][0]["lr"] == pytest.approx(default_peak_lr(n, 20))


def test_aux_k_revives_dead_latents(store: Path, tmp_path: Path) -> None:
    # A high learning rate kills latents within a few hundred tokens; the aux-k loss brings many back.
    settings = {"latents": (128,), "lr": 5e-2, "tokens": 128 * 120, "dead_tokens": 512, "train_seed": 1}
    without = trainer.train(config(store, tmp_path / "without", aux_k=0, **settings)).saes[0]
    with_aux = trainer.train(
        config(store, tmp_path / "with", aux_k=16, aux_coefficient=0.25, **settings)
    ).saes[0]
    assert all(r["aux_loss"] == 0 for r in metrics(tmp_path / "without"))
    assert max(r["aux_loss"] for r in metrics(tmp_path / "with")) > 0.01
    assert without.dead_fraction > 0.25
    assert with_aux.dead_fraction < 0.7 * without.dead_fraction


def test_the_sparsity_penalty_warms_up_from_zero(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At full strength from the first step, the L1 penalty closed most of a gated SAE's gates on
    # the demo's data within its first 70 steps, for good; the trainer now ramps it up.
    seen: list[float] = []
    forward = SAEObjective.forward

    def spy(self: SAEObjective, *args: Any) -> Any:
        seen.append(args[4] if len(args) > 4 else 1.0)
        return forward(self, *args)

    monkeypatch.setattr(SAEObjective, "forward", spy)
    trainer.train(config(store, tmp_path / "sae", architecture="gated", k=(), tokens=128 * 30))
    assert seen == pytest.approx([sparsity_scale(s, sparsity_warmup_steps(30)) for s in range(30)])
    assert seen[0] < 0.2 and seen[-1] == 1.0


# ----- resume ------------------------------------------------------------------------------------
def train_until_interrupted(cfg: TrainConfig, steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train `cfg`, interrupted (KeyboardInterrupt) after `steps` calls of the training step."""
    calls = {"n": 0}
    step = trainer.train_step

    def interrupting(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        step(*args)

    with monkeypatch.context() as m:
        m.setattr(trainer, "train_step", interrupting)
        with pytest.raises(KeyboardInterrupt):
            trainer.train(cfg)


@pytest.fixture(scope="module")
def uninterrupted(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "sae"
    with one_thread():
        trainer.train(TrainConfig(**(RESUMED | {"acts": store, "out": out})))
    return out


def test_resume_after_a_crash_continues_exactly(
    store: Path, uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrainConfig(**(RESUMED | {"acts": store, "out": tmp_path / "sae"}))
    train_until_interrupted(cfg, 50, monkeypatch)
    assert latest_checkpoint(cfg.out / "checkpoints") == cfg.out / "checkpoints" / "step-00000040"

    layouts: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    loop = trainer.run_loop

    def check_layout(cfg: TrainConfig, runs: list[trainer.SAERun], *rest: Any) -> float:
        opt = runs[0].optimizer.opt
        layouts.extend((p.stride(), opt.state[p]["exp_avg"].stride()) for p in runs[0].sae.parameters())
        return loop(cfg, runs, *rest)

    monkeypatch.setattr(trainer, "run_loop", check_layout)
    monkeypatch.chdir(tmp_path)  # the same folders, named relatively this time
    relative = {"acts": Path(os.path.relpath(store, tmp_path)), "out": Path("sae")}
    trainer.train(dataclasses.replace(cfg, resume=True, **relative))
    # restored Adam moments keep their parameter's layout (W_enc is latent-major)
    assert len(layouts) == 4 and all(p == m for p, m in layouts)
    assert_bitwise_equal(weights(cfg.out), weights(uninterrupted))
    got, want = metrics(cfg.out), metrics(uninterrupted)
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(10, 201, 10))
    timing = {"tokens_per_s", "elapsed_s"}  # wall-clock columns differ from run to run
    for a, b in zip(got, want):
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }


@pytest.mark.parametrize(
    ("architecture", "own"),
    [("matryoshka", {"matryoshka_groups": (0.25, 0.75)}), ("gated", {"gate_l1_coefficient": 0.1})],
)
def test_the_newer_architectures_resume_exactly(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, architecture: str, own: dict[str, Any]
) -> None:
    """Their own state comes back from a checkpoint: Matryoshka's threshold and its step count, the
    gated SAE's rescale and magnitude bias with their Adam moments."""
    settings = RESUMED | {
        "architecture": architecture,
        "k": (4,) if k_of(architecture) else (),
        "arch_params": own,
    }
    settings |= {"tokens": 64 * 60}
    whole = TrainConfig(**(settings | {"acts": store, "out": tmp_path / "whole"}))
    trainer.train(whole)
    cfg = TrainConfig(**(settings | {"acts": store, "out": tmp_path / "sae"}))
    train_until_interrupted(cfg, 30, monkeypatch)
    assert latest_checkpoint(cfg.output / "checkpoints") == cfg.output / "checkpoints" / "step-00000020"
    trainer.train(dataclasses.replace(cfg, resume=True))
    assert_bitwise_equal(weights(cfg.output), weights(whole.output))
    assert set(weights(cfg.output)) > {"W_enc", "b_enc", "W_dec", "b_dec"}  # threshold, or r_mag and b_mag
    assert [r["extra_loss"] for r in metrics(cfg.output)] == [r["extra_loss"] for r in metrics(whole.output)]
    assert all(r["extra_loss"] > 0 for r in metrics(whole.output))


def test_sigkill_then_resume_equals_an_uninterrupted_run(
    store: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    cfg = TrainConfig(**(RESUMED | {"acts": store, "out": tmp_path / "sae"}))
    command = [sys.executable, "-m", "saescope", *cli_args(cfg)]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = cfg.out / "checkpoints" / "step-00000020"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and not first.exists():
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert not (cfg.out / "sae.safetensors").exists()

    resumed = run_cli(dataclasses.replace(cfg, resume=True))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    assert_bitwise_equal(weights(cfg.out), weights(uninterrupted))
    assert [r["step"] for r in metrics(cfg.out)] == list(range(10, 201, 10))


# ----- failures during training -------------------------------------------------------------------
def test_a_non_finite_loss_stops_with_one_line_and_keeps_finite_checkpoints(
    store: Path, tmp_path: Path
) -> None:
    # An absurd learning rate, warmed up slowly enough that a few checkpoints are written first.
    cfg = config(
        store, tmp_path / "sae", lr=1e12, warmup_steps=100_000, batch_size=64, log_every=1, checkpoint_every=2
    )
    proc = run_cli(cfg)
    assert proc.returncode == 2
    line = error_line(proc.stderr)
    assert line.startswith("saescope train: error: sae: the loss (") and "became non-finite by step" in line
    assert "lower --lr" in line
    checkpoints = sorted((cfg.out / "checkpoints").glob("step-*"))
    assert checkpoints and str(checkpoints[-1]) in line
    for path in checkpoints:
        _, state = load_checkpoint(path)
        tensors = [state["runs"][0]["sae"][n] for n in ("W_enc", "b_enc", "W_dec", "b_dec")]
        assert all(bool(torch.isfinite(t).all()) for t in tensors)
    assert not (cfg.out / "sae.safetensors").exists()


def test_ddp_on_two_cpu_ranks_equals_one_process_with_the_same_global_batch(
    store: Path, tmp_path: Path
) -> None:
    # aux-k off: its loss is normalised per rank, so only the plain objective averages exactly.
    settings = RESUMED | {
        "latents": (256,),
        "tokens": 64 * 30,
        "checkpoint_every": 10,
        "aux_k": 0,
        "dead_tokens": 256,
    }
    single = TrainConfig(**(settings | {"acts": store, "out": tmp_path / "single"}))
    ddp = TrainConfig(**(settings | {"acts": store, "out": tmp_path / "ddp"}))
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    proc = subprocess.Popen(
        [sys.executable, *launcher, "-m", "saescope", *cli_args(ddp)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    trainer.train(single)  # meanwhile
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout.count("FVU") == 1  # only rank 0 reports
    for name, a in weights(single.out).items():
        torch.testing.assert_close(weights(ddp.out)[name], a, rtol=1e-4, atol=1e-5, msg=name)
    # rank 0's dead-latent counters saw both halves of every batch (the fired mask is all-reduced)
    _, ours = load_checkpoint(single.out / "checkpoints" / "step-00000020")
    _, theirs = load_checkpoint(ddp.out / "checkpoints" / "step-00000020")
    counters = theirs["runs"][0]["tracker"]["tokens_since_fired"]
    assert torch.equal(counters, ours["runs"][0]["tracker"]["tokens_since_fired"])
    assert counters.max() >= 256 and int(theirs["runs"][0]["tracker"]["tokens_seen"]) == 64 * 20
    assert [r["dead_fraction"] for r in metrics(ddp.out)] == [r["dead_fraction"] for r in metrics(single.out)]


def test_on_the_fly_training_records_its_model_resumes_at_its_input_and_evaluates_after_it(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"The cat {i} is on the mat, and Paris is the capital number {i * 7}." for i in range(400))
    )
    # a small shuffle buffer (the default holds 262,144 rows); every start position the source reads from
    monkeypatch.setattr(
        trainer,
        "open_source",
        lambda cfg, dist, device: trainer.ModelSource(cfg, dist, device, buffer_rows=512),
    )
    starts: list[int] = []
    rows = trainer.ModelSource._rows

    def spy(self: trainer.ModelSource, start_doc: int) -> Any:
        starts.append(start_doc)
        return rows(self, start_doc)

    monkeypatch.setattr(trainer.ModelSource, "_rows", spy)
    cfg = TrainConfig(
        acts=None,
        model=str(tiny_model_dir),
        dataset=str(corpus),
        hookpoint="resid_post:1",
        context_len=32,
        out=tmp_path / "sae",
        latents=(64,),
        k=(4,),
        tokens=64 * 30,
        batch_size=64,
        lr=1e-2,
        warmup_steps=2,
        device="cpu",
        kernel="torch",
        checkpoint_every=10,
    )
    train_until_interrupted(cfg, 25, monkeypatch)
    _, state = load_checkpoint(cfg.out / "checkpoints" / "step-00000020")
    assert state["next_doc"] > 0
    starts.clear()
    (run,) = trainer.train(dataclasses.replace(cfg, resume=True)).saes
    # the resumed run reads on from the first input the killed one had not read (after its probes)
    assert starts[-1] == state["next_doc"]

    sae = load_sae(run.path)
    assert sae.cfg.model == str(tiny_model_dir) and sae.d_in == 32
    assert (sae.cfg.hookpoint, sae.cfg.hookpoint_alias) == ("model.layers.1", "resid_post:1")
    training = sae.cfg.training
    assert training.on_the_fly is True and training.corpus["dataset"] == str(corpus)
    assert training.next_doc > state["next_doc"]
    log = metrics(run.path)
    assert [r["step"] for r in log] == [10, 20, 30] and log[-1]["fvu"] < log[0]["fvu"]

    # held-out evaluation by default starts after the text training read
    from saescope.config import EvalConfig
    from saescope.evals import evaluate

    (result,) = evaluate(EvalConfig(saes=(run.path,), tokens=64, device="cpu", downstream=False)).evals
    assert result.metrics["settings"]["first_input"] == training.next_doc
    assert result.metrics["settings"]["corpus"]["dataset"] == str(corpus)
    assert result.metrics["reconstruction"]["fvu"] < 1


# ----- bad input ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpointed(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with checkpoints at steps 10 and 20."""
    out = tmp_path_factory.mktemp("checkpointed") / "sae"
    with one_thread():
        trainer.train(config(store, out, tokens=128 * 30, checkpoint_every=10))
    return out


def cli_error(capsys: pytest.CaptureFixture[str], cfg: TrainConfig) -> str:
    assert cli.main(cli_args(cfg)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return error_line(captured.err)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_k_larger_than_the_width_is_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = cli_error(capsys, config(store, tmp_path / "sae", latents=(16,), k=(32,)))
    assert "--k 32 is larger than the SAE width (16 latents)" in line
    assert not (tmp_path / "sae").exists()


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown architecture 'no-such-sae'; choose from batchtopk, gated"):
        TrainConfig(architecture="no-such-sae")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--arch", "no-such-sae"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"latents": (32,)}, "it was trained with latents=[64], now latents=[32]"),
        ({"lr": 2e-2}, "it was trained with lr=0.01, now lr=0.02"),
        (
            {"architecture": "relu", "k": ()},
            "it was trained with architecture='topk', now architecture='relu'",
        ),
    ],
)
def test_resuming_with_other_settings_names_the_setting(
    store: Path,
    checkpointed: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    fragment: str,
) -> None:
    out = tmp_path / "sae"
    shutil.copytree(checkpointed, out)
    before = files(out)
    line = cli_error(capsys, config(store, out, tokens=128 * 30, checkpoint_every=10, resume=True, **change))
    assert line.startswith(f"saescope train: error: cannot resume from {out / 'checkpoints'}/step-00000020")
    assert fragment in line
    assert files(out) == before


@pytest.mark.parametrize("damage", ["corrupt", "foreign", "missing"])
def test_bad_checkpoints_are_refused_without_losing_anything(
    store: Path, checkpointed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    out = tmp_path / "sae"
    shutil.copytree(checkpointed, out)
    newest = out / "checkpoints" / "step-00000020"
    if damage == "corrupt":
        data = (newest / "state.safetensors").read_bytes()
        (newest / "state.safetensors").write_bytes(data[:1000])
        fragment = f"checkpoint {newest} is corrupt"
    elif damage == "foreign":
        for ckpt in (out / "checkpoints").iterdir():
            (ckpt / "state.json").write_text('{"format": "sparsify.checkpoint/2", "step": 20, "state": {}}')
        fragment = f"{newest} is not a saescope checkpoint (format 'sparsify.checkpoint/2')"
    else:
        shutil.rmtree(out / "checkpoints")
        fragment = f"--resume: no checkpoint in {out / 'checkpoints'}"
    before = files(out)
    line = cli_error(capsys, config(store, out, tokens=128 * 30, checkpoint_every=10, resume=True))
    assert fragment in line
    assert files(out) == before


def test_resuming_on_a_store_of_another_width_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acts, out = tmp_path / "acts", tmp_path / "sae"
    write_store(acts, rows=512)
    with pytest.raises(KeyboardInterrupt), pytest.MonkeyPatch.context() as m:
        m.setattr(trainer, "finish", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
        trainer.train(config(acts, out, tokens=128 * 12, checkpoint_every=5))
    shutil.rmtree(acts)
    write_store(acts, rows=512, d=16)  # the same path now holds d_model 16
    before = files(out)
    line = cli_error(capsys, config(acts, out, tokens=128 * 12, checkpoint_every=5, resume=True))
    assert f"checkpoint {out / 'checkpoints'}/step-00000010 does not fit these SAEs" in line
    assert files(out) == before


def test_an_out_folder_holding_an_sae_is_not_overwritten(
    store: Path, checkpointed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sae"
    shutil.copytree(checkpointed, out)
    shutil.rmtree(out / "checkpoints")  # a finished SAE alone is refused too
    before = files(out)
    line = cli_error(capsys, config(store, out))
    assert f"{out} already holds an SAE or checkpoints; pass --resume" in line
    assert files(out) == before


@pytest.mark.parametrize("acts", ["missing", "not-a-store", "empty-folder"])
def test_acts_that_are_not_a_store_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], acts: str
) -> None:
    path = tmp_path / acts
    if acts == "not-a-store":
        path.mkdir()
        (path / "manifest.json").write_text('{"format": "something-else/1"}')
    elif acts == "empty-folder":
        path.mkdir()
    line = cli_error(capsys, config(path, tmp_path / "sae"))
    assert str(path) in line
    assert not (tmp_path / "sae").exists()


def test_every_file_of_a_run_gets_the_usual_permissions(checkpointed: Path) -> None:
    """Weights and checkpoints were once written `-rw-------` beside `-rw-r--r--` logs."""
    umask = os.umask(0)
    os.umask(umask)
    paths = [p for p in checkpointed.rglob("*") if p.is_file()]
    assert {p.name for p in paths} >= {"sae.safetensors", "cfg.json", "metrics.csv", "state.safetensors"}
    assert {str(p.relative_to(checkpointed)): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths} == {
        str(p.relative_to(checkpointed)): oct(0o666 & ~umask) for p in paths
    }
