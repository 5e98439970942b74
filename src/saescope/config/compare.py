"""`saescope compare` settings, and the settings of the absorption and sparse-probing metrics that
`saescope eval --metrics` runs.

This module knows nothing about how SAEs are matched or probed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import require
from .base import check_choices

THRESHOLDS = (0.5, 0.7, 0.9)
"""Decoder cosines at which a latent counts as shared (the issue's, and the DESIGN contract's keys)."""
SCREEN_DIMS = 256
"""Random directions the cosines of large SAEs are screened on (0: the full input width)."""
DENSE_LIMIT = 1 << 25
"""Cosine-matrix entries up to which latents are assigned exactly (Hungarian on the dense matrix)."""
PROBING_TASKS = ("code_vs_prose", "in_string", "script", "first_letter")
"""The offline sparse-probing tasks (a user's labelled JSONL adds its own)."""


@dataclass(frozen=True)
class CompareConfig:
    """`saescope compare`: match the latents of SAEs of one model and site by decoder cosine.

    For each pair of SAEs: every latent's best match in the other SAE (both ways), a one-to-one
    assignment maximising the summed cosine (exact Hungarian when the cosine matrix is small enough,
    else on each latent's top candidates: the result says which), the fraction of latents shared at
    cosine 0.5, 0.7 and 0.9 with a histogram, and, where both SAEs have a latent index of the same
    tokens, the correlation of matched latents' activations. SAEs of different widths get feature
    families (a latent of the smaller SAE and the latents of the larger one it splits into); SAEs of
    one width get the universality fraction. A joint 2-D map of every SAE's decoder directions
    comes with them. Writes compare.json into the comparison folder.
    """

    saes: tuple[Path, ...] = field(
        default=(), metadata={"positional": True, "metavar": "SAE", "required": True}
    )
    """SAE folders to compare (at least two; every pair is compared, the first pair is the headline)."""

    index: tuple[Path, ...] = ()
    """Latent indexes, one per SAE in the same order. Default: each SAE's run index when it indexes
    that SAE (activation correlation and co-activation need an index of both SAEs)."""

    out: Path | None = None
    """Folder to write compare.json to. Default: `compare` in the first SAE's run (runs/NAME/compare)."""

    candidates: int = 8
    """Candidates per latent kept from the screening (top decoder cosines, each way) for the
    assignment of large SAEs and for families."""

    dense_limit: int = DENSE_LIMIT
    """Assign exactly (Hungarian on the whole cosine matrix) when latents_a × latents_b is at most
    this; above it, on the candidates only. The default (2^25: a float32 matrix of 128 MiB) covers
    two SAEs of 5,792 latents (the demo's 4,608 take about 12 s on 2 CPU cores)."""

    chunk_mb: int = 256
    """Memory per block of the cosine matrix screened at once (MiB)."""

    screen_dims: int = SCREEN_DIMS
    """Above --dense-limit, candidates are screened on this many shared random directions (the
    cosines reported are then recomputed exactly on the full width): a partner at cosine ≥ 0.5 is
    kept with near certainty, a weak best partner (cosine < ~0.3) may be swapped for a near-best
    one. 0: screen at the full input width (exact, d_in / screen_dims times the work)."""

    family_cosine: float = 0.5
    """A latent of the larger SAE joins the family of its best match in the smaller SAE when their
    decoder cosine is at least this."""

    family_coactivation: float = 0.5
    """With indexes of both SAEs: a child must also fire with its parent on at least this fraction
    of the tokens the child fires on."""

    top_tokens: int = 5
    """Top tokens shown per latent of a family (from its index)."""

    map: Literal["auto", "pca", "umap"] = "auto"
    """Joint map layout: UMAP on cosine distance (umap-learn) or the first two principal components;
    `auto`: UMAP when installed."""

    map_points: int = 4096
    """Latents per SAE placed on the joint map (a seeded sample of larger SAEs)."""

    seed: int = 0
    """Seed of the map's sample and layout."""

    threads: int = 0
    """Torch threads (0: torch's default, every core)."""

    def __post_init__(self) -> None:
        check_choices(self)
        require(len(self.saes) >= 2, f"give at least two SAE folders to compare, got {len(self.saes)}")
        require(
            not self.index or len(self.index) == len(self.saes),
            f"--index takes one index per SAE ({len(self.saes)}), got {len(self.index)}",
        )
        require(self.candidates >= 1, f"--candidates must be at least 1, got {self.candidates}")
        require(self.dense_limit >= 1, f"--dense-limit must be positive, got {self.dense_limit}")
        require(self.chunk_mb >= 1, f"--chunk-mb must be at least 1, got {self.chunk_mb}")
        require(self.screen_dims >= 0, f"--screen-dims must be at least 0, got {self.screen_dims}")
        for name in ("family_cosine", "family_coactivation"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        require(self.top_tokens >= 0, f"--top-tokens must be at least 0, got {self.top_tokens}")
        require(self.map_points >= 2, f"--map-points must be at least 2, got {self.map_points}")
        require(self.threads >= 0, f"--threads must be at least 0, got {self.threads}")


@dataclass(frozen=True)
class AbsorptionSettings:
    """The first-letter absorption metric (Chanin et al. 2024, SAEBench's variant), offline.

    Words are the letter-only tokens of the tokenizer's vocabulary; each is read in an in-context
    prompt (`WORD has the first letter: W` lines) at its own token.
    """

    words: int = 3000
    """Letter-only vocabulary tokens used at most (a seeded sample, split into probe-training and
    held-out words)."""

    icl_examples: int = 10
    """Solved lines before the first probed word of each prompt (SAEBench uses 10)."""

    context_len: int = 512
    """Tokens per prompt (each packs as many word lines as fit; the solved lines opening each prompt
    are read once per prompt)."""

    heldout_fraction: float = 0.3
    """Fraction of the words held out: probe F1, the main latents' F1 and absorption are measured on them."""

    min_probe_f1: float = 0.6
    """Letters whose probe F1 on held-out words is below this are skipped (listed, not averaged)."""

    min_words: int = 260
    """Fewer letter-only tokens than this in the vocabulary: absorption is not measured."""

    max_k: int = 10
    """Largest number of main latents per letter (k-sparse probing)."""

    f1_jump: float = 0.03
    """A letter gets one more main latent while the k-sparse probe's held-out F1 rises by more than this."""

    batch_size: int = 8
    """Prompts per forward pass."""

    seed: int = 0
    """Seed of the word sample, the split and the prompts."""

    def __post_init__(self) -> None:
        require(self.words >= 2, f"absorption words must be at least 2, got {self.words}")
        require(self.icl_examples >= 0, "absorption icl_examples must be at least 0")
        require(self.context_len >= 32, f"absorption context_len must be at least 32, got {self.context_len}")
        require(0.0 < self.heldout_fraction < 1.0, "absorption heldout_fraction must be in (0, 1)")
        require(0.0 <= self.min_probe_f1 <= 1.0, "absorption min_probe_f1 must be in [0, 1]")
        require(self.max_k >= 1, "absorption max_k must be at least 1")
        require(self.batch_size >= 1, "absorption batch_size must be at least 1")


@dataclass(frozen=True)
class ProbingSettings:
    """Sparse probing (SAEBench's, offline): top-k latents by mean difference, a logistic regression
    on them, beside the same probe on the raw activations (ceiling) and on a random projection of
    the SAE's width (floor)."""

    tasks: tuple[str, ...] = PROBING_TASKS
    """Offline tasks to run (a labelled JSONL adds `labelled`)."""

    ks: tuple[int, ...] = (1, 2, 5, 20)
    """Numbers of latents probed."""

    per_class: int = 500
    """Examples per class at most (classes are balanced by sampling, so chance is 0.5)."""

    heldout_fraction: float = 0.3
    """Fraction of each task's examples held out; accuracies are measured on them only."""

    min_per_class: int = 20
    """A class (or a task) with fewer examples than this is not probed (listed as not measured)."""

    context_len: int = 128
    """Tokens read per document."""

    documents: int = 200
    """Documents read per document-level task at most (half of each class for code vs prose)."""

    batch_size: int = 8
    """Texts per forward pass."""

    seed: int = 0
    """Seed of the samples, the splits and the random projection."""

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in PROBING_TASKS]
        require(not unknown, f"unknown probing task {unknown[:1]}; choose from {', '.join(PROBING_TASKS)}")
        require(bool(self.ks) and all(k >= 1 for k in self.ks), f"probing ks must be positive, got {self.ks}")
        require(self.per_class >= 2, "probing per_class must be at least 2")
        require(0.0 < self.heldout_fraction < 1.0, "probing heldout_fraction must be in (0, 1)")
        require(self.min_per_class >= 2, "probing min_per_class must be at least 2")
        require(self.context_len >= 2, "probing context_len must be at least 2")
        require(self.documents >= 2, "probing documents must be at least 2")
        require(self.batch_size >= 1, "probing batch_size must be at least 1")


__all__ = [
    "DENSE_LIMIT",
    "PROBING_TASKS",
    "SCREEN_DIMS",
    "THRESHOLDS",
    "AbsorptionSettings",
    "CompareConfig",
    "ProbingSettings",
]
