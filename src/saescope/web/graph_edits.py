"""Latents of an attribution graph ablated or steered in the real model: the logits at the prompt's
last position before and after.

    edits = plan_edits(document, [("1_17_4", 0.0)])          # checked on the request's thread
    found = run_edits(models, document, edits, top=10)       # on the model worker's thread

Each edit multiplies one latent node's activation, at its layer and position, by a factor (0
ablates it, 2 doubles it): the difference, (factor − 1) × activation × the latent's decoder row,
is added where its dictionary writes — a transcoder's layer's MLP output, a residual SAE's own
hookpoint — as `saescope.circuit.validation` measures a node's ablation; everything else runs as
the model computes it (nothing frozen: downstream latents change as the real model makes them).
The graph's recorded logits are compared with the model loaded here (`graph_gap`), so a page can
say when it runs another model than the graph's.

Models and dictionaries are loaded once (`GraphModels`) and used only on the worker's thread.

This module knows nothing about HTTP or HTML.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..config import model_of
from ..config.serve import ServeConfig
from ..errors import SaescopeError
from ..hookpoints import Hookpoint, output_of, resolve_hookpoints
from ..hooks import adding, patch_activations
from ..models import LoadedModel, load_model
from ..render.graph_gather import dictionary_layers, nodes_by_id
from ..sae.formats import load_sae
from ..sae.transcoder import Transcoder
from ..tokens import decode_each

MAX_FACTOR = 100.0
"""The largest |factor| an edit takes (beyond it the model's output says nothing about the graph)."""


class NodeEdit(NamedTuple):
    """One latent node scaled."""

    node: str
    """Its id."""
    layer: int
    """Its layer."""
    position: int
    """Its token position."""
    latent: int
    """Its latent."""
    value: float
    """Its activation on the prompt (the graph's)."""
    factor: float
    """What the activation is multiplied by (0: ablated)."""


class LogitChange(NamedTuple):
    """One token's logit at the last position, before and after the edit."""

    token: str
    """The token."""
    id: int
    """Its id."""
    old_logit: float
    """Its logit, unedited."""
    new_logit: float
    """Its logit, edited."""
    old_probability: float
    """Its probability, unedited."""
    new_probability: float
    """Its probability, edited."""


class TopToken(NamedTuple):
    """One of the most likely next tokens."""

    token: str
    """The token."""
    id: int
    """Its id."""
    logit: float
    """Its logit."""
    probability: float
    """Its probability."""


class EditResult(NamedTuple):
    """The model's next-token logits with a graph's latents edited, beside the unedited ones."""

    edits: tuple[NodeEdit, ...]
    """The edits made."""
    logits: tuple[LogitChange, ...]
    """The graph's output logits (the target first), before and after."""
    old_top: tuple[TopToken, ...]
    """The most likely tokens unedited."""
    new_top: tuple[TopToken, ...]
    """The most likely tokens edited."""
    kl: float
    """KL(unedited ‖ edited) of the next-token distributions (nats)."""
    mean_shift: float
    """Change of the mean logit over the vocabulary (the graph reads a logit minus the mean: a
    node's measured effect in the graph's validation is a logit's change minus this)."""
    graph_gap: float
    """Largest relative difference between the graph's recorded logits (minus the mean logit) and
    the model's here, unedited (0 when the graph is this model's)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "edits": [e._asdict() for e in self.edits],
            "logits": [r._asdict() for r in self.logits],
            "old_top": [t._asdict() for t in self.old_top],
            "new_top": [t._asdict() for t in self.new_top],
            "kl": self.kl,
            "mean_shift": self.mean_shift,
            "graph_gap": self.graph_gap,
        }


def _factor(node: str, factor: float) -> float:
    if not math.isfinite(factor) or abs(factor) > MAX_FACTOR:
        raise SaescopeError(f"the factor of node {node!r} is {factor}: give a number within ±{MAX_FACTOR:g}")
    return float(factor)


def plan_edits(document: Mapping[str, Any], requested: Sequence[tuple[str, float]]) -> tuple[NodeEdit, ...]:
    """The edits of `requested` (node id, factor), checked: each a latent node of the graph, once."""
    if not requested:
        raise SaescopeError("no nodes to edit: select at least one latent node")
    nodes = nodes_by_id(document)
    edits, seen = [], set()
    for node_id, factor in requested:
        node = nodes.get(node_id)
        if node is None:
            raise SaescopeError(f"node {node_id!r} is not in this graph")
        if node["kind"] != "latent":
            raise SaescopeError(
                f"node {node_id!r} is not a latent ({node['kind']}): only latents can be ablated or steered"
            )
        if node_id in seen:
            raise SaescopeError(f"node {node_id!r} is given twice")
        seen.add(node_id)
        edits.append(
            NodeEdit(
                node_id,
                int(node["layer"]),
                int(node["position"]),
                int(node["feature"]),
                float(node["value"]),
                _factor(node_id, factor),
            )
        )
    return tuple(edits)


class GraphModels:
    """The models and dictionaries graphs were built from, loaded on first use (on the worker thread)."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self._models: dict[str, LoadedModel] = {}
        self._dictionaries: dict[Path, Any] = {}

    def model(self, name: str) -> LoadedModel:
        """The language model `name` (as the graph records it)."""
        if name not in self._models:
            self._models[name] = load_model(model_of(self.cfg, model=name))
        return self._models[name]

    def dictionary(self, folder: Path, loaded: LoadedModel) -> Any:
        """The SAE or transcoder in `folder`, on the model's device."""
        key = folder.resolve()
        if key not in self._dictionaries:
            self._dictionaries[key] = load_sae(folder, device=loaded.device)
        return self._dictionaries[key]


def write_site(loaded: LoadedModel, dictionary: Any) -> Hookpoint:
    """Where a dictionary's latents write: a transcoder's MLP output, a residual SAE's hookpoint."""
    (point,) = resolve_hookpoints(loaded.model, [dictionary.cfg.hookpoint])
    return output_of(loaded.model, point) if isinstance(dictionary, Transcoder) else point


def edit_deltas(
    models: GraphModels, loaded: LoadedModel, document: Mapping[str, Any], edits: Sequence[NodeEdit]
) -> dict[str, Tensor]:
    """Site → [1, positions, d] what the edits add there."""
    folders = dictionary_layers(document)
    n_positions = len(document["token_ids"])
    deltas: dict[str, Tensor] = {}
    for edit in edits:
        folder = folders.get(edit.layer)
        if folder is None:
            raise SaescopeError(
                f"node {edit.node!r}: the graph's dictionary of layer {edit.layer} is not a folder here"
            )
        dictionary = models.dictionary(folder, loaded)
        site = write_site(loaded, dictionary).name
        row = dictionary.W_dec[edit.latent].detach().float()
        if site not in deltas:
            deltas[site] = torch.zeros(1, n_positions, row.shape[-1], device=row.device)
        deltas[site][0, edit.position] += (edit.factor - 1.0) * edit.value * row
    return deltas


@torch.no_grad()
def last_logits(loaded: LoadedModel, token_ids: Sequence[int], deltas: Mapping[str, Tensor]) -> Tensor:
    """[vocab] the model's logits at the last position, `deltas` added at their sites."""
    ids = torch.tensor([list(token_ids)], device=loaded.device)
    with contextlib.ExitStack() as stack:
        for site, delta in deltas.items():
            stack.enter_context(patch_activations(loaded.model, site, adding(delta)))
        out = loaded.model(input_ids=ids, use_cache=False)
    return out.logits[0, -1].float().cpu()


def _top(tokenizer: Any, logits: Tensor, probabilities: Tensor, n: int) -> tuple[TopToken, ...]:
    ids = torch.argsort(logits, descending=True)[:n].tolist()
    texts = decode_each(tokenizer, ids)
    return tuple(TopToken(t, i, float(logits[i]), float(probabilities[i])) for t, i in zip(texts, ids))


def graph_gap(document: Mapping[str, Any], logits: Tensor) -> float:
    """Largest relative difference of the graph's logit values (minus the mean) from `logits`."""
    mean = float(logits.mean())
    gaps = [
        abs(float(logits[int(n["feature"])]) - mean - float(n["value"])) / max(abs(float(n["value"])), 1e-6)
        for n in document.get("nodes", [])
        if n.get("kind") == "logit"
    ]
    return max(gaps, default=0.0)


def run_edits(
    models: GraphModels, document: Mapping[str, Any], edits: Sequence[NodeEdit], top: int
) -> EditResult:
    """The logits before and after `edits` (module docstring); runs on the model worker's thread."""
    loaded = models.model(str(document["model"]))
    token_ids = [int(i) for i in document["token_ids"]]
    old = last_logits(loaded, token_ids, {})
    new = last_logits(loaded, token_ids, edit_deltas(models, loaded, document, edits))
    old_p, new_p = torch.softmax(old, dim=-1), torch.softmax(new, dim=-1)
    kl = float((old_p * (torch.log_softmax(old, dim=-1) - torch.log_softmax(new, dim=-1))).sum())
    logit_ids = [int(n["feature"]) for n in document.get("nodes", []) if n.get("kind") == "logit"]
    texts = decode_each(loaded.tokenizer, logit_ids)
    changes = tuple(
        LogitChange(t, i, float(old[i]), float(new[i]), float(old_p[i]), float(new_p[i]))
        for t, i in zip(texts, logit_ids)
    )
    return EditResult(
        tuple(edits),
        changes,
        _top(loaded.tokenizer, old, old_p, top),
        _top(loaded.tokenizer, new, new_p, top),
        kl,
        float(new.mean() - old.mean()),
        graph_gap(document, old),
    )


__all__ = [
    "MAX_FACTOR",
    "EditResult",
    "GraphModels",
    "LogitChange",
    "NodeEdit",
    "TopToken",
    "edit_deltas",
    "graph_gap",
    "last_logits",
    "plan_edits",
    "run_edits",
    "write_site",
]
