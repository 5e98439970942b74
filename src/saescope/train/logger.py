"""Training metrics: `metrics.csv`, TensorBoard event files, optional Weights & Biases, a PNG.

One `MetricsLogger` per SAE folder. Rows are appended (a resumed run continues the same CSV,
dropping rows past the step it resumed from). Knows nothing about how metrics are computed.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COLUMNS = [
    "step",
    "tokens",
    "lr",
    "loss",
    "recon_loss",
    "sparsity_loss",
    "aux_loss",
    "fvu",
    "l0",
    "dead_fraction",
    "tokens_per_s",
]


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
        rows = self.read(self.csv_path) if self.csv_path.exists() else []
        if resume_step is None:
            rows = []
        else:
            rows = [r for r in rows if r["step"] <= resume_step]
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
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
    def read(path: Path) -> list[dict[str, float]]:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

    def log(self, metrics: dict[str, float]) -> None:
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore").writerow(metrics)
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
        """`training_curves.png`: loss, FVU and dead fraction against tokens."""
        rows = self.read(self.csv_path)
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tokens = [r["tokens"] for r in rows]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for ax, key, title in zip(axes, ["loss", "fvu", "dead_fraction"], ["loss", "FVU", "dead fraction"]):
            ax.plot(tokens, [r.get(key, float("nan")) for r in rows], lw=1.2)
            ax.set_title(title)
            ax.set_xlabel("tokens")
            ax.grid(alpha=0.3)
            if key in ("loss", "fvu") and all(r.get(key, 0) > 0 for r in rows):
                ax.set_yscale("log")
        fig.suptitle(self.folder.name)
        fig.tight_layout()
        path = self.folder / "training_curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
