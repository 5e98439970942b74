"""JSON embedded in an HTML page, safe inside `<script>`.

Inside a `<script>` element the HTML parser ends the script at the first `</script` and treats
`<!--` specially, whatever the JavaScript means; and U+2028/U+2029 end a line in older
JavaScript. So every `<`, `>` and `&` is written as a `\\u003c`-style escape (JSON reads them back
unchanged), as are U+2028 and U+2029. The result goes in `<script type="application/json">` and
is read with `JSON.parse(element.textContent)`: it is never evaluated as code.

This module knows nothing about what the data is.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from ..files import json_safe

_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(obj: Any) -> Markup:
    """`obj` (through `json_safe`) as JSON text that cannot end or confuse a `<script>` element."""
    text = json.dumps(json_safe(obj), ensure_ascii=False, separators=(",", ":"))
    return Markup(text.translate(_SCRIPT_ESCAPES))


def json_script_tag(element_id: str, obj: Any) -> Markup:
    """`<script type="application/json" id="…">` holding `obj` (see the module docstring)."""
    if not element_id.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"an element id of letters, digits, - and _ only, got {element_id!r}")
    return (
        Markup(f'<script type="application/json" id="{element_id}">') + script_json(obj) + Markup("</script>")
    )


__all__ = ["json_script_tag", "script_json"]
