"""The transcoder graph is exact: the replacement model reproduces the real logits, every node's
value is its incoming edges plus its constants, and each edge is the finite-difference change of
its target when its source is nudged in the replacement model (errors frozen)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from saescope.circuit.attribution import Built, GraphSettings, transcoder_graph
from saescope.circuit.frozen import LinearReplacement, freeze_prompt
from saescope.circuit.latents import active_transcoder_latents, mlp_injections
from saescope.circuit.validation import validate
from saescope.tokens import decode_each
from tests.circuit.builders import random_transcoders


def build(loaded: Any, ids: list[int], skip: bool, **settings: Any) -> tuple[Built, dict[int, Any]]:
    tcs = random_transcoders(4, skip=skip)
    built = transcoder_graph(
        loaded, tcs, ids, "p", decode_each(loaded.tokenizer, ids), None, GraphSettings(**settings)
    )
    return built, tcs


@pytest.mark.parametrize("skip", [False, True])
def test_the_replacement_model_reproduces_the_logits(loaded: Any, prompt_ids: list[int], skip: bool) -> None:
    tcs = random_transcoders(4, skip=skip)
    frozen = freeze_prompt(loaded.model, prompt_ids)
    latents, errors = active_transcoder_latents(frozen, tcs)
    replacement = LinearReplacement(frozen, loaded.model, [(t.b_dec, t.W_skip) for t in tcs.values()])
    sites = replacement.run(frozen.embeddings[None], [i[None] for i in mlp_injections(latents, errors)])
    assert sites.final is not None
    logits = sites.final[0, -1] @ replacement.unembed.T
    with torch.no_grad():
        real = loaded.model(torch.tensor([prompt_ids])).logits[0, -1]
    torch.testing.assert_close(logits, real, rtol=1e-5, atol=1e-6)
    for layer in range(4):  # and each transcoder reads what the real MLP reads
        torch.testing.assert_close(sites.mlp_in[layer][0], frozen.mlp_inputs[layer], rtol=1e-5, atol=1e-5)


def test_each_transcoder_encodes_the_prompt_once(loaded: Any, prompt_ids: list[int]) -> None:
    """The errors come from the codes the latents come from: one encode per layer, and latents +
    linear part + error is the MLP's output."""
    tcs = random_transcoders(4, skip=True)
    calls = {layer: 0 for layer in tcs}
    for layer, tc in tcs.items():

        def counted(x: torch.Tensor, layer: int = layer, encode: Any = tc.encode) -> Any:
            calls[layer] += 1
            return encode(x)

        tc.encode = counted
    frozen = freeze_prompt(loaded.model, prompt_ids)
    latents, errors = active_transcoder_latents(frozen, tcs)
    assert calls == {layer: 1 for layer in tcs}
    injected = mlp_injections(latents, errors)
    for layer, tc in tcs.items():
        with torch.no_grad():
            linear = tc.b_dec + tc.skip(frozen.mlp_inputs[layer])
        torch.testing.assert_close(injected[layer] + linear, frozen.mlp_outputs[layer], rtol=1e-5, atol=1e-5)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp_min(1e-6)).max())


@pytest.mark.parametrize("skip", [False, True])
def test_each_node_is_its_incoming_edges_plus_its_constants(
    loaded: Any, prompt_ids: list[int], skip: bool
) -> None:
    built, tcs = build(loaded, prompt_ids, skip, max_feature_nodes=10_000, batch_size=32)
    graph = built.graph
    frozen = freeze_prompt(loaded.model, prompt_ids)
    latents = graph.indices("latent")
    assert len(latents) == graph.active_latents  # every active latent kept: nothing left out
    # the pre-activation as the transcoder computes it on the real model's MLP input
    real = torch.stack(
        [
            tcs[graph.nodes[i].layer]
            .encode(frozen.mlp_inputs[graph.nodes[i].layer])
            .pre_acts[graph.nodes[i].position, graph.nodes[i].feature]
            .detach()
            for i in latents.tolist()
        ]
    )
    summed = graph.adjacency[latents].sum(-1) + graph.constants[latents]
    assert relative(summed, real) <= 1e-4
    logits = graph.indices("logit")
    real_logits = torch.tensor(
        [float(frozen.logits[graph.nodes[i].feature] - frozen.logits.mean()) for i in logits]
    )
    assert relative(graph.adjacency[logits].sum(-1) + graph.constants[logits], real_logits) <= 1e-4
    assert torch.all(graph.unkept[latents] == 0)


def test_a_graph_keeping_some_latents_accounts_for_the_others(loaded: Any, prompt_ids: list[int]) -> None:
    built, _ = build(loaded, prompt_ids, True, max_feature_nodes=20, batch_size=8)
    full, _ = build(loaded, prompt_ids, True, max_feature_nodes=10_000, batch_size=32)
    graph, logits = built.graph, built.graph.indices("logit")
    assert len(graph.indices("latent")) == 20 < graph.active_latents
    value = graph.adjacency[logits].sum(-1) + graph.constants[logits] + graph.unkept[logits]
    whole = (
        full.graph.adjacency[full.graph.indices("logit")].sum(-1)
        + full.graph.constants[full.graph.indices("logit")]
    )
    assert relative(value, whole) <= 1e-4
    assert float(graph.unkept[logits].abs().max()) > 0


def test_an_edge_is_the_finite_difference_of_its_target(loaded: Any, prompt_ids: list[int]) -> None:
    built, tcs = build(loaded, prompt_ids, True, max_feature_nodes=10_000, batch_size=32)
    graph = built.graph
    frozen = freeze_prompt(loaded.model, prompt_ids)
    latents, errors = active_transcoder_latents(frozen, tcs)
    replacement = LinearReplacement(frozen, loaded.model, [(t.b_dec, t.W_skip) for t in tcs.values()])
    base = torch.stack(mlp_injections(latents, errors))

    def values(injected: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        sites = replacement.run(embeddings[None], list(injected[:, None]))
        assert sites.final is not None
        out = []
        for node in graph.nodes:
            if node.kind == "latent":
                w = tcs[node.layer].W_enc[:, node.feature].detach()
                out.append(
                    sites.mlp_in[node.layer][0, node.position] @ w + tcs[node.layer].b_enc[node.feature]
                )
            elif node.kind == "logit":
                u = replacement.unembed[node.feature] - replacement.unembed.mean(0)
                out.append(sites.final[0, -1] @ u)
            else:
                out.append(torch.tensor(0.0))
        return torch.stack(out).detach()

    clean = values(base, frozen.embeddings)
    eps = 1.0  # the replacement model is linear: any nudge is exact; a large one keeps float32 rounding small
    checked = 0
    for s in [
        *graph.indices("latent")[::7].tolist(),
        *graph.indices("error")[::5].tolist(),
        *graph.indices("embedding").tolist(),
    ]:
        node = graph.nodes[s]
        injected, embeddings = base.clone(), frozen.embeddings.clone()
        if node.kind == "embedding":
            embeddings[node.position] *= 1 + eps
        else:
            injected[node.layer, node.position] += eps * built.edits.vectors[s]
        change = (values(injected, embeddings) - clean) / eps
        targets = torch.nonzero(graph.adjacency[:, s]).flatten()
        expected = graph.adjacency[targets, s]
        big = expected.abs() > 1e-2  # edges well above float32 rounding of values of order 10
        if bool(big.any()):
            assert relative(change[targets][big], expected[big]) <= 1e-3, node
        checked += int(big.sum())
    assert checked > 30


def test_batches_give_the_same_edges(loaded: Any, prompt_ids: list[int]) -> None:
    one, _ = build(loaded, prompt_ids, False, max_feature_nodes=10_000, batch_size=1)
    many, _ = build(loaded, prompt_ids, False, max_feature_nodes=10_000, batch_size=64)
    # the same up to float32 rounding, which differs with the shapes of the products
    scale = float(many.graph.adjacency.abs().max())
    torch.testing.assert_close(one.graph.adjacency, many.graph.adjacency, rtol=1e-5, atol=1e-7 * scale)


def test_predicted_ablations_are_the_linear_replacement_without_the_node(
    loaded: Any, prompt_ids: list[int]
) -> None:
    """The check's prediction, recomputed independently: the replacement model (patterns, norms
    and errors frozen) run layer by layer with the node removed, every latent moving linearly with
    its pre-activation (as the graph assumes), read at the target logit minus the mean logit."""
    built, tcs = build(loaded, prompt_ids, True, max_feature_nodes=10_000, batch_size=32)
    graph, model = built.graph, built.replacement
    assert model is not None
    frozen = model.frozen
    latents, errors = active_transcoder_latents(frozen, tcs)
    target = graph.nodes[int(graph.indices("logit")[0])].feature
    read = model.unembed[target] - model.unembed.mean(0)

    def logit_without(node: Any) -> float:
        x = frozen.embeddings.clone()
        if node is not None and node.kind == "embedding":
            x[node.position] = 0
        for layer in range(model.n_layers):
            h = x + model.attend(layer, x[None])[0]
            normed = h * frozen.mlp_multiplier[layer]
            tc = tcs[layer]
            here = latents.layers == layer
            acts = (normed[latents.positions[here]] * latents.encoder[here]).sum(-1) + latents.encoder_bias[
                here
            ]
            if node is not None and node.kind == "latent" and node.layer == layer:
                acts[
                    (latents.positions[here] == node.position) & (latents.features[here] == node.feature)
                ] = 0
            written = torch.zeros_like(h).index_add_(
                0, latents.positions[here], acts[:, None] * latents.decoder[here]
            )
            x = h + written + errors[layer] + tc.b_dec.detach() + normed @ tc.W_skip.detach().T
            if node is not None and node.kind == "error" and node.layer == layer:
                x[node.position] -= errors[layer, node.position]
        return float((x[-1] * frozen.final_multiplier[-1]) @ read)

    checked = validate(graph, built.edits, loaded.model, 12).checks
    clean = logit_without(None)
    kinds = set()
    for check in checked:
        node = graph.nodes[check.node]
        expected = logit_without(node) - clean
        assert check.predicted == pytest.approx(expected, rel=1e-3, abs=1e-4), node
        kinds.add(node.kind)
    assert {"latent", "embedding"} <= kinds
