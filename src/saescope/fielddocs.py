"""The docstrings under the fields of a dataclass or NamedTuple, read from its source.

saescope documents every field with a string literal under it; the command line turns a config's
into `--help`, and the web server's JSON schema (OpenAPI) describes its responses with a result
type's, so each field is documented in exactly one place.

This module knows nothing about argparse or HTTP.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap


def _documented(klass: type) -> bool:
    return dataclasses.is_dataclass(klass) or (issubclass(klass, tuple) and hasattr(klass, "_fields"))


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of `cls` and its bases, whitespace folded (fields of a
    base overridden by a subclass take the subclass's text)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not _documented(klass) or klass is tuple:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


__all__ = ["field_docs"]
