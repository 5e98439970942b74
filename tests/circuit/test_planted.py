"""A planted circuit — latent A (layer 0) drives latent B (layer 1) drives the target logit, in a
model whose MLPs at those layers are the transcoders — is what the graph finds first."""

from __future__ import annotations

import torch

from saescope.circuit.attribution import GraphSettings, transcoder_graph
from saescope.circuit.graph import node_influence
from saescope.circuit.prune import prune
from saescope.circuit.validation import validate
from saescope.tokens import decode_each, encode
from tests.builders import tiny_llama, tiny_tokenizer
from tests.circuit.builders import planted_circuit


def test_the_planted_path_comes_first() -> None:
    tok = tiny_tokenizer()
    ids = encode(tok, "the cat is on the mat")
    target = int(tok.convert_tokens_to_ids("ĠParis"))
    planted = planted_circuit(tiny_llama(), ids, target)
    loaded = type("Loaded", (), {"model": planted.model, "name": "tiny"})()
    with torch.no_grad():
        assert int(planted.model(torch.tensor([ids])).logits[0, -1].argmax()) == target
    built = transcoder_graph(
        loaded,
        planted.transcoders,
        ids,
        "p",
        decode_each(tok, ids),
        target,
        GraphSettings(max_feature_nodes=20),
    )
    graph, last = built.graph, len(ids) - 1
    influence = node_influence(graph)
    latents = graph.indices("latent")
    ranked = [graph.nodes[i] for i in latents[torch.argsort(influence[latents], descending=True)].tolist()]
    assert {(n.layer, n.position, n.feature) for n in ranked[:2]} == {
        (0, last, planted.latent_a),
        (1, last, planted.latent_b),
    }
    index = {(n.layer, n.position, n.feature): i for i, n in enumerate(graph.nodes) if n.kind == "latent"}
    a, b = index[(0, last, planted.latent_a)], index[(1, last, planted.latent_b)]
    logit = int(graph.indices("logit")[0])
    # B's largest input among latents is A; the logit's largest input among latents is B
    assert int(latents[graph.adjacency[b, latents].abs().argmax()]) == a
    assert int(latents[graph.adjacency[logit, latents].abs().argmax()]) == b
    assert graph.adjacency[b, a] > 0 and graph.adjacency[logit, b] > 0
    kept = prune(graph).nodes
    assert kept[a] and kept[b]
    # the check against the real model ablates both, and ablating B lowers the target's logit there too
    checks = {c.node: c for c in validate(graph, built.edits, planted.model, 5).checks}
    assert b in checks and checks[b].measured < 0 and checks[b].predicted < 0
