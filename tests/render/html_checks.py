"""What escaping guarantees, checked on rendered HTML with the standard library's HTML parser.

`unsafe_markup(html)` lists every element or attribute that a page's own templates never write
but an unescaped corpus or model string would create: `<script>` elements other than our JSON
and script files, `<img>` elements other than the run's plots, elements we never write (`<b>`…),
and event-handler attributes (`on…=`).

This module knows nothing about saescope.
"""

from __future__ import annotations

from html.parser import HTMLParser

OUR_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "link",
    "body",
    "header",
    "main",
    "nav",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "section",
    "div",
    "span",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "ol",
    "ul",
    "li",
    "figure",
    "figcaption",
    "svg",
    "rect",
    "text",
    "circle",
    "input",
    "label",
    "button",
    "form",
    "select",
    "option",
    "img",
    "script",
    "br",
    "textarea",
}
"""Every element our templates write (img only for the run's plots, script only as below)."""


class Collector(HTMLParser):
    """Collects what would be unsafe (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag not in OUR_TAGS:
            self.found.append(f"<{tag}>")
        if tag == "img" and not (names.get("src") or "").startswith("/run/images/"):
            self.found.append(f"<img src={names.get('src')!r}>")
        if tag == "script" and names.get("type") != "application/json" and not names.get("src"):
            self.found.append("<script> with inline code")
        self.found += [f"{tag} {k}=" for k, _ in attrs if k.startswith("on")]


def unsafe_markup(html: str) -> list[str]:
    """The unsafe elements and attributes in `html` ([] when it is safe)."""
    parser = Collector()
    parser.feed(html)
    parser.close()
    return parser.found


def script_texts(html: str) -> dict[str, str]:
    """The text of every `<script type="application/json" id=…>` element, by id."""

    class Scripts(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=False)
            self.current: str | None = None
            self.texts: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = dict(attrs)
            if tag == "script" and names.get("type") == "application/json":
                self.current = names.get("id") or ""
                self.texts[self.current] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "script":
                self.current = None

        def handle_data(self, data: str) -> None:
            if self.current is not None:
                self.texts[self.current] += data

    parser = Scripts()
    parser.feed(html)
    return parser.texts
