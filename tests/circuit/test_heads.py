"""An edge between positions, split over the attention heads that carry it, sums to the edge."""

from __future__ import annotations

from typing import Any

import torch

from saescope.circuit.attribution import GraphSettings, transcoder_graph
from saescope.circuit.frozen import LinearReplacement, freeze_prompt
from saescope.circuit.heads import split_edge
from saescope.tokens import decode_each
from tests.circuit.builders import random_transcoders


def test_head_contributions_sum_to_the_edge(loaded: Any, prompt_ids: list[int]) -> None:
    tcs = random_transcoders(4, skip=True)
    built = transcoder_graph(
        loaded,
        tcs,
        prompt_ids,
        "p",
        decode_each(loaded.tokenizer, prompt_ids),
        None,
        GraphSettings(max_feature_nodes=60),
    )
    graph = built.graph
    replacement = LinearReplacement(
        freeze_prompt(loaded.model, prompt_ids), loaded.model, [(t.b_dec, t.W_skip) for t in tcs.values()]
    )
    mean_row = replacement.unembed.mean(0)
    checked = 0
    for t in [*graph.indices("logit")[:2].tolist(), *graph.indices("latent")[-10:].tolist()]:
        target = graph.nodes[t]
        read = (
            replacement.unembed[target.feature] - mean_row
            if target.kind == "logit"
            else tcs[target.layer].W_enc[:, target.feature].detach()
        )
        sources = torch.nonzero(graph.adjacency[t]).flatten().tolist()
        for s in [s for s in sources if graph.nodes[s].position != target.position][:6]:
            source = graph.nodes[s]
            split = split_edge(
                replacement,
                (source.layer, source.position, built.edits.vectors[s]),
                (target.layer, target.position, read),
                len(prompt_ids),
            )
            edge = float(graph.adjacency[t, s])
            assert abs(split.edge - edge) <= 1e-4 * max(abs(edge), 1e-3), (source, target)
            # no head before the source writes, or after the target reads, carries anything
            assert torch.all(split.contributions[: source.layer + 1] == 0)
            assert torch.all(split.contributions[target.layer + 1 :] == 0) or target.kind == "logit"
            checked += 1
    assert checked >= 20
