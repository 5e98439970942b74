"""Inline SVG charts: a latent's activation histogram and the 2-D latent map.

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


def histogram_svg(histogram: Histogram, width: int = 420, height: int = 140, log: bool = True) -> Markup:
    """Bars of `histogram` with the activation range on the x axis; heights on a log scale by
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
        'role="img" aria-label="activation histogram">'
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
    parts.append(f'<text x="{width / 2:.0f}" y="{y}" text-anchor="middle">activation</text>')
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


__all__ = ["PALETTE", "histogram_svg", "map_svg"]
