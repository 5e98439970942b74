"""Sparse Feature Circuits graphs from residual SAEs: edges are attribution patching's
activation × gradient, checked against finite differences in the real model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from saescope.circuit.sfc import sfc_graph
from saescope.circuit.validation import validate
from saescope.errors import SaescopeError
from saescope.hookpoints import resolve_hookpoints
from saescope.hooks import patch_activations
from saescope.tokens import decode_each
from tests.builders import random_topk_sae


def saes(loaded: Any, tmp_path: Any) -> list[tuple[Any, Any]]:
    first = random_topk_sae(tmp_path, 48, 4, seed=1)
    first.cfg = first.cfg.with_updates(hookpoint="model.layers.0", hookpoint_alias="resid_post:0")
    second = random_topk_sae(tmp_path, 48, 4, seed=2)
    hooks = resolve_hookpoints(loaded.model, ["resid_post:0", "resid_post:1"])
    return [(second, hooks[1]), (first, hooks[0])]


@pytest.mark.parametrize("method", ["attribution-patching", "integrated-gradients"])
def test_edges_into_the_logit_are_gradient_times_activation(
    loaded: Any, prompt_ids: list[int], tmp_path: Any, method: str
) -> None:
    pairs = saes(loaded, tmp_path)
    built = sfc_graph(
        loaded,
        pairs,
        prompt_ids,
        "p",
        decode_each(loaded.tokenizer, prompt_ids),
        None,
        max_logits=2,
        method=method,
    )
    graph = built.graph
    kinds = [n.kind for n in graph.nodes]
    assert kinds.count("error") == 2 * len(prompt_ids) and kinds.count("embedding") == len(prompt_ids)
    logit = int(graph.indices("logit")[0])
    token = graph.nodes[logit].feature
    second_layer = [i for i in graph.indices("latent").tolist() if graph.nodes[i].layer == 1]
    assert graph.adjacency[logit, second_layer].abs().sum() > 0
    # nothing from the first SAE reaches the logit directly: it goes through the second
    first_layer = [i for i in graph.indices("latent").tolist() if graph.nodes[i].layer == 0]
    assert torch.all(graph.adjacency[logit, first_layer] == 0)
    if method != "attribution-patching":
        return
    ids = torch.tensor([prompt_ids])

    def demeaned(shift: torch.Tensor) -> float:
        with torch.no_grad(), patch_activations(loaded.model, "model.layers.1", lambda a: a + shift):
            logits = loaded.model(ids).logits[0, -1].double()
        return float(logits[token] - logits.mean())

    for s in second_layer[:: max(1, len(second_layer) // 6)]:
        eps = 1e-2
        shift = torch.zeros(1, len(prompt_ids), 32)
        shift[0, graph.nodes[s].position] = eps * built.edits.vectors[s]
        central = (demeaned(shift) - demeaned(-shift)) / (2 * eps)
        edge = float(graph.adjacency[logit, s])
        assert abs(central - edge) <= 1e-2 * max(abs(edge), 1e-3)


def test_the_check_runs_on_sae_graphs(loaded: Any, prompt_ids: list[int], tmp_path: Any) -> None:
    built = sfc_graph(
        loaded,
        saes(loaded, tmp_path),
        prompt_ids,
        "p",
        decode_each(loaded.tokenizer, prompt_ids),
        None,
        max_logits=1,
    )
    checked = validate(built.graph, built.edits, loaded.model, 8)
    assert len(checked.checks) == 8
    assert all(abs(c.measured) < 10 for c in checked.checks)


def test_two_saes_at_one_layer_are_refused(loaded: Any, prompt_ids: list[int], tmp_path: Any) -> None:
    """resid_pre:1 and resid_post:1 are two sites but one layer: their nodes would share ids."""
    hooks = resolve_hookpoints(loaded.model, ["resid_pre:1", "resid_post:1"])
    pairs = [(random_topk_sae(tmp_path, 48, 4, seed=i), h) for i, h in enumerate(hooks)]
    with pytest.raises(SaescopeError, match="two SAEs read layer 1"):
        sfc_graph(loaded, pairs, prompt_ids, "p", decode_each(loaded.tokenizer, prompt_ids), None)
