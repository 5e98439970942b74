"""HTML of feature pages: pure functions from data to HTML, shared by static dashboards and the web server.

- `views`: what a page shows, as plain values (`LatentView`, `LatentRow`, …; examples are
  `saescope.example.Example` windows);
- `gather`: those views built from a latent index (imported on its own: it reads the index and
  the stored explanations, which the rendering functions never need);
- `tokens`: tokens shaded by activation, values on hover, whitespace made visible;
- `charts`: inline SVG activation histograms and the latent map (and, for comparisons of SAEs, the
  L0–FVU frontier, a cosine histogram and the joint map);
- `comparison`: a comparison of SAEs (`compare.json`) and the run's SAEs' evaluations as views
  (the families tree, the overview's table of SAEs);
- `embed`: JSON embedded in a page, safe inside `<script>`;
- `pages`: the Jinja2 environment (autoescaped) and the page and fragment functions;
- `templates/` and `static/`: the templates, the CSS and the scripts (no CDN: pages open offline).

Apart from `gather`, this package knows nothing about latent indexes, models, files or the web
server.
"""

from .charts import frontier_svg, histogram_svg, joint_map_svg, map_svg
from .comparison import ComparisonView, SAERowView, comparison_view, sae_row
from .embed import json_script_tag, script_json
from .pages import (
    STATIC,
    STATIC_INDEX_LINKS,
    STATIC_LATENT_LINKS,
    Links,
    environment,
    examples_fragment,
    families_body,
    families_page,
    latent_body,
    latent_page,
    latents_page,
    quantile_fragment,
    related_fragment,
    render,
)
from .tokens import highlight, visible
from .views import (
    ExplanationView,
    Histogram,
    LatentRow,
    LatentStatsView,
    LatentView,
    LogitEffect,
    QuantileGroup,
    Related,
    Scored,
)

__all__ = [
    "STATIC",
    "STATIC_INDEX_LINKS",
    "STATIC_LATENT_LINKS",
    "ComparisonView",
    "ExplanationView",
    "Histogram",
    "LatentRow",
    "LatentStatsView",
    "LatentView",
    "Links",
    "LogitEffect",
    "QuantileGroup",
    "Related",
    "SAERowView",
    "Scored",
    "comparison_view",
    "environment",
    "examples_fragment",
    "families_body",
    "families_page",
    "frontier_svg",
    "highlight",
    "histogram_svg",
    "joint_map_svg",
    "json_script_tag",
    "latent_body",
    "latent_page",
    "latents_page",
    "map_svg",
    "quantile_fragment",
    "related_fragment",
    "render",
    "sae_row",
    "script_json",
    "visible",
]
