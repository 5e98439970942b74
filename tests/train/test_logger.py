"""Training metrics: CSV rows, TensorBoard scalars, the curves PNG, and continuing after a resume."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from saescope.errors import ConfigError
from saescope.train.logger import COLUMNS, MetricsLogger, panels, smooth


def metrics(step: int) -> dict[str, float]:
    return {name: float(step) / 100 for name in COLUMNS} | {"step": step, "tokens": step * 64, "extra": 1.0}


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(folder / "logs"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_rows_scalars_and_curves(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path / "sae")
    for step in (10, 20, 30):
        logger.log(metrics(step))
    logger.close()
    rows = MetricsLogger.read(tmp_path / "sae" / "metrics.csv")
    assert [r["step"] for r in rows] == [10, 20, 30] and set(rows[0]) == set(COLUMNS)
    assert rows[1]["fvu"] == 0.2 and rows[2]["tokens"] == 30 * 64
    assert [s for s, _ in scalars(tmp_path / "sae", "train/fvu")] == [10, 20, 30]
    assert (tmp_path / "sae" / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_drops_rows_after_the_checkpoint_and_a_fresh_run_starts_over(tmp_path: Path) -> None:
    folder = tmp_path / "sae"
    first = MetricsLogger(folder)
    for step in (10, 20, 30, 40):
        first.log(metrics(step))
    first.close()
    resumed = MetricsLogger(folder, resume_step=20)  # the run was killed after its step-20 checkpoint
    for step in (30, 40):
        resumed.log(metrics(step) | {"fvu": 9.0})
    resumed.close()
    rows = MetricsLogger.read(folder / "metrics.csv")
    expected = [(10, 0.1), (20, 0.2), (30, 9.0), (40, 9.0)]
    assert [(r["step"], r["fvu"]) for r in rows] == expected
    events = scalars(folder, "train/fvu")  # TensorBoard keeps the step-20 point it had before the kill
    assert [s for s, _ in events] == [10, 20, 30, 40]
    assert [v for _, v in events] == pytest.approx([v for _, v in expected])
    MetricsLogger(folder).close()
    assert MetricsLogger.read(folder / "metrics.csv") == []


def test_wandb_without_the_extra_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="wandb extra"):
        MetricsLogger(tmp_path / "sae", wandb_project="proj")


def test_rows_kept_by_a_resume_keep_their_text(tmp_path: Path) -> None:
    """Integers stayed integers: rows before a resume once came back as `10.0,5120.0,…`."""
    folder = tmp_path / "sae"
    first = MetricsLogger(folder)
    for step in (10, 20, 30):
        first.log(metrics(step) | {"lr": 1 / 3})
    first.close()
    lines = (folder / "metrics.csv").read_text().splitlines()
    assert lines[1].startswith("10,640,0.333")
    MetricsLogger(folder, resume_step=20).close()
    assert (folder / "metrics.csv").read_text().splitlines() == lines[:3]


def test_the_curves_label_every_axis_and_show_the_learning_rate_when_l0_is_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), close(fig)))
    for name, l0 in [("topk", lambda step: 32.0), ("relu", lambda step: 100.0 / step)]:
        logger = MetricsLogger(tmp_path / name)
        for step in (10, 20, 30):
            logger.log(metrics(step) | {"l0": l0(step)})
        logger.close()
    titles = []
    for fig in figures:
        axes = fig.get_axes()
        assert len(axes) == 4 and all(ax.get_ylabel() for ax in axes)
        assert [ax.get_xlabel() for ax in axes[2:]] == ["tokens trained"] * 2
        titles.append([ax.get_title() for ax in axes])
    assert titles[0][2] == "learning rate (L0 is fixed at 32)" and titles[1][2].startswith("L0")
    assert titles[0][0].startswith("training loss")
    loss_lines = figures[0].get_axes()[0].get_lines()  # raw windows faint, their moving average bold
    assert [line.get_alpha() for line in loss_lines] == [0.3, None]
    assert list(loss_lines[1].get_ydata()) == pytest.approx([0.1, 0.2, 0.3])  # too few windows to average


def test_panels_and_moving_average_by_hand() -> None:
    assert smooth([1.0, 2.0, 0.0, 5.0], half=1) == pytest.approx([1.5, 1.0, 7 / 3, 2.5])
    assert smooth([1.0, 2.0], half=0) == [1.0, 2.0]
    fixed = [{"l0": 8.0, "tokens": 1.0}, {"l0": 8.0, "tokens": 2.0}]
    varying = [{"l0": 8.0}, {"l0": 7.0}]
    assert [p.key for p in panels(fixed)] == ["loss", "fvu", "lr", "dead_fraction"]
    assert [p.key for p in panels(varying)] == ["loss", "fvu", "l0", "dead_fraction"]
