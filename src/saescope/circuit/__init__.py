"""Attribution graphs: how a prompt's next token comes out of dictionary latents.

- `frozen`: the local replacement model of a prompt (attention patterns and norm scales frozen);
- `latents`: the transcoder latents active on a prompt, and each layer's error;
- `attribution`: the graph's edges from transcoders, by batched backward passes (circuit-tracer's method);
- `sfc`: the graph from residual-stream SAEs (Sparse Feature Circuits, attribution patching);
- `graph`: the graph and its nodes' influence on the logits;
- `prune`: pruning by influence, replacement and completeness scores;
- `heads`: an edge between positions split over the attention heads that carry it;
- `validation`: the graph's predicted ablation effects beside the real model's;
- `formats`: saescope's graph files and circuit-tracer's graph JSON;
- `command`: `saescope circuit`.

A stage: it may read a latent index (for explanations), and knows nothing about the other stages.
"""

from .command import CircuitResult, circuit
from .graph import AttributionGraph, Node

__all__ = ["AttributionGraph", "CircuitResult", "Node", "circuit"]
