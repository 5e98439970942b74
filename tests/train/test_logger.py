"""Training metrics: CSV rows, TensorBoard scalars, the curves PNG, and continuing after a resume."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from saescope.errors import ConfigError
from saescope.train.logger import COLUMNS, MetricsLogger


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
