"""Training metrics: `metrics.csv`, TensorBoard event files, optional Weights & Biases, a PNG.

One `MetricsLogger` per SAE folder. Rows are appended (a resumed run continues the same CSV: the
rows up to the step it resumed from are kept exactly as they were written, the later ones are
dropped, and the file is replaced atomically so a crash there loses nothing). Knows nothing
about how metrics are computed.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..files import write_atomic

log = logging.getLogger(__name__)

COLUMNS = [
    "step",
    "tokens",
    "lr",
    "loss",
    "recon_loss",
    "sparsity_loss",
    "aux_loss",
    "extra_loss",
    "fvu",
    "l0",
    "dead_fraction",
    "tokens_per_s",
    "elapsed_s",
]

SMOOTHING = 40
"""The plot's smoothed curves average each point with its neighbours over 1/SMOOTHING of the run."""


class MetricsLogger:
    def __init__(
        self,
        folder: Path,
        resume_step: int | None = None,
        wandb_project: str | None = None,
        wandb_config: dict[str, Any] | None = None,
    ):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.csv_path = folder / "metrics.csv"
        kept = [] if resume_step is None else self.rows_up_to(self.csv_path, resume_step)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        write_atomic(self.csv_path, out.getvalue())
        self._tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            # Events from the step after the checkpoint on are dropped (the step itself was logged
            # before the checkpoint was written, and the CSV keeps it too).
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(log_dir=str(folder / "logs"), purge_step=purge)
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            log.warning("tensorboard is not installed; no event files")
        self._wandb: Any = None
        if wandb_project:
            try:
                import wandb
            except ImportError:
                from ..errors import ConfigError

                raise ConfigError(
                    "--wandb-project needs the wandb extra: pip install 'saescope[wandb]'"
                ) from None
            self._wandb = wandb.init(
                project=wandb_project, name=folder.name, config=wandb_config, resume="allow"
            )

    @staticmethod
    def rows_up_to(path: Path, step: int) -> list[dict[str, str]]:
        """The rows of a `metrics.csv` up to `step`, as the text they were written as."""
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return [row for row in csv.DictReader(f) if row.get("step") and float(row["step"]) <= step]

    @staticmethod
    def read(path: Path) -> list[dict[str, float]]:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

    def log(self, metrics: dict[str, float]) -> None:
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
            writer.writerow(metrics)
        step = int(metrics["step"])
        if self._tb is not None:
            for k, v in metrics.items():
                if k != "step":
                    self._tb.add_scalar(f"train/{k}", v, step)
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        self.plot()

    def plot(self) -> Path | None:
        """`training_curves.png`, four panels against tokens: the loss and the FVU (each window's mean
        faint, a centred moving average bold: it does not lag behind a falling curve), L0 — or the
        learning rate when L0 is fixed by k — and the dead fraction."""
        rows = self.read(self.csv_path)
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tokens = [r["tokens"] for r in rows]
        fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
        for ax, panel in zip(axes.flat, panels(rows)):
            values = [r.get(panel.key, math.nan) for r in rows]
            if panel.smooth:
                half = len(values) // SMOOTHING
                ax.plot(tokens, values, lw=0.8, alpha=0.3, color="C0", label="per log window")
                label = f"mean of {2 * half + 1} windows"
                ax.plot(tokens, smooth(values, half), lw=1.6, color="C0", label=label)
                ax.legend(fontsize=8)
            else:
                ax.plot(tokens, values, lw=1.4, color="C1")
            ax.set_title(panel.title, fontsize=10)
            ax.set_ylabel(panel.ylabel)
            ax.grid(alpha=0.3)
            if panel.log_scale and all(v > 0 for v in values):
                ax.set_yscale("log")
            elif all(v >= 0 for v in values):
                ax.set_ylim(bottom=0)
        for ax in axes[-1]:
            ax.set_xlabel("tokens trained")
        fig.suptitle(self.folder.name)
        fig.tight_layout()
        path = self.folder / "training_curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


class Panel(NamedTuple):
    """One panel of `training_curves.png`."""

    key: str
    """The `metrics.csv` column it plots."""
    title: str
    """What it shows, in words."""
    ylabel: str
    """The y-axis label (with its unit)."""
    smooth: bool = False
    """Draw the windows faint and their moving average bold (for noisy per-batch quantities)."""
    log_scale: bool = False
    """Logarithmic y axis (when every value is positive)."""


def panels(rows: Sequence[dict[str, float]]) -> list[Panel]:
    """What to plot: L0 when it varies; when k fixes it, the learning rate says more."""
    l0s = {round(r.get("l0", math.nan), 3) for r in rows}
    third = (
        Panel("l0", "L0: active latents per token", "latents per token")
        if len(l0s) > 1
        else Panel("lr", f"learning rate (L0 is fixed at {next(iter(l0s)):g})", "learning rate")
    )
    return [
        Panel(
            "loss",
            "training loss: reconstruction + sparsity + aux-k + the architecture's own terms",
            "loss",
            smooth=True,
            log_scale=True,
        ),
        Panel("fvu", "FVU: fraction of variance unexplained", "FVU", smooth=True, log_scale=True),
        third,
        Panel("dead_fraction", "dead latents (no activation for --dead-tokens)", "fraction of latents"),
    ]


def smooth(values: Sequence[float], half: int) -> list[float]:
    """Centred moving average: each value averaged with up to `half` neighbours on each side (fewer
    at the ends)."""
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out
