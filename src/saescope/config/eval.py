"""`saescope eval` settings.

This module knows nothing about how evaluation runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require
from .base import ModelSettings, check_choices

METRIC_FAMILIES = ("core", "absorption", "probing")
"""What `saescope eval --metrics` can measure (`core` is evals' own; the others `saescope.compare`'s)."""


@dataclass(frozen=True)
class EvalConfig(ModelSettings):
    """`saescope eval`: reconstruction, sparsity and downstream metrics of saved SAEs."""

    saes: tuple[Path, ...] = field(
        default=(), metadata={"positional": True, "metavar": "SAE", "required": True}
    )
    """SAE folders (or published names: `hf:OWNER/REPO[/PATH][@REVISION]`, `saelens:RELEASE/SAE_ID`)
    to evaluate (several are compared in one table and one L0-vs-FVU plot)."""

    dataset: str | None = None
    """Evaluation text. Default: the SAE's own training corpus, skipping what capture used."""

    text_field: str = "text"
    """Field holding the text in `.jsonl`/`.parquet`/Hugging Face records."""

    split: str = "train"
    """Split of a Hugging Face dataset."""

    tokens: int = 20_000
    """Evaluation tokens (positions scored)."""

    context_len: int | None = None
    """Tokens per model input. Default: the SAE's capture setting."""

    batch_size: int = 8
    """Model inputs per forward pass."""

    downstream: bool = True
    """Also splice the SAE into the model and measure CE loss and KL (needs the model)."""

    force: bool = False
    """Evaluate even if --model differs from the model the SAE was trained on."""

    out: Path | None = None
    """Where to write the comparison (table JSON and plot) for several SAEs. Each SAE always gets
    `eval.json` and plots beside it."""

    model: str = ""
    """Model to evaluate on. Default: the one the SAE records."""

    metrics: tuple[str, ...] = ("core",)
    """Metric families to measure: `core` (reconstruction, sparsity, downstream), `absorption`
    (first-letter feature absorption, offline from the tokenizer's vocabulary), `probing` (sparse
    probing on offline tasks, beside a raw-activation ceiling and a random-projection floor)."""

    probing_texts: Path | None = None
    """With --metrics probing: also probe this JSONL of labelled texts (`{"text": …, "label": …}` per
    line, at least two labels)."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(len(self.saes) > 0, "give at least one SAE folder")
        require(self.tokens > 0, f"--tokens must be positive, got {self.tokens}")
        require(self.batch_size > 0, "--batch-size must be positive")
        require(self.context_len is None or self.context_len >= 2, "--context-len must be at least 2")
        unknown = [m for m in self.metrics if m not in METRIC_FAMILIES]
        require(
            not unknown,
            f"unknown metric family {unknown[0]!r} in --metrics; choose from {', '.join(METRIC_FAMILIES)}"
            if unknown
            else "",
        )
        require(bool(self.metrics), f"--metrics needs at least one of {', '.join(METRIC_FAMILIES)}")
        require(
            self.probing_texts is None or "probing" in self.metrics,
            "--probing-texts is read by --metrics probing; add probing to --metrics",
        )
