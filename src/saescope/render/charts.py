"""Inline SVG charts: a latent's activation histogram, the 2-D latent map, and for comparisons of
SAEs the sparsity/fidelity frontier, a cosine histogram and the joint map coloured by SAE.

Inline SVG rather than plotted images: a dashboard of thousands of latents renders each
histogram in microseconds (a matplotlib figure per page would take most of the time budget), the
page stays one file that opens without a server, and each bar or point carries its numbers on
hover (`<title>`). Numbers are the only data written into the SVG; labels are escaped.

This module knows nothing about latent indexes or pages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from .views import Histogram

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
"""Cluster colours of the latent map (Tableau 10), reused in turn beyond ten clusters."""


def histogram_svg(
    histogram: Histogram, width: int = 420, height: int = 140, log: bool = True, label: str = "activation"
) -> Markup:
    """Bars of `histogram` with its range on the x axis (named `label`); heights on a log scale by
    default (a latent's density falls by orders of magnitude from weak to strong activations)."""
    counts, edges = histogram.counts, histogram.edges
    if len(edges) != len(counts) + 1:
        raise ValueError(f"{len(counts)} bins need {len(counts) + 1} edges, got {len(edges)}")
    pad, axis = 4, 16
    plot_h = height - axis - pad
    top = max(counts, default=0)
    scale = math.log1p(top) if log else top
    bar_w = (width - 2 * pad) / max(len(counts), 1)
    parts = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)} histogram">'
    ]
    for i, count in enumerate(counts):
        value = math.log1p(count) if log else count
        h = plot_h * value / scale if scale > 0 else 0.0
        x = pad + i * bar_w
        parts.append(
            f'<rect x="{x:.1f}" y="{pad + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>{edges[i]:.3g}–{edges[i + 1]:.3g}: {count}</title></rect>"
        )
    y = height - 4
    parts.append(f'<text x="{pad}" y="{y}">{edges[0]:.3g}</text>')
    parts.append(f'<text x="{width - pad}" y="{y}" text-anchor="end">{edges[-1]:.3g}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{y}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def map_svg(
    latents: Sequence[int],
    xs: Sequence[float],
    ys: Sequence[float],
    clusters: Sequence[int],
    href: str,
    labels: dict[int, str] | None = None,
    size: int = 560,
) -> Markup:
    """The latent map: a point per latent at (x, y), coloured by cluster, linking to `href` with
    `{}` replaced by the latent id; hovering shows the id and its label (explanation)."""
    if not (len(latents) == len(xs) == len(ys) == len(clusters)):
        raise ValueError("latents, xs, ys and clusters must have the same length")
    labels = labels or {}
    pad = 8
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    span = max(x_hi - x_lo, y_hi - y_lo, 1e-12)
    parts = [
        f'<svg class="map" viewBox="0 0 {size} {size}" width="{size}" height="{size}" '
        'role="img" aria-label="latent map">'
    ]
    for latent, x, y, cluster in zip(latents, xs, ys, clusters):
        px = pad + (x - x_lo) / span * (size - 2 * pad)
        py = size - pad - (y - y_lo) / span * (size - 2 * pad)
        colour = PALETTE[int(cluster) % len(PALETTE)] if cluster >= 0 else "#999"
        label = labels.get(int(latent), "")
        title = f"latent {int(latent)}" + (f": {label}" if label else "")
        parts.append(
            f'<a href="{escape(href.format(int(latent)))}"><circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" '
            f'fill="{colour}"><title>{escape(title)}</title></circle></a>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def scaled(values: Sequence[float], low: float, high: float) -> list[float]:
    """`values` mapped from their range onto [low, high] (the middle when they are all equal)."""
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    span = hi - lo
    return [(low + high) / 2 if span <= 0 else low + (v - lo) / span * (high - low) for v in values]


def frontier_svg(
    labels: Sequence[str], l0: Sequence[float], fvu: Sequence[float], width: int = 480, height: int = 260
) -> Markup:
    """L0 against FVU, a labelled point per SAE (lower left is better); the axes' ranges are the
    points' own, written at their ends."""
    if not (len(labels) == len(l0) == len(fvu)):
        raise ValueError("labels, l0 and fvu must have the same length")
    pad, axis = 30, 24
    xs = scaled(l0, pad, width - pad)
    ys = [height - v for v in scaled(fvu, axis + 10, height - 10)]
    parts = [
        f'<svg class="frontier" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="L0 against FVU">'
    ]
    for i, (label, x, y, a, b) in enumerate(zip(labels, xs, ys, l0, fvu)):
        colour = PALETTE[i % len(PALETTE)]
        title = escape(f"{label}: L0 {a:.1f}, FVU {b:.4f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}"><title>{title}</title></circle>'
        )
        parts.append(f'<text x="{x + 7:.1f}" y="{y + 4:.1f}">{escape(label)}</text>')
    if l0:
        parts.append(f'<text x="{pad}" y="{height - 4}">L0 {min(l0):.1f}</text>')
        parts.append(f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">L0 {max(l0):.1f}</text>')
        parts.append(f'<text x="2" y="12">FVU {max(fvu):.4f}</text>')
        parts.append(f'<text x="2" y="{height - axis}">FVU {min(fvu):.4f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def joint_map_svg(
    xs: Sequence[float], ys: Sequence[float], groups: Sequence[int], names: Sequence[str], size: int = 480
) -> Markup:
    """Points coloured by the SAE they belong to (`groups[i]` indexes `names`), with a legend."""
    if not (len(xs) == len(ys) == len(groups)):
        raise ValueError("xs, ys and groups must have the same length")
    pad = 8
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    span = max(x_hi - x_lo, y_hi - y_lo, 1e-12)
    legend = 16 * len(names)
    parts = [
        f'<svg class="map" viewBox="0 0 {size} {size + legend}" width="{size}" height="{size + legend}" '
        'role="img" aria-label="joint map of decoder directions">'
    ]
    for x, y, group in zip(xs, ys, groups):
        px = pad + (x - x_lo) / span * (size - 2 * pad)
        py = size - pad - (y - y_lo) / span * (size - 2 * pad)
        colour = PALETTE[int(group) % len(PALETTE)]
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{colour}" fill-opacity="0.6"/>')
    for i, name in enumerate(names):
        y = size + 12 + 16 * i
        parts.append(f'<circle cx="{pad + 4}" cy="{y - 4}" r="4" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{pad + 14}" y="{y}">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


__all__ = ["PALETTE", "frontier_svg", "histogram_svg", "joint_map_svg", "map_svg"]
