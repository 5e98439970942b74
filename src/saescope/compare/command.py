"""`saescope compare`: SAEs of one model and site measured against each other.

    saescope compare runs/demo/sae /tmp/demo_seed1          # → runs/demo/compare/compare.json

For every pair of the SAEs given (the first pair is the headline): best matches and the one-to-one
assignment by decoder cosine with the shared fractions and their histogram (`matching`); where
both SAEs have a latent index over the same tokens, the activation correlation of the assigned
pairs (`coactivation`); for SAEs of different widths, feature families with each latent's
explanation and top tokens from its index (`families`); for SAEs of one width, the universality
fraction (`universality`). One joint map of all their decoder directions (`joint_map`).

`compare.json` (the DESIGN contract, then the details):
`{"saes": [path, …], "shared_fraction": {"0.5": f, "0.7": f, "0.9": f}, "assignment": [[latent_a,
latent_b, cosine], …], "families": [{"parent": latent, "children": [latent, …], …}, …],
"pairs": [every pair in full], "map": {…}}` — the top-level fields are the first pair's.

SAEs of different models, sites or input widths are refused (one line, exit 2): their latents
live in different spaces. Nothing here runs a model.
This module knows nothing about HTTP, pages or how the SAEs were trained.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..bound import same_model
from ..config.compare import CompareConfig
from ..errors import SaescopeError
from ..files import json_safe, write_json
from ..index import Index
from ..index.format import sae_fingerprint
from ..index.locate import index_of_sae
from ..models import use_threads
from ..runs import COMPARE_RESULT, run_of
from ..sae.base import SparseAutoencoder
from ..sae.source import open_sae
from .coactivation import PairStatistics, different_tokens, pair_statistics
from .families import Families, find_families
from .joint_map import JointMap, joint_map
from .matching import Matching, cosine_histogram, match_decoders
from .universality import Universality, universality

log = logging.getLogger(__name__)


class LatentNotes(NamedTuple):
    """What an index says about a few latents of one SAE."""

    explanations: dict[int, str]
    """Latent → its stored explanation ("" or absent: none)."""
    top_tokens: dict[int, list[str]]
    """Latent → its most frequent top-example tokens."""


class Correlation(NamedTuple):
    """The assigned pairs' activations over the tokens both indexes cover (or why not measured)."""

    statistics: PairStatistics | None
    """Per pair (assignment order); None when not measured."""
    reason: str
    """Why it was not measured ("" when it was)."""

    def summary(self) -> dict[str, Any]:
        if self.statistics is None:
            return {"measured": False, "reason": self.reason}
        r = self.statistics.correlation
        measured = r[np.isfinite(r)]
        return {
            "measured": True,
            "tokens": self.statistics.tokens,
            "pairs": len(r),
            "pairs_measured": len(measured),
            "median": float(np.median(measured)) if len(measured) else None,
            "fraction_at_least_0.5": float((measured >= 0.5).mean()) if len(measured) else None,
        }


class PairComparison(NamedTuple):
    """Two of the SAEs compared."""

    a: int
    """Position of SAE A among the SAEs given."""
    b: int
    """Position of SAE B."""
    matching: Matching
    """Best matches, assignment, shared fractions, histogram."""
    correlation: Correlation
    """Activation correlation of the assigned pairs."""
    families: Families | None
    """Feature families (SAEs of different widths; None for one width)."""
    family_notes: dict[str, LatentNotes]
    """`parent` and `child` → explanations and top tokens of the families' latents."""
    universality: Universality | None
    """The universality fraction (SAEs of one width; None otherwise)."""


class CompareResult(NamedTuple):
    """What `saescope compare` measured and where it wrote it."""

    saes: tuple[Path, ...]
    """The SAE folders, in the order given."""
    widths: tuple[int, ...]
    """Their latents."""
    fingerprints: tuple[str, ...]
    """Their weights' `sae_fingerprint` (what an index of each records): pages find the SAE they
    are of by it, wherever the run has moved."""
    pairs: tuple[PairComparison, ...]
    """Every pair (i < j), the first pair first."""
    map: JointMap
    """The joint map of their decoder directions."""
    out: Path
    """The compare.json written."""
    seconds: float
    """Wall time."""

    def to_json(self) -> dict[str, Any]:
        pairs = [pair_json(self, p) for p in self.pairs]
        first = pairs[0]
        return {
            "saes": [str(p) for p in self.saes],
            "resolved": [str(p.resolve()) for p in self.saes],
            "fingerprints": list(self.fingerprints),
            "shared_fraction": first["shared_fraction"],
            "assignment": first["assignment"],
            "families": first["families"],
            "pairs": pairs,
            "map": self.map.to_json(),
            "out": str(self.out),
            "seconds": self.seconds,
        }

    def render(self) -> str:
        from .report import render_comparison

        return render_comparison(self)


# ----- inputs --------------------------------------------------------------------------------
def check_comparable(saes: Sequence[SparseAutoencoder], paths: Sequence[Path]) -> None:
    """One model, one site, one input width: anything else is refused in one line."""
    first, where = saes[0].cfg, paths[0]
    for sae, path in zip(saes[1:], paths[1:]):
        cfg = sae.cfg
        if not same_model(cfg.model, first.model):
            raise SaescopeError(
                f"{path} reads model {cfg.model!r}, {where} reads {first.model!r}: compare SAEs of one model"
            )
        if (cfg.hookpoint_alias or cfg.hookpoint) != (first.hookpoint_alias or first.hookpoint):
            raise SaescopeError(
                f"{path} reads {cfg.hookpoint_alias or cfg.hookpoint!r}, {where} reads "
                f"{first.hookpoint_alias or first.hookpoint!r}: compare SAEs of one site"
            )
        if cfg.d_in != first.d_in:
            raise SaescopeError(
                f"{path} takes inputs of width {cfg.d_in}, {where} of width {first.d_in}: "
                "compare SAEs of one input width"
            )


def indexes_of(cfg: CompareConfig, saes: Sequence[SparseAutoencoder]) -> list[Index | None]:
    """Each SAE's index: the one given (which must index it), else its run's when that indexes it."""
    given: Sequence[Path | None] = cfg.index or [None] * len(saes)
    found = []
    for sae, path, index in zip(saes, cfg.saes, given):
        folder = index_of_sae(sae.file_tensors(), path, index)
        found.append(Index(folder) if folder is not None else None)
    return found


def out_folder(cfg: CompareConfig) -> Path:
    """`--out`, else `compare` in the first SAE's run."""
    return cfg.out if cfg.out is not None else run_of(cfg.saes[0]).compare


# ----- one pair ------------------------------------------------------------------------------
def correlation_of(matching: Matching, index_a: Index | None, index_b: Index | None) -> Correlation:
    """The assigned pairs' activation correlation when both SAEs have an index of the same tokens."""
    if index_a is None or index_b is None:
        missing = (
            "either SAE" if index_a is None and index_b is None else ("SAE A" if index_a is None else "SAE B")
        )
        return Correlation(None, f"no latent index of {missing} (run saescope index, or pass --index)")
    reason = different_tokens(index_a, index_b)
    if reason is not None:
        return Correlation(None, reason)
    assignment = matching.assignment
    stats = pair_statistics(index_a, index_b, assignment.latent_a.tolist(), assignment.latent_b.tolist())
    return Correlation(stats, "")


def top_tokens_of(index: Index, latents: Sequence[int], n: int) -> dict[int, list[str]]:
    """Each latent's `n` most frequent tokens among its top examples, as they are (a latent of
    whitespace has whitespace tokens: pages show them visibly, the text report quoted)."""
    if n <= 0 or not latents:
        return {}
    found = index.top_examples_many(sorted(set(latents)), 20, 0, 0)
    out = {}
    for latent, examples in found.items():
        counts: dict[str, int] = {}
        for example in examples:
            token = example.focus_token
            if token:
                counts[token] = counts.get(token, 0) + 1
        out[latent] = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
    return out


def notes_of(index: Index | None, latents: Sequence[int], n: int) -> LatentNotes:
    """Explanations and top tokens of `latents` from `index` (empty without one)."""
    if index is None:
        return LatentNotes({}, {})
    wanted = set(latents)
    explanations = {k: v for k, v in index.explanations().items() if k in wanted}
    return LatentNotes(explanations, top_tokens_of(index, latents, n))


def families_of(
    cfg: CompareConfig, matching: Matching, small_is_a: bool, small: Index | None, large: Index | None
) -> tuple[Families, dict[str, LatentNotes]]:
    """The families of a pair of different widths, with notes on their latents."""
    best = matching.b_to_a if small_is_a else matching.a_to_b
    coactivation = None
    if small is not None and large is not None and different_tokens(small, large) is None:

        def coactivation(parents: Sequence[int], children: Sequence[int]) -> np.ndarray:
            assert small is not None and large is not None
            return pair_statistics(small, large, parents, children).coactivation

    found = find_families(best.latent, best.cosine, cfg.family_cosine, coactivation, cfg.family_coactivation)
    parents = [f.parent for f in found.families]
    children = [c.latent for f in found.families for c in f.children]
    notes = {
        "parent": notes_of(small, parents, cfg.top_tokens),
        "child": notes_of(large, children, cfg.top_tokens),
    }
    return found, notes


def compare_pair(
    cfg: CompareConfig, saes: Sequence[SparseAutoencoder], indexes: Sequence[Index | None], i: int, j: int
) -> PairComparison:
    """SAEs i and j compared (see the module docstring)."""
    a, b = saes[i], saes[j]
    log.info("comparing %s (%d latents) with %s (%d latents)", cfg.saes[i], a.d_sae, cfg.saes[j], b.d_sae)
    matching = match_decoders(
        a.W_dec, b.W_dec, cfg.candidates, cfg.dense_limit, cfg.chunk_mb, screen_dims=cfg.screen_dims
    )
    correlation = correlation_of(matching, indexes[i], indexes[j])
    families: Families | None = None
    notes: dict[str, LatentNotes] = {}
    universal: Universality | None = None
    if a.d_sae != b.d_sae:
        small_is_a = a.d_sae < b.d_sae
        small, large = (indexes[i], indexes[j]) if small_is_a else (indexes[j], indexes[i])
        families, notes = families_of(cfg, matching, small_is_a, small, large)
    else:
        universal = universality(
            matching.assignment, a.W_enc, b.W_enc, a.cfg.training.config or {}, b.cfg.training.config or {}
        )
    return PairComparison(i, j, matching, correlation, families, notes, universal)


# ----- JSON --------------------------------------------------------------------------------------
def family_json(result: CompareResult, pair: PairComparison) -> list[dict[str, Any]]:
    """The pair's families: the contract's `parent` and `children`, then every latent's details."""
    if pair.families is None:
        return []
    small_is_a = result.widths[pair.a] < result.widths[pair.b]
    parent_sae, child_sae = (pair.a, pair.b) if small_is_a else (pair.b, pair.a)
    parents, kids = pair.family_notes["parent"], pair.family_notes["child"]
    return [
        {
            "parent": f.parent,
            "children": [c.latent for c in f.children],
            "parent_sae": str(result.saes[parent_sae]),
            "children_sae": str(result.saes[child_sae]),
            "parent_sae_index": parent_sae,
            "children_sae_index": child_sae,
            "parent_explanation": parents.explanations.get(f.parent, ""),
            "parent_top_tokens": parents.top_tokens.get(f.parent, []),
            "children_details": [
                {
                    "latent": c.latent,
                    "cosine": c.cosine,
                    "coactivation": c.coactivation,
                    "explanation": kids.explanations.get(c.latent, ""),
                    "top_tokens": kids.top_tokens.get(c.latent, []),
                }
                for c in f.children
            ],
        }
        for f in pair.families.families
    ]


def pair_json(result: CompareResult, pair: PairComparison) -> dict[str, Any]:
    m = pair.matching
    assignment = m.assignment
    correlation = pair.correlation.statistics
    rows = zip(assignment.latent_a.tolist(), assignment.latent_b.tolist(), assignment.cosine.tolist())
    out: dict[str, Any] = {
        "sae_a": str(result.saes[pair.a]),
        "sae_b": str(result.saes[pair.b]),
        "index_a": pair.a,
        "index_b": pair.b,
        "latents_a": result.widths[pair.a],
        "latents_b": result.widths[pair.b],
        "shared_fraction": {str(t): f for t, f in m.shared.items()},
        "shared_of": len(assignment.cosine),
        "assignment": [[a, b, round(c, 6)] for a, b, c in rows],
        "assignment_method": assignment.method,
        "assignment_edges": assignment.edges,
        "assignment_fallback_pairs": assignment.fallback_pairs,
        "assignment_total_cosine": assignment.total,
        "assignment_upper_bound": assignment.upper_bound,
        "screened_on": m.screened_on,
        "histogram": m.histogram.to_json(),
        "best_match": {
            "a_to_b_mean": float(m.a_to_b.cosine.mean()),
            "b_to_a_mean": float(m.b_to_a.cosine.mean()),
            "a_to_b_histogram": histogram_of(m.a_to_b.cosine),
            "b_to_a_histogram": histogram_of(m.b_to_a.cosine),
        },
        "correlation": pair.correlation.summary(),
        "assignment_correlation": None
        if correlation is None
        else [None if not np.isfinite(r) else round(float(r), 5) for r in correlation.correlation],
        "families": family_json(result, pair),
        "families_summary": None if pair.families is None else families_summary(pair.families),
        "universality": None if pair.universality is None else json_safe(pair.universality._asdict()),
    }
    return out


def histogram_of(cosine: torch.Tensor) -> dict[str, object]:
    return cosine_histogram(cosine).to_json()


def families_summary(found: Families) -> dict[str, Any]:
    return {
        "families": len(found.families),
        "children": sum(len(f.children) for f in found.families),
        "children_considered": found.children_considered,
        "dropped_by_coactivation": found.dropped_by_coactivation,
        "min_cosine": found.min_cosine,
        "min_coactivation": found.min_coactivation,
    }


# ----- the stage -----------------------------------------------------------------------------------
def compare(cfg: CompareConfig) -> CompareResult:
    """`saescope compare` (see the module docstring)."""
    started = time.perf_counter()
    use_threads(cfg.threads)
    opened = [open_sae(p) for p in cfg.saes]  # a folder in any format, or a published SAE's name
    cfg = dataclasses.replace(cfg, saes=tuple(o.folder for o in opened))  # a name: its run's sae/
    saes = [o.sae for o in opened]
    check_comparable(saes, cfg.saes)
    indexes = indexes_of(cfg, saes)
    with torch.inference_mode():
        pairs = tuple(
            compare_pair(cfg, saes, indexes, i, j) for i in range(len(saes)) for j in range(i + 1, len(saes))
        )
        layout = joint_map([s.W_dec for s in saes], cfg.map, cfg.map_points, cfg.seed)
    out = out_folder(cfg)
    out.mkdir(parents=True, exist_ok=True)
    target = out / COMPARE_RESULT
    result = CompareResult(
        tuple(cfg.saes),
        tuple(s.d_sae for s in saes),
        tuple(sae_fingerprint(s.file_tensors()) for s in saes),
        pairs,
        layout,
        target,
        time.perf_counter() - started,
    )
    write_json(target, result.to_json())
    return result


__all__ = ["CompareResult", "PairComparison", "check_comparable", "compare"]
