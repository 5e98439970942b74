"""Inline SVG charts: bar heights and point positions computed exactly, labels escaped."""

from __future__ import annotations

import math
import re

import pytest

from saescope.render import Histogram, histogram_svg, map_svg

from .html_checks import unsafe_markup


def bars(svg: str) -> list[tuple[float, float, str]]:
    """(y, height, title) of every bar."""
    found = re.findall(
        r'<rect x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"><title>([^<]*)</title>', svg
    )
    return [(float(y), float(h), t) for y, h, t in found]


def test_histogram_bar_heights_linear_and_log() -> None:
    hist = Histogram((0.0, 1.0, 2.0, 3.0), (0, 5, 10))
    plot_h = 140 - 16 - 4  # the height the bars share (see histogram_svg)
    linear = bars(histogram_svg(hist, log=False))
    assert [h for _, h, _ in linear] == [0.0, pytest.approx(plot_h / 2, abs=0.05), float(plot_h)]
    logged = bars(histogram_svg(hist, log=True))
    assert logged[1][1] == pytest.approx(plot_h * math.log1p(5) / math.log1p(10), abs=0.05)
    assert [t for _, _, t in linear] == ["0–1: 0", "1–2: 5", "2–3: 10"]
    assert all(y + h == pytest.approx(4 + plot_h, abs=0.1) for y, h, _ in linear)  # bars stand on one line


def test_histogram_refuses_wrong_edges() -> None:
    with pytest.raises(ValueError, match="3 bins need 4 edges"):
        histogram_svg(Histogram((0.0, 1.0), (1, 2, 3)))


def test_map_places_points_in_the_box_and_escapes_labels() -> None:
    svg = str(
        map_svg(
            [0, 1, 2],
            [0.0, 1.0, 0.5],
            [0.0, 1.0, 0.25],
            [0, 1, -1],
            "/latents/{}",
            {1: '<b>x</b> & "y"'},
            size=100,
        )
    )
    points = [(float(x), float(y)) for x, y in re.findall(r'cx="([^"]+)" cy="([^"]+)"', svg)]
    assert points == [(8.0, 92.0), (92.0, 8.0), (50.0, 71.0)]  # y grows upwards, 8-pixel margin
    assert '<a href="/latents/1">' in svg
    assert "<title>latent 1: &lt;b&gt;x&lt;/b&gt; &amp; &#34;y&#34;</title>" in svg
    assert 'fill="#999"' in svg  # no cluster
    assert unsafe_markup(svg) == []


def test_map_refuses_ragged_columns() -> None:
    with pytest.raises(ValueError, match="same length"):
        map_svg([0, 1], [0.0], [0.0], [0], "{}")
