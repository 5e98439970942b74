"""`saescope train` options: each architecture's own hyperparameters (as options, in a --config file,
through the Python API) reach the SAE and its cfg.json; options that do not apply are refused in
one line before any work; derived defaults (k, --out, learning rate, warm-up) are what they say."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from saescope import cli
from saescope.config import TrainConfig
from saescope.errors import ConfigError
from saescope.sae.batchtopk import BatchTopKSAE
from saescope.sae.formats import load_sae
from saescope.train import trainer
from saescope.train.schedule import default_peak_lr, default_warmup_steps

FAST = [
    "--latents",
    "64",
    "--batch-size",
    "128",
    "--tokens",
    str(128 * 10),
    "--device",
    "cpu",
    "--kernel",
    "torch",
]


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def spy_saes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The SAEs the trainer trained (as they were at the end of training)."""
    seen: list[Any] = []
    finish = trainer.finish

    def spy(cfg: TrainConfig, run: trainer.SAERun, *rest: Any) -> trainer.TrainedSAE:
        seen.append(run.sae)
        return finish(cfg, run, *rest)

    monkeypatch.setattr(trainer, "finish", spy)
    return seen


def test_a_batchtopk_momentum_given_as_an_option_reaches_the_sae(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    saes = spy_saes(monkeypatch)
    out = tmp_path / "sae"
    argv = ["train", "--acts", str(store), "--out", str(out), "--arch", "batchtopk", "--k", "4", *FAST]
    assert cli.main([*argv, "--batchtopk-threshold-momentum", "0.5"]) == 0
    assert "FVU" in capsys.readouterr().out
    (trained,) = saes
    assert isinstance(trained, BatchTopKSAE) and trained.params.batchtopk_threshold_momentum == 0.5
    # The momentum really drove θ: after 10 steps, θ's weight is max(1/step, 0.5) on each new minimum.
    assert int(trained.threshold_steps) == 10
    assert json.loads((out / "cfg.json").read_text())["hyperparams"] == {"batchtopk_threshold_momentum": 0.5}
    assert load_sae(out).params.batchtopk_threshold_momentum == 0.5


def test_a_config_file_gives_them_flat(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saes = spy_saes(monkeypatch)
    toml = tmp_path / "train.toml"
    toml.write_text('architecture = "jumprelu"\njumprelu_bandwidth = 0.25\nl0_coefficient = 0.002\n')
    out = tmp_path / "sae"
    assert cli.main(["train", "--config", str(toml), "--acts", str(store), "--out", str(out), *FAST]) == 0
    (trained,) = saes
    assert trained.params.jumprelu_bandwidth == 0.25 and trained.params.l0_coefficient == 0.002
    saved = json.loads((out / "cfg.json").read_text())["hyperparams"]
    assert saved == {"l0_coefficient": 0.002, "jumprelu_bandwidth": 0.25, "jumprelu_init_threshold": 0.001}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--arch", "topk", "--jumprelu-bandwidth", "0.1"],
            "--jumprelu-bandwidth does not apply to --arch topk (jumprelu only)",
        ),
        (
            ["--arch", "relu", "--l0-coefficient", "0.1"],
            "--l0-coefficient does not apply to --arch relu (jumprelu only)",
        ),
        (
            ["--arch", "jumprelu", "--jumprelu-bandwidth", "-1"],
            "the JumpReLU bandwidth (--jumprelu-bandwidth) must be positive, got -1.0",
        ),
        (
            ["--arch", "batchtopk", "--batchtopk-threshold-momentum", "2"],
            "(--batchtopk-threshold-momentum) must be in (0, 1], got 2.0",
        ),
        (["--arch", "relu", "--k", "16"], "--k does not apply to --arch relu (only TopK-style SAEs take k)"),
        (
            ["--epochs", "2", "--out", "x"],
            "--epochs counts passes over a store (--acts); on the fly give --tokens",
        ),
    ],
)
def test_options_that_do_not_apply_are_refused_in_one_line_before_any_work(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(trainer, "open_source", lambda *a: pytest.fail("work started"))
    acts = [] if "--epochs" in argv else ["--acts", str(tmp_path / "acts")]
    line = one_error_line(capsys, ["train", *acts, *argv])
    assert line.startswith("saescope train: error: ") and line.endswith(message), line
    assert list(tmp_path.iterdir()) == []


def test_the_python_api_refuses_unknown_and_foreign_hyperparameters() -> None:
    with pytest.raises(ConfigError, match="unknown architecture option 'l2_coefficient'; they are"):
        TrainConfig(acts=Path("acts"), arch_params={"l2_coefficient": 1.0})
    with pytest.raises(ConfigError, match="--l1-coefficient does not apply to --arch jumprelu"):
        TrainConfig(acts=Path("acts"), architecture="jumprelu", arch_params={"l1_coefficient": 1.0})
    with pytest.raises(ConfigError, match="arch_params must map hyperparameter names to values, got 3"):
        TrainConfig(acts=Path("acts"), arch_params=3)  # type: ignore[arg-type]
    given = {"l1_coefficient": 0.5}
    cfg = TrainConfig(acts=Path("acts"), architecture="relu", arch_params=given)
    given["l1_coefficient"] = 9.0  # the config keeps its own copy
    assert cfg.arch_params == {"l1_coefficient": 0.5}


def test_derived_defaults() -> None:
    topk = TrainConfig(acts=Path("runs/x/acts"))
    assert topk.k == (32,) and topk.out == Path("runs/x/sae")
    assert TrainConfig(acts=Path("a"), architecture="relu").k == ()
    assert TrainConfig(acts=Path("a"), out=Path("elsewhere")).out == Path("elsewhere")
    assert (topk.lr, topk.warmup_steps) == (None, None)
    on_the_fly = TrainConfig(model="org/Some-Model", hookpoint="resid_post:3")
    assert on_the_fly.out == Path("runs/Some-Model-resid_post-3/sae")


def test_a_run_without_lr_options_uses_and_logs_the_derived_ones(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    steps = 40
    cfg = TrainConfig(
        acts=store,
        out=tmp_path / "sae",
        latents=(64,),
        k=(4,),
        batch_size=64,
        tokens=64 * steps,
        device="cpu",
        kernel="torch",
        log_every=1,
        lr_schedule="constant",
    )
    with caplog.at_level(logging.INFO, logger="saescope"):
        (run,) = trainer.train(cfg).saes
    peak, warmup = default_peak_lr(64, steps), default_warmup_steps(steps)
    assert warmup == 2
    rows = trainer.MetricsLogger.read(run.path / "metrics.csv")
    assert [r["lr"] for r in rows[:3]] == pytest.approx([peak / 2, peak, peak])
    derived = "(derived from the width and the steps; --lr sets it), warm-up 2 steps (derived"
    assert f"peak learning rate {peak:.3g} {derived}" in caplog.text


def test_one_throughput_figure_everywhere(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sae"
    assert (
        cli.main(["train", "--acts", str(store), "--out", str(out), "--k", "4", *FAST, "--log-every", "3"])
        == 0
    )
    line = capsys.readouterr().out.strip()
    last = trainer.MetricsLogger.read(out / "metrics.csv")[-1]
    assert line.endswith(f"(1,280 tokens, {last['tokens_per_s']:,.0f} tok/s)")
    # tokens per second of the whole run so far: tokens trained / seconds since the store was ready
    assert last["tokens_per_s"] == pytest.approx(last["tokens"] / last["elapsed_s"], rel=1e-6)
    assert last["step"] == 10
