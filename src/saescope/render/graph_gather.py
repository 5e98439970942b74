"""The views of `render.graph` from a run's attribution graphs (`saescope circuit`'s files) and
from the latent indexes of the dictionaries they were built from.

    names = graph_names(Run(root).circuits)               # saved graphs, by name
    document = read_graph(Run(root).circuits, names[0])   # its NAME.json, checked
    indexes = DictionaryIndexes()                          # one per server or dashboard
    detail = indexes.detail(document, "1_17_4")           # explanation + top examples of a latent

A name is only ever looked up among the graphs the folder lists (`graph_names`): a name from a
request never becomes a path on its own. A logit's token comes from the graph's nodes (`token`)
when the file records it, else from circuit-tracer's file beside it (its `clerp`,
`Output "TOKEN" (p=…)`). A latent's examples come from the index of its layer's dictionary when one
indexes it (`saescope.index.locate.index_of_sae`); without one the detail says so.

This module knows nothing about HTML, models or the web server.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..circuit.formats import FORMAT
from ..errors import SaescopeError
from ..files import read_json
from ..index.locate import index_of_sae
from ..index.reader import Index
from ..runs import GRAPH_SUFFIXES, SAE_CONFIG, graph_files
from ..sae.formats import load_sae
from ..sae.transcoder import layer_of_hookpoint
from .graph import GraphRow, NodeDetail, graph_row, nodes_by_id

log = logging.getLogger(__name__)

DETAIL_EXAMPLES = 5
"""Top examples a node's detail shows."""
_CLERP = re.compile(r'^Output "(.*)" \(p=[^)]*\)$', re.DOTALL)


def graph_names(circuits: Path) -> list[str]:
    """The graphs saved in a circuits folder (each `NAME.json` beside its `NAME.safetensors`), sorted."""
    json_suffix, matrices_suffix = GRAPH_SUFFIXES[0], GRAPH_SUFFIXES[1]
    if not circuits.is_dir():
        return []
    return sorted(
        p.name[: -len(matrices_suffix)]
        for p in circuits.glob(f"*{matrices_suffix}")
        if p.with_name(p.name[: -len(matrices_suffix)] + json_suffix).is_file()
    )


def read_graph(circuits: Path, name: str) -> dict[str, Any]:
    """A saved graph's document (`NAME.json`), by a name `graph_names` lists; one line when there
    is no such graph or its file is not a saescope graph."""
    if name not in graph_names(circuits):
        raise SaescopeError(
            f"no attribution graph named {name!r} in {circuits} (saescope circuit makes them)"
        )
    path = graph_files(circuits, name)[0]
    document = read_json(path)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SaescopeError(f"{path} is not a saescope attribution graph (format {FORMAT!r})")
    return document


def logit_tokens(circuits: Path, name: str) -> dict[str, str]:
    """A graph's logit node ids → their tokens, from circuit-tracer's file beside it ({} without one)."""
    path = graph_files(circuits, name)[2]
    try:
        tracer = read_json(path) if path.is_file() else {}
    except SaescopeError as e:
        log.warning("no logit tokens from %s: %s", path, e)
        return {}
    out = {}
    for node in tracer.get("nodes", []) if isinstance(tracer, dict) else []:
        found = _CLERP.match(str(node.get("clerp", ""))) if node.get("feature_type") == "logit" else None
        if found:
            out[str(node.get("node_id"))] = found.group(1)
    return out


def graph_rows(circuits: Path) -> list[GraphRow]:
    """Every saved graph's row (a graph whose file cannot be read is left out, with a warning)."""
    rows = []
    for name in graph_names(circuits):
        try:
            rows.append(graph_row(read_graph(circuits, name), name, logit_tokens(circuits, name)))
        except (SaescopeError, KeyError, TypeError, ValueError) as e:
            log.warning("leaving out graph %s: %s", name, e)
    return rows


def dictionary_layers(document: Mapping[str, Any]) -> dict[int, Path]:
    """The graph's dictionary folder of each layer (from their `cfg.json` hookpoints); dictionaries
    that are not folders here are left out."""
    out: dict[int, Path] = {}
    for entry in document.get("dictionaries", []):
        folder = Path(str(entry))
        if not (folder / SAE_CONFIG).is_file():
            continue
        cfg = read_json(folder / SAE_CONFIG)
        layer = layer_of_hookpoint(str(cfg.get("hookpoint_alias") or cfg.get("hookpoint") or ""))
        out[layer if layer is not None else 0] = folder
    return out


class DictionaryIndexes:
    """The latent index of each dictionary folder, found once and kept open (thread-safe)."""

    def __init__(self) -> None:
        self._found: dict[Path, Index | None] = {}
        self._lock = threading.Lock()

    def _index(self, folder: Path) -> Index | None:
        key = folder.resolve()
        if key not in self._found:
            try:
                path = index_of_sae(load_sae(folder).file_tensors(), folder)
                self._found[key] = Index(path) if path is not None else None
            except SaescopeError as e:
                log.warning("no index for %s: %s", folder, e)
                self._found[key] = None
        return self._found[key]

    def detail(self, document: Mapping[str, Any], node_id: str, n: int = DETAIL_EXAMPLES) -> NodeDetail:
        """A latent node's explanation and top examples; one line for a node the graph lacks."""
        node = nodes_by_id(document).get(node_id)
        if node is None:
            raise SaescopeError(f"node {node_id!r} is not in this graph")
        explanation = str(node.get("explanation") or "")
        if node.get("kind") != "latent":
            return NodeDetail(node_id, explanation, (), 0.0, f"{node.get('kind')} nodes have no examples")
        folder = dictionary_layers(document).get(int(node["layer"]))
        if folder is None:
            return NodeDetail(
                node_id, explanation, (), 0.0, "its dictionary is not a folder here: no examples"
            )
        latent = int(node["feature"])
        with self._lock:
            index = self._index(folder)
            if index is None:
                return NodeDetail(
                    node_id, explanation, (), 0.0, f"no latent index of {folder} (saescope index makes one)"
                )
            examples = tuple(index.top_examples(latent, n))
            scale = float(index.stats_of(latent)["max"])
        note = "" if examples else "it never fired on the indexed text"
        return NodeDetail(node_id, explanation, examples, scale, note)

    def details(self, document: Mapping[str, Any], n: int = DETAIL_EXAMPLES) -> dict[str, NodeDetail]:
        """Every kept latent node's detail (a static page carries them all)."""
        return {
            str(x["id"]): self.detail(document, str(x["id"]), n)
            for x in document.get("nodes", [])
            if x.get("kept") and x.get("kind") == "latent"
        }


__all__ = [
    "DETAIL_EXAMPLES",
    "DictionaryIndexes",
    "dictionary_layers",
    "graph_names",
    "graph_rows",
    "logit_tokens",
    "read_graph",
]
