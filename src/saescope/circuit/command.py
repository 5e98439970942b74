"""`saescope circuit`: build, prune, score and check the attribution graph of one prompt, and save it.

The dictionaries come from the run (its transcoder set, else its SAE) unless `--transcoders` or
`--saes` name others; transcoders give circuit-tracer's graph (`saescope.circuit.attribution`),
residual-stream SAEs a Sparse Feature Circuits graph (`saescope.circuit.sfc`). Every graph is
printed and saved with its scores and its check against the real model
(`saescope.circuit.validation`); transcoder graphs also split their largest kept edges between
positions over attention heads (`saescope.circuit.heads`). Explanations of latents come from a
dictionary's latent index when one indexes it.

This module knows nothing about the maths of the graphs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..bound import bind_sae, same_model
from ..config import model_of
from ..config.circuit import CircuitConfig
from ..errors import SaescopeError
from ..files import read_json
from ..index import read_explanations
from ..index.locate import index_of_sae
from ..models import LoadedModel, load_model, load_tokenizer
from ..runs import SAE_CONFIG, Run, graph_files, is_sae_folder
from ..sae.source import read_sae_config
from ..tokens import decode_each, encode, single_token
from .attribution import Built, GraphSettings, transcoder_graph
from .formats import (
    FORMAT,
    VERSION,
    add_to_graph_list,
    circuit_tracer_json,
    node_ids,
    save_matrices,
    shown,
    write_graph_json,
)
from .graph import AttributionGraph
from .heads import split_edge
from .prune import Pruned, Scores, graph_scores, prune
from .sfc import sfc_graph
from .validation import NOT_MEASURED, Validation, validate

log = logging.getLogger(__name__)

PREDICTED_UNITS = (
    "change of the target's logit minus the mean logit at the last position when the node is set to "
    "zero: predicted by the graph (linear, along every path), measured in the real model"
)


class HeadEdge(NamedTuple):
    """One kept edge between positions split over attention heads."""

    source: int
    """Source node index."""
    target: int
    """Target node index."""
    weight: float
    """The edge weight (the contributions' sum)."""
    contributions: list[tuple[int, int, float]]
    """(layer, head, part of the edge whose last position change is in that head), largest |part| first."""


class CircuitResult(NamedTuple):
    """What `saescope circuit` built, checked and wrote."""

    graph: AttributionGraph
    """The whole graph."""
    pruned: Pruned
    """What pruning keeps, and every node's influence."""
    scores: Scores
    """Replacement and completeness scores of the whole graph."""
    validation: Validation | None
    """The check against the real model (None with --validate 0)."""
    heads: list[HeadEdge]
    """Kept edges between positions split over heads (transcoder graphs)."""
    replacement_gap: float
    """Transcoder graphs: the replacement model's largest relative logit difference from the real
    model with every node at its value (NaN for Sparse Feature Circuits graphs, which run the real model)."""
    explanations: dict[tuple[int, int], str]
    """(layer, latent) → explanation, from the dictionaries' indexes."""
    files: tuple[Path, Path, Path]
    """saescope's JSON, the matrices, circuit-tracer's graph JSON."""
    settings: dict[str, Any]
    """The pruning and size settings used."""
    seconds: float
    """Wall time."""

    def node_json(self, index: int, ids: list[str]) -> dict[str, Any]:
        """One node of saescope's JSON; `ids` are every node's (`node_ids`)."""
        node = self.graph.nodes[index]
        out: dict[str, Any] = {
            "id": ids[index],
            "index": index,
            **node._asdict(),
            "influence": float(self.pruned.influence[index]),
            "cumulative_influence": float(self.pruned.cumulative[index]),
            "kept": bool(self.pruned.nodes[index]),
        }
        if node.kind == "logit":
            logits = self.graph.indices("logit").tolist()
            out["probability"] = float(self.graph.logit_probabilities[logits.index(index)])
            token = dict(zip(self.graph.logit_token_ids(), self.graph.logit_tokens)).get(node.feature)
            if token is not None:
                out["token"] = token
        explanation = self.explanations.get((node.layer, node.feature)) if node.kind == "latent" else None
        if explanation:
            out["explanation"] = explanation
        return out

    def to_json(self) -> dict[str, Any]:
        g = self.graph
        ids = node_ids(g)
        targets, sources = torch.nonzero(self.pruned.edges, as_tuple=True)
        validation: dict[str, Any] | None = None
        if self.validation is not None:
            v = self.validation
            validation = {
                "target": v.target,
                "units": PREDICTED_UNITS,
                "correlation": v.correlation,
                "correlation_note": "" if v.correlation is not None else NOT_MEASURED,
                "correlation_outside_position_0": v.correlation_outside_first,
                "correlation_outside_position_0_note": ""
                if v.correlation_outside_first is not None
                else NOT_MEASURED,
                "checks_outside_position_0": sum(c.position > 0 for c in v.checks),
                "checks": [{**c._asdict(), "node": ids[c.node], "index": c.node} for c in v.checks],
            }
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": g.method,
            "model": g.model,
            "prompt": g.prompt,
            "tokens": list(g.tokens),
            "token_ids": list(g.token_ids),
            "n_layers": g.n_layers,
            "dictionaries": list(g.dictionaries),
            "active_latents": g.active_latents,
            "settings": self.settings,
            "scores": {"replacement": self.scores.replacement, "completeness": self.scores.completeness},
            "replacement_gap": self.replacement_gap,
            "nodes": [self.node_json(i, ids) for i in range(len(g.nodes))],
            "edges": [
                {"source": ids[s], "target": ids[t], "weight": float(g.adjacency[t, s])}
                for t, s in zip(targets.tolist(), sources.tolist())
            ],
            "edges_total": int((g.adjacency != 0).sum()),
            "validation": validation,
            "heads": [
                {
                    "source": ids[h.source],
                    "target": ids[h.target],
                    "weight": h.weight,
                    "contributions": [{"layer": a, "head": b, "value": c} for a, b, c in h.contributions],
                }
                for h in self.heads
            ],
            "files": [str(f) for f in self.files],
            "seconds": self.seconds,
        }

    def render(self) -> str:
        g = self.graph
        logits = g.indices("logit").tolist()
        target = g.nodes[logits[0]]
        token = shown(_token_text(g, target.feature))
        kept_nodes, kept_edges = int(self.pruned.nodes.sum()), int(self.pruned.edges.sum())
        lines = [
            f"saescope circuit: {g.prompt!r} → {token!r} (p={float(g.logit_probabilities[0]):.3f}"
            f"{f', and {len(logits) - 1} more logits' if len(logits) > 1 else ''}) · {g.method}, "
            f"{len(g.dictionaries)} dictionaries · {self.seconds:.1f} s",
            f"graph: {len(g.nodes):,} nodes ({len(g.indices('latent')):,} of {g.active_latents:,} active "
            f"latents), {int((g.adjacency != 0).sum()):,} edges; pruned to {kept_nodes:,} nodes and "
            f"{kept_edges:,} edges (node threshold {self.settings['node_threshold']}, "
            f"edge threshold {self.settings['edge_threshold']})",
            f"replacement score {self.scores.replacement:.3f}, completeness {self.scores.completeness:.3f} "
            "(whole graph: influence through latents and tokens rather than error nodes)",
        ]
        if g.method == "transcoders":
            lines.append(
                f"replacement model reproduces the model's logits to {self.replacement_gap:.1e} (relative)"
            )
        lines += self._render_validation(token)
        for h in self.heads[:5]:
            parts = ", ".join(f"L{a}.H{b} {c:+.4f}" for a, b, c in h.contributions[:3])
            lines.append(
                f"heads of {self._label(h.source)} → {self._label(h.target)} ({h.weight:+.4f}): {parts}"
            )
        lines.append(f"wrote {self.files[0]} (+ {self.files[1].name}, {self.files[2].name})")
        return "\n".join(lines)

    def _label(self, index: int) -> str:
        node = self.graph.nodes[index]
        where = f"@{node.position} {self.graph.tokens[node.position]!r}"
        if node.kind == "latent":
            return f"L{node.layer}/{node.feature} {where}"
        if node.kind == "error":
            return f"error L{node.layer} {where}"
        if node.kind == "embedding":
            return f"embedding {where}"
        return f"logit {_token_text(self.graph, node.feature)!r}"

    def _render_validation(self, token: str) -> list[str]:
        v = self.validation
        if v is None:
            return ["validation: not measured (--validate 0)"]
        later = sum(c.position > 0 for c in v.checks)
        lines = [
            f"validation against the real model: ablating the {len(v.checks)} most influential nodes, "
            f"effect on logit {token!r} (minus the mean logit): {_pearson_text(v.correlation)}; "
            f"over the {later} outside position 0: {_pearson_text(v.correlation_outside_first)} "
            "(* marks position 0, BOS when the tokenizer has one: the attention sink, whose ablation "
            "is far from linear)",
            f"  {'node':<36}{'influence':>10}{'predicted':>11}{'measured':>11}",
        ]
        for c in v.checks[:10]:
            label = f"{'*' if c.position == 0 else ' '} {self._label(c.node)}"
            lines.append(f"  {label:<36}{c.influence:>10.4f}{c.predicted:>+11.4f}{c.measured:>+11.4f}")
        return lines


def _pearson_text(correlation: float | None) -> str:
    return f"Pearson r = {correlation:.3f}" if correlation is not None else f"correlation {NOT_MEASURED}"


def _token_text(graph: AttributionGraph, token_id: int) -> str:
    return dict(zip(graph.logit_token_ids(), graph.logit_tokens)).get(token_id, str(token_id))


def _slug(prompt: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-").lower()[:40] or "graph"
    return f"{words}-{hashlib.sha256(prompt.encode()).hexdigest()[:8]}"


class Dictionaries(NamedTuple):
    """What a graph is built from."""

    transcoders: Any
    """A `TranscoderSet`, or None."""
    saes: tuple[Path, ...]
    """Residual-stream SAE folders (when there are no transcoders)."""


def find_dictionaries(cfg: CircuitConfig) -> Dictionaries:
    """The transcoders or SAEs the graph reads (module docstring); one line when there are none."""
    from ..sae.transcoder import load_transcoder_set, transcoder_folders

    run = Run(cfg.run)
    if cfg.transcoders is not None:
        return Dictionaries(load_transcoder_set(cfg.transcoders), ())
    if cfg.saes:
        return Dictionaries(None, cfg.saes)
    if transcoder_folders(run.transcoders):
        return Dictionaries(load_transcoder_set(run.transcoders), ())
    if is_sae_folder(run.sae):
        return Dictionaries(None, (run.sae,))
    raise SaescopeError(
        f"{cfg.run} has no transcoders ({run.transcoders}) and no SAE ({run.sae}): train them "
        "(saescope train --arch transcoder --hookpoint 'mlp_in:*'), or pass --transcoders or --saes"
    )


def _check_transcoders(transcoders: Any, loaded: LoadedModel, cfg: CircuitConfig) -> None:
    config = loaded.model.config
    width, layers = int(config.hidden_size), int(config.num_hidden_layers)
    for layer, tc in zip(transcoders.layers, transcoders.transcoders):
        if not 0 <= layer < layers or tc.cfg.d_in != width or tc.d_out != width:
            raise SaescopeError(
                f"{transcoders.path}: the transcoder of layer {layer} ({tc.cfg.d_in} → {tc.d_out}) does not "
                f"fit {loaded.name} ({layers} layers of width {width}): they are transcoders of another "
                f"model (they record {transcoders.model!r})"
            )


def _prompt_tokens(cfg: CircuitConfig, tokenizer: Any) -> tuple[list[int], int | None]:
    ids = encode(tokenizer, cfg.prompt, prepend_bos=cfg.prepend_bos)
    if len(ids) > cfg.max_prompt_tokens:
        raise SaescopeError(
            f"the prompt is {len(ids)} tokens, more than --max-prompt-tokens {cfg.max_prompt_tokens}; "
            "shorten it or raise the limit"
        )
    target = single_token(tokenizer, cfg.target, "--target") if cfg.target is not None else None
    return ids, target


def _explanations(dictionaries: list[tuple[int, Any, Path]]) -> dict[tuple[int, int], str]:
    out: dict[tuple[int, int], str] = {}
    for layer, sae, path in dictionaries:
        try:
            found = index_of_sae(sae.file_tensors(), path)
        except SaescopeError:
            found = None
        if found is not None:
            out.update({(layer, latent): text for latent, text in read_explanations(found).items()})
    return out


def _build(cfg: CircuitConfig, found: Dictionaries) -> tuple[Built, LoadedModel, list[tuple[int, Any, Path]]]:
    settings = GraphSettings(cfg.max_logits, cfg.logit_probability, cfg.max_feature_nodes, cfg.batch_size)
    if found.transcoders is not None:
        tset = found.transcoders
        if cfg.model and tset.model and not same_model(cfg.model, tset.model) and not cfg.force:
            raise SaescopeError(
                f"{tset.path} was trained on {tset.model!r}, not {cfg.model!r}; pass --force to use it anyway"
            )
        settings_of_model = model_of(cfg, model=cfg.model or tset.model)
        ids, target = _prompt_tokens(cfg, load_tokenizer(settings_of_model))  # before the model loads
        loaded = load_model(settings_of_model)
        _check_transcoders(tset, loaded, cfg)
        by_layer = {layer: tc.to(loaded.device) for layer, tc in zip(tset.layers, tset.transcoders)}
        folders = _folders_of(tset)
        built = transcoder_graph(
            loaded,
            by_layer,
            ids,
            cfg.prompt,
            decode_each(loaded.tokenizer, ids),
            target,
            settings,
            [str(p) for p, _ in folders] or [str(tset.path)],
        )
        return built, loaded, [(tc.layer, tc, p) for p, tc in folders]
    recorded = cfg.model or read_sae_config(found.saes[0]).model
    checked = _prompt_tokens(cfg, load_tokenizer(model_of(cfg, model=recorded))) if recorded else None
    models: dict[str, LoadedModel] = {}
    bound = [
        bind_sae(p, model=cfg.model or None, force=cfg.force, settings=model_of(cfg), models=models)
        for p in found.saes
    ]
    loaded = bound[0].loaded_model
    ids, target = checked or _prompt_tokens(cfg, loaded.tokenizer)
    built = sfc_graph(
        loaded,
        [(b.sae, b.hookpoint) for b in bound],
        ids,
        cfg.prompt,
        decode_each(loaded.tokenizer, ids),
        target,
        cfg.max_logits,
        cfg.logit_probability,
        cfg.sfc_method,
        cfg.ig_steps,
        cfg.batch_size,
        [b.source or str(b.path) for b in bound],
    )
    return built, loaded, [(int(b.hookpoint.layer or 0), b.sae, b.path) for b in bound]


def _folders_of(tset: Any) -> list[tuple[Path, Any]]:
    """(folder, transcoder) of each layer of a set."""
    from ..sae.transcoder import transcoder_folders

    folders = {}
    for folder in transcoder_folders(tset.path):
        folders[folder.name] = folder
    by_hookpoint = {}
    for folder in folders.values():
        try:
            by_hookpoint[read_json(folder / SAE_CONFIG).get("hookpoint")] = folder
        except SaescopeError:
            continue
    return [(by_hookpoint.get(tc.cfg.hookpoint, tset.path), tc) for tc in tset.transcoders]


def split_heads(
    built: Built, pruned: Pruned, dictionaries: list[tuple[int, Any, Path]], top: int
) -> list[HeadEdge]:
    """The `top` kept edges between positions with the largest |weight|, split over heads."""
    model = built.replacement
    graph = built.graph
    if model is None or top == 0:
        return []
    targets, sources = torch.nonzero(pruned.edges, as_tuple=True)
    crossing = [
        (float(graph.adjacency[t, s].abs()), t, s)
        for t, s in zip(targets.tolist(), sources.tolist())
        if graph.nodes[t].position != graph.nodes[s].position
    ]
    by_layer = {layer: sae for layer, sae, _ in dictionaries}
    out: list[HeadEdge] = []
    mean_row = model.unembed.mean(dim=0)
    for _, t, s in sorted(crossing, reverse=True)[:top]:
        source, target = graph.nodes[s], graph.nodes[t]
        if target.kind == "logit":
            read = model.unembed[target.feature] - mean_row
        else:
            read = by_layer[target.layer].W_enc[:, target.feature].detach().float().cpu()
        split = split_edge(
            model,
            (source.layer, source.position, built.edits.vectors[s]),
            (target.layer, target.position, read),
            len(graph.token_ids),
        )
        parts = [
            (a, b, float(split.contributions[a, b])) for a, b in torch.nonzero(split.contributions).tolist()
        ]
        out.append(HeadEdge(s, t, float(graph.adjacency[t, s]), sorted(parts, key=lambda p: -abs(p[2]))))
    return out


def circuit(cfg: CircuitConfig) -> CircuitResult:
    """`saescope circuit` (module docstring)."""
    started = time.perf_counter()
    found = find_dictionaries(cfg)
    built, loaded, dictionaries = _build(cfg, found)
    graph = dataclasses.replace(
        built.graph, logit_tokens=tuple(decode_each(loaded.tokenizer, built.graph.logit_token_ids()))
    )
    built = built._replace(graph=graph)
    pruned = prune(graph, cfg.node_threshold, cfg.edge_threshold)
    scores = graph_scores(graph)
    validation = validate(graph, built.edits, loaded.model, cfg.validate) if cfg.validate else None
    heads = split_heads(built, pruned, dictionaries, cfg.head_edges)
    explanations = _explanations(dictionaries)
    name = cfg.name or _slug(cfg.prompt)
    folder = Run(cfg.run).circuits
    folder.mkdir(parents=True, exist_ok=True)
    files = graph_files(folder, name)
    settings = {
        "node_threshold": cfg.node_threshold,
        "edge_threshold": cfg.edge_threshold,
        "max_feature_nodes": cfg.max_feature_nodes,
        "max_logits": cfg.max_logits,
        "logit_probability": cfg.logit_probability,
        "validate": cfg.validate,
        "sfc_method": cfg.sfc_method if graph.method != "transcoders" else None,
    }
    result = CircuitResult(
        graph,
        pruned,
        scores,
        validation,
        heads,
        built.replacement_gap,
        explanations,
        files,
        settings,
        time.perf_counter() - started,
    )
    write_graph_json(files[0], result.to_json())
    save_matrices(graph, files[1])
    tracer = circuit_tracer_json(
        graph,
        pruned,
        name,
        cfg.node_threshold,
        explanations,
        dict(zip(graph.logit_token_ids(), graph.logit_tokens)),
    )
    write_graph_json(files[2], tracer)
    add_to_graph_list(folder, tracer["metadata"])
    return result


__all__ = ["CircuitResult", "Dictionaries", "HeadEdge", "circuit", "find_dictionaries", "split_heads"]
