"""Feature pages and their pieces as HTML, from the values of `render.views`.

One Jinja2 environment with autoescaping on for every template, so every string that comes from a
corpus, a model or an explanation is escaped wherever a template prints it; the few pieces built
in Python (`tokens.highlight`, `charts`) escape their own text. `Links` says where a page's links
point, so the same templates serve static pages on disk (relative links, `file://`) and the web
server (absolute routes). The web server adds its own templates with `environment(extra)`. A
comparison of SAEs (`render.comparison`) has its page too: the families tree, in the dashboard and
the server.

This module knows nothing about latent indexes, files or the web server.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..example import Example
from .charts import frontier_svg, histogram_svg, joint_map_svg, map_svg
from .comparison import ComparisonView
from .embed import json_script_tag, script_json
from .tokens import highlight, visible
from .views import LatentRow, LatentView, QuantileGroup, Related

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
"""The CSS and JavaScript every page links (copied beside static dashboards, served by the server)."""


class Links(NamedTuple):
    """Where a page's links point."""

    latent: str
    """A latent's page, `{}` standing for its id (e.g. `{}.html` or `/latents/{}`)."""
    latents: str
    """The list of latents."""
    assets: str
    """The folder holding `saescope.css` and the scripts."""
    home: str
    """The brand link (the list of latents, or the server's overview)."""


STATIC_INDEX_LINKS = Links(latent="latents/{}.html", latents="index.html", assets="assets", home="index.html")
"""Links of a static dashboard's index page (at its root)."""
STATIC_LATENT_LINKS = Links(
    latent="{}.html", latents="../index.html", assets="../assets", home="../index.html"
)
"""Links of a static dashboard's latent pages (in `latents/`)."""


@functools.lru_cache(maxsize=4)
def environment(*extra: Path) -> Environment:
    """The template environment (autoescaped, strict about undefined names), over the templates of
    `extra` folders first and then ours."""
    loader = ChoiceLoader([FileSystemLoader([str(p) for p in extra]), FileSystemLoader(str(TEMPLATES))])
    env = Environment(loader=loader, autoescape=True, undefined=StrictUndefined, trim_blocks=False)
    env.globals.update(
        highlight=highlight,
        visible=visible,
        histogram_svg=histogram_svg,
        map_svg=map_svg,
        frontier_svg=frontier_svg,
        joint_map_svg=joint_map_svg,
        json_script_tag=json_script_tag,
        script_json=script_json,
    )
    return env


def render(template: str, env: Environment | None = None, **context: Any) -> str:
    """Render one template with `context`."""
    return (env or environment()).get_template(template).render(**context)


def latent_page(view: LatentView, links: Links = STATIC_LATENT_LINKS) -> str:
    """A whole latent page (static dashboards)."""
    return render("latent.html", view=view, links=links)


def latent_body(view: LatentView, links: Links) -> Markup:
    """A latent page's content without the page around it (the server wraps it in its own page)."""
    return Markup(render("latent_body.html", view=view, links=links))


def latents_page(
    rows: Sequence[LatentRow],
    title: str,
    subtitle: str = "",
    links: Links = STATIC_INDEX_LINKS,
    nav: Sequence[tuple[str, str]] = (),
) -> str:
    """The sortable, searchable list of latents (rows embedded as JSON, drawn by `latents.js`);
    `nav`: more (href, name) links in the page's header (a dashboard's comparison page)."""
    return render(
        "latents.html",
        rows=[r.to_json() for r in rows],
        title=title,
        subtitle=subtitle,
        links=links,
        nav=list(nav),
    )


def families_body(view: ComparisonView, links: Links, title: str = "SAEs compared") -> Markup:
    """A comparison's content (pairs, families trees, joint map) without the page around it."""
    return Markup(render("families_body.html", view=view, links=links, title=title))


def families_page(
    view: ComparisonView, links: Links = STATIC_INDEX_LINKS, title: str = "SAEs compared"
) -> str:
    """A whole comparison page (static dashboards: at the dashboard's root, beside index.html,
    its header linking back to the list of latents)."""
    return render("families.html", view=view, links=links, title=title)


def _macro(name: str) -> Any:
    return getattr(environment().get_template("macros.html").module, name)


def examples_fragment(examples: Sequence[Example], scale: float, start: int = 0) -> Markup:
    """A numbered list of examples (numbering from `start` + 1), as on a latent page."""
    return Markup(_macro("examples")(list(examples), scale, start))


def quantile_fragment(group: QuantileGroup, scale: float) -> Markup:
    """One quantile's examples with their heading."""
    return Markup(_macro("quantile_group")(group, scale))


def related_fragment(items: Sequence[Related], links: Links, what: str) -> Markup:
    """A table of related latents (neighbours or co-occurring) linking to their pages."""
    return Markup(_macro("related")(list(items), links, what))


__all__ = [
    "STATIC",
    "STATIC_INDEX_LINKS",
    "STATIC_LATENT_LINKS",
    "TEMPLATES",
    "Links",
    "environment",
    "examples_fragment",
    "families_body",
    "families_page",
    "latent_body",
    "latent_page",
    "latents_page",
    "quantile_fragment",
    "related_fragment",
    "render",
]
