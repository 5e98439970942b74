"""What `saescope compare` prints: each pair's matching, correlation, families or universality.

Every number says what it is of: how many latents were assigned, over how many tokens a
correlation was measured, and "not measured" with the reason where it was not.
This module knows nothing about how the numbers were computed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from .matching import Histogram

if TYPE_CHECKING:
    from .command import CompareResult, PairComparison

BAR = 40
"""Characters of the longest histogram bar."""


def histogram_lines(histogram: Histogram) -> list[str]:
    """A text histogram, one line per bin with a count (empty bins left out)."""
    top = max(histogram.counts, default=0)
    lines = []
    if histogram.below_zero:
        lines.append(f"      < 0.00  {histogram.below_zero:>7,}")
    for low, high, count in zip(histogram.edges, histogram.edges[1:], histogram.counts):
        if count:
            bar = "#" * max(1, round(BAR * count / top))
            lines.append(f"  {low:.2f}–{high:.2f}  {count:>7,}  {bar}")
    return lines


def assignment_line(pair: PairComparison) -> str:
    a = pair.matching.assignment
    n = len(a.cosine)
    if a.method == "hungarian":
        how = f"exact Hungarian on all {a.edges:,} cosines"
    else:
        screened = pair.matching.screened_on
        how = (
            f"optimal on the {a.edges:,} candidate edges (each latent's best partners both ways"
            + (f", screened on {screened} random directions" if screened else "")
            + (
                f"; {a.fallback_pairs:,} latents left without a candidate partner, paired among the rest"
                if a.fallback_pairs
                else ""
            )
            + ")"
        )
    gap = a.upper_bound - a.total
    return (
        f"  one-to-one assignment of {n:,} latents ({how}): summed cosine {a.total:,.1f}, "
        f"{gap:,.1f} below the bound {a.upper_bound:,.1f} (each latent's own best match)"
    )


def correlation_line(pair: PairComparison) -> str:
    c = pair.correlation
    if c.statistics is None:
        return f"  activation correlation of assigned pairs: not measured ({c.reason})"
    r = c.statistics.correlation
    measured = r[np.isfinite(r)]
    if not len(measured):
        tokens = c.statistics.tokens
        return f"  activation correlation: not measured (no assigned pair fires on the {tokens:,} tokens)"
    median, high = float(np.median(measured)), float((measured >= 0.5).mean())
    return (
        f"  activation correlation of assigned pairs over the {c.statistics.tokens:,} tokens both indexes "
        f"cover: median r {median:.3f}, r ≥ 0.5 for {high:.1%} of the {len(measured):,} pairs where both "
        f"fire ({len(r) - len(measured):,} not measured: a latent never fires)"
    )


def quoted(tokens: list[str]) -> str:
    """Tokens as JSON strings (whitespace and line breaks visible), comma-separated."""
    return ", ".join(json.dumps(t, ensure_ascii=False) for t in tokens)


def families_lines(result: CompareResult, pair: PairComparison, shown: int = 5) -> list[str]:
    f = pair.families
    if f is None:
        return []
    small = min(pair.a, pair.b, key=lambda i: result.widths[i])
    how = (
        f"decoder cosine ≥ {f.min_cosine} and co-activation ≥ {f.min_coactivation}"
        if f.min_coactivation is not None
        else f"decoder cosine ≥ {f.min_cosine} (no indexes of both: co-activation not measured)"
    )
    lines = [
        f"  feature families ({how}): {len(f.families):,} latent{'' if len(f.families) == 1 else 's'} of the "
        f"{result.widths[small]:,}-latent SAE "
        f"split into {sum(len(x.children) for x in f.families):,} latents of the larger one "
        f"({f.children_considered:,} candidates, {f.dropped_by_coactivation:,} dropped by co-activation)"
    ]
    parents, kids = pair.family_notes.get("parent"), pair.family_notes.get("child")
    for family in f.families[:shown]:
        label = parents.explanations.get(family.parent, "") if parents else ""
        tokens = quoted(parents.top_tokens.get(family.parent, [])) if parents else ""
        lines.append(
            f"    {family.parent}" + (f" [{tokens}]" if tokens else "") + (f" {label}" if label else "")
        )
        for child in family.children:
            ct = quoted(kids.top_tokens.get(child.latent, [])) if kids else ""
            co = f", co-activation {child.coactivation:.2f}" if child.coactivation is not None else ""
            lines.append(
                f"      └ {child.latent} (cosine {child.cosine:.3f}{co})" + (f" [{ct}]" if ct else "")
            )
    return lines


def universality_line(pair: PairComparison) -> str:
    u = pair.universality
    if u is None:
        return ""
    what = (
        f"same settings, training seeds {u.seeds[0]} and {u.seeds[1]}"
        if u.same_settings
        else f"settings differ beyond the seed: {', '.join(u.differing) or 'not recorded'}"
    )
    return (
        f"  universality ({what}): {u.decoder_fraction:.1%} of the {u.latents:,} latents have a partner at "
        f"decoder cosine ≥ {u.threshold}; {u.both_fraction:.1%} at decoder and encoder cosine ≥ {u.threshold}"
    )


def pair_lines(result: CompareResult, pair: PairComparison) -> list[str]:
    m = pair.matching
    a, b = result.saes[pair.a], result.saes[pair.b]
    shared = ", ".join(f"≥{t}: {f:.1%}" for t, f in m.shared.items())
    lines = [
        f"{a} ({result.widths[pair.a]:,} latents) vs {b} ({result.widths[pair.b]:,} latents)",
        f"  best match by decoder cosine: mean {float(m.a_to_b.cosine.mean()):.3f} (A→B), "
        f"{float(m.b_to_a.cosine.mean()):.3f} (B→A)",
        assignment_line(pair),
        f"  shared (assigned partner's decoder cosine) {shared} of {len(m.assignment.cosine):,} latents",
        "  histogram of the assigned pairs' cosines:",
        *histogram_lines(m.histogram),
        correlation_line(pair),
        *families_lines(result, pair),
    ]
    line = universality_line(pair)
    return lines + ([line] if line else [])


def render_comparison(result: CompareResult) -> str:
    lines: list[str] = []
    for pair in result.pairs:
        lines += [*pair_lines(result, pair), ""]
    sampled = " (a sample of the larger SAEs)" if any(result.map.sampled) else ""
    lines.append(f"joint map: {result.map.method} of {len(result.map.x):,} decoder directions{sampled}")
    lines.append(f"written: {result.out} ({result.seconds:.1f} s)")
    return "\n".join(lines)


__all__ = ["render_comparison"]
