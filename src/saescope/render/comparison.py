"""A comparison of SAEs (`compare.json`) and the run's SAEs' evaluations (`eval.json`) as page views.

- `comparison_view`: each compared pair's shared fractions, cosine histogram, correlation,
  universality and feature families (the families tree: a parent latent of the smaller SAE and the
  latents of the larger one it splits into, each with its explanation and top tokens), and the
  joint map; a latent links to its page only when it belongs to the SAE the pages are of (the
  same weights' fingerprint as the index the pages show, else the same folder);
- `sae_row`: one SAE's row of the overview's comparison table — L0, FVU, CE loss recovered,
  absorption and sparse probing, "not measured" for what its eval.json lacks.

Pure functions of the JSON documents the compare and eval stages write (read by the caller). This
module knows nothing about files, HTTP or how the numbers were measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .views import Histogram

NOT_MEASURED = "not measured"


class ChildView(NamedTuple):
    """A latent of the larger SAE in a family."""

    latent: int
    cosine: float
    """Decoder cosine with the parent."""
    coactivation: float | None
    """Of the tokens it fires on, the fraction its parent fires on (None: not measured)."""
    explanation: str
    top_tokens: tuple[str, ...]


class FamilyView(NamedTuple):
    """A latent of the smaller SAE and the latents it splits into."""

    parent: int
    explanation: str
    top_tokens: tuple[str, ...]
    children: tuple[ChildView, ...]


class PairView(NamedTuple):
    """Two compared SAEs."""

    sae_a: str
    sae_b: str
    latents_a: int
    latents_b: int
    shared: tuple[tuple[str, float], ...]
    """(threshold, fraction of the assigned latents at or above it)."""
    shared_of: int
    """Latents assigned (every latent of the smaller SAE)."""
    method: str
    """How the assignment was made, in words."""
    histogram: Histogram
    """The assigned pairs' cosines over [0, 1]."""
    below_zero: int
    """Assigned pairs with a negative cosine (not in the histogram)."""
    correlation: str
    """The activation correlation in words (or why not measured)."""
    universality: str
    """The universality fraction in words ("" for SAEs of different widths)."""
    families: tuple[FamilyView, ...]
    families_note: str
    """What the families are of and how they were found ("" for SAEs of one width)."""
    parent_sae: str
    """The smaller SAE (families' parents)."""
    children_sae: str
    """The larger SAE (families' children)."""
    parent_links: bool
    """Whether the parents belong to the SAE the pages are of (their ids link to their pages)."""
    children_links: bool
    """Whether the children do."""


class MapView(NamedTuple):
    """The joint map of the compared SAEs' decoder directions."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    groups: tuple[int, ...]
    """Which SAE each point is (an index into `names`)."""
    names: tuple[str, ...]
    method: str


class ComparisonView(NamedTuple):
    """A whole comparison."""

    saes: tuple[str, ...]
    pairs: tuple[PairView, ...]
    map: MapView | None

    @property
    def families(self) -> int:
        return sum(len(p.families) for p in self.pairs)


class Own(NamedTuple):
    """The SAE whose latents have pages."""

    path: Path | None
    """Its folder (None: not known)."""
    fingerprint: str | None
    """Its weights' fingerprint (its index's `sae_sha256`; None: not known)."""


def is_own(data: Mapping[str, Any], i: int, own: Own) -> bool:
    """Whether the comparison's SAE `i` is the SAE the pages are of: by fingerprint when both are
    known (a run moved or copied elsewhere still links), else by resolved folder."""
    fingerprints = data.get("fingerprints") or ()
    if own.fingerprint is not None and i < len(fingerprints):
        return bool(fingerprints[i] == own.fingerprint)
    resolved = data.get("resolved") or ()
    return own.path is not None and i < len(resolved) and Path(str(resolved[i])) == own.path.resolve()


def family_views(families: Sequence[Mapping[str, Any]]) -> tuple[FamilyView, ...]:
    return tuple(
        FamilyView(
            int(f["parent"]),
            str(f.get("parent_explanation") or ""),
            tuple(f.get("parent_top_tokens") or ()),
            tuple(
                ChildView(
                    int(c["latent"]),
                    float(c["cosine"]),
                    None if c.get("coactivation") is None else float(c["coactivation"]),
                    str(c.get("explanation") or ""),
                    tuple(c.get("top_tokens") or ()),
                )
                for c in f.get("children_details") or ()
            ),
        )
        for f in families
    )


def method_text(pair: Mapping[str, Any]) -> str:
    if pair.get("assignment_method") == "hungarian":
        return f"exact Hungarian assignment on all {int(pair['assignment_edges']):,} decoder cosines"
    screened = int(pair.get("screened_on") or 0)
    how = f", screened on {screened} random directions" if screened else ""
    return (
        f"assignment optimal on {int(pair['assignment_edges']):,} candidate pairs (each latent's best "
        f"partners both ways{how}), summed cosine {float(pair['assignment_total_cosine']):,.1f} of at most "
        f"{float(pair['assignment_upper_bound']):,.1f}"
    )


def correlation_text(correlation: Mapping[str, Any]) -> str:
    if not correlation.get("measured"):
        return f"{NOT_MEASURED}: {correlation.get('reason', '')}"
    median, high = correlation.get("median"), correlation.get("fraction_at_least_0.5")
    if median is None or high is None:
        return f"{NOT_MEASURED}: no assigned pair fires on the {int(correlation['tokens']):,} tokens"
    return (
        f"median r {median:.3f}; r ≥ 0.5 for {high:.1%} of the {int(correlation['pairs_measured']):,} pairs "
        f"that fire, over the {int(correlation['tokens']):,} tokens both indexes cover"
    )


def universality_text(u: Mapping[str, Any] | None) -> str:
    if not u:
        return ""
    seeds = u.get("seeds") or [None, None]
    what = (
        f"training seeds {seeds[0]} and {seeds[1]}, same settings"
        if u.get("same_settings")
        else "settings differ beyond the seed: " + (", ".join(u.get("differing") or ()) or "not recorded")
    )
    t = u["threshold"]
    return (
        f"{u['decoder_fraction']:.1%} of the {int(u['latents']):,} latents have a partner at decoder "
        f"cosine ≥ {t}; "
        f"{u['both_fraction']:.1%} at decoder and encoder cosine ≥ {t} ({what})"
    )


def families_note(pair: Mapping[str, Any], small: str) -> str:
    s = pair.get("families_summary")
    if not s:
        return ""
    how = f"decoder cosine ≥ {s['min_cosine']}" + (
        f" and co-activation ≥ {s['min_coactivation']}"
        if s.get("min_coactivation") is not None
        else " (no indexes of both SAEs: co-activation not measured)"
    )
    return (
        f"{int(s['families']):,} latent{'' if int(s['families']) == 1 else 's'} of {small} split into "
        f"{int(s['children']):,} latents of the "
        f"larger SAE ({how}; a family needs at least two children)"
    )


def pair_view(pair: Mapping[str, Any], data: Mapping[str, Any], own: Own) -> PairView:
    h = pair["histogram"]
    a, b = int(pair.get("index_a", 0)), int(pair.get("index_b", 1))
    small, large = (a, b) if int(pair["latents_a"]) < int(pair["latents_b"]) else (b, a)
    names = (str(pair["sae_a"]), str(pair["sae_b"]))
    parent_sae, children_sae = (names[0], names[1]) if small == a else (names[1], names[0])
    return PairView(
        names[0],
        names[1],
        int(pair["latents_a"]),
        int(pair["latents_b"]),
        tuple((str(t), float(f)) for t, f in pair["shared_fraction"].items()),
        int(pair["shared_of"]),
        method_text(pair),
        Histogram(tuple(h["edges"]), tuple(h["counts"])),
        int(h.get("below_zero", 0)),
        correlation_text(pair.get("correlation") or {}),
        universality_text(pair.get("universality")),
        family_views(pair.get("families") or ()),
        families_note(pair, parent_sae),
        parent_sae,
        children_sae,
        is_own(data, small, own),
        is_own(data, large, own),
    )


def comparison_view(
    data: Mapping[str, Any], own: Path | None = None, own_fingerprint: str | None = None
) -> ComparisonView:
    """The view of a `compare.json`; `own` and `own_fingerprint`: the folder and the weights'
    fingerprint of the SAE whose latents have pages (links to them), when there are pages."""
    saes = tuple(str(s) for s in data.get("saes", ()))
    pairs = tuple(pair_view(p, data, Own(own, own_fingerprint)) for p in data.get("pairs", ()))
    found = data.get("map")
    layout = None
    if found and found.get("x"):
        layout = MapView(
            tuple(found["x"]), tuple(found["y"]), tuple(found["sae"]), saes, str(found.get("method", ""))
        )
    return ComparisonView(saes, pairs, layout)


# ----- the overview's table of SAEs --------------------------------------------------------------
class SAERowView(NamedTuple):
    """One SAE of the run in the overview's comparison table (every cell a string)."""

    name: str
    architecture: str
    latents: str
    k: str
    l0: str
    fvu: str
    ce_recovered: str
    absorption: str
    full_absorption: str
    probing_top1: str
    probing_ceiling: str
    probing_floor: str
    l0_value: float | None
    """For the frontier plot (None: not measured)."""
    fvu_value: float | None


def number(value: Any, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return NOT_MEASURED
    return format(value, spec)


def mean_of(tasks: Mapping[str, Any], key: str) -> tuple[float | None, int]:
    """The mean of `key` over the measured tasks, and how many there were."""
    values = [
        t[key] for t in tasks.values() if isinstance(t, dict) and t.get("measured") and t.get(key) is not None
    ]
    return (sum(values) / len(values) if values else None), len(values)


def sae_row(name: str, cfg: Mapping[str, Any] | None, evaluation: Mapping[str, Any] | None) -> SAERowView:
    """A row of the overview's comparison table (see the module docstring)."""
    cfg, e = cfg or {}, evaluation or {}
    r, s, d = e.get("reconstruction") or {}, e.get("sparsity") or {}, e.get("downstream") or {}
    absorbed: Mapping[str, Any] = e["absorption"] if isinstance(e.get("absorption"), dict) else {}
    probed: Mapping[str, Any] = e["probing"] if isinstance(e.get("probing"), dict) else {}
    top1, tasks = mean_of(probed, "k1")
    ceiling, _ = mean_of(probed, "ceiling")
    floor, _ = mean_of(probed, "floor")
    letters = f" ({absorbed['letters_measured']} letters)" if absorbed.get("measured") else ""
    of_tasks = f" ({tasks} tasks)" if tasks else ""
    l0, fvu = s.get("l0_mean"), r.get("fvu")
    return SAERowView(
        name,
        str(cfg.get("architecture", "")),
        number(cfg.get("d_sae"), ","),
        number(cfg.get("k"), "d"),
        number(l0, ".1f"),
        number(fvu, ".4f"),
        number(d.get("ce_loss_recovered_zero"), ".3f"),
        number(absorbed.get("mean_fraction"), ".3f") + (letters if absorbed.get("measured") else ""),
        number(absorbed.get("full_rate"), ".3f"),
        number(top1, ".3f") + of_tasks,
        number(ceiling, ".3f"),
        number(floor, ".3f"),
        float(l0) if isinstance(l0, (int, float)) else None,
        float(fvu) if isinstance(fvu, (int, float)) and math.isfinite(fvu) else None,
    )


__all__ = [
    "ChildView",
    "ComparisonView",
    "FamilyView",
    "MapView",
    "Own",
    "PairView",
    "SAERowView",
    "comparison_view",
    "sae_row",
]
