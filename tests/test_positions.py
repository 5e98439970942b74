"""`iter_positions`: the one loop from model inputs to activations at positions."""

from __future__ import annotations

import torch

from saescope.data import ModelInput
from saescope.hookpoints import resolve_hookpoints
from saescope.models import LoadedModel
from saescope.positions import for_rank, iter_positions


def inputs() -> list[ModelInput]:
    return [
        ModelInput(
            doc_id=i, token_ids=list(range(3, 3 + n)), positions=list(range(1, n, 2)), text="", source=""
        )
        for i, n in enumerate([5, 9, 4, 7, 8])
    ]


def loaded(model: torch.nn.Module, tokenizer: object) -> LoadedModel:
    return LoadedModel(model, tokenizer, "tiny", None, torch.device("cpu"), torch.float32)


def residual(model: torch.nn.Module, ids: torch.Tensor, layer: int) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states[layer + 1][0]


def mlp_out(model: torch.nn.Module, ids: torch.Tensor, layer: int) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = model.model.layers[layer].mlp.register_forward_hook(lambda m, a, o: captured.append(o))
    try:
        with torch.no_grad():
            model(ids)
    finally:
        handle.remove()
    return captured[0][0]


def test_activations_at_positions_equal_single_forward_passes(tiny_llama_model, tiny_tok) -> None:  # type: ignore[no-untyped-def]
    lm = loaded(tiny_llama_model, tiny_tok)
    hps = resolve_hookpoints(tiny_llama_model, ["resid_post:1", "mlp_out:2"])
    got = list(iter_positions(lm, hps, inputs(), batch_size=2))
    assert [len(b.inputs) for b in got] == [2, 2, 1]
    for hp in hps:
        rows = torch.cat([b.activations[hp.name] for b in got])
        expected = []
        for item in inputs():
            ids = torch.tensor([item.token_ids])
            act = (
                residual(tiny_llama_model, ids, 1)
                if hp.alias == "resid_post:1"
                else mlp_out(tiny_llama_model, ids, 2)
            )
            expected.append(act[item.positions])
        torch.testing.assert_close(rows, torch.cat(expected), atol=1e-5, rtol=1e-5)
    doc_ids = torch.cat([b.doc_ids for b in got]).tolist()
    positions = torch.cat([b.positions for b in got]).tolist()
    token_ids = torch.cat([b.token_ids for b in got]).tolist()
    assert doc_ids == [i.doc_id for i in inputs() for _ in i.positions]
    assert positions == [p for i in inputs() for p in i.positions]
    assert token_ids == [i.token_ids[p] for i in inputs() for p in i.positions]


def test_trim_and_ranks(tiny_llama_model, tiny_tok) -> None:  # type: ignore[no-untyped-def]
    lm = loaded(tiny_llama_model, tiny_tok)
    hps = resolve_hookpoints(tiny_llama_model, ["resid_post:0"])
    got = list(iter_positions(lm, hps, inputs(), batch_size=3, trim=lambda batch: batch[:1]))
    assert [[i.doc_id for i in b.inputs] for b in got] == [[0], [3]]
    assert [i.doc_id for i in for_rank(inputs(), 1, 2)] == [1, 3]
    assert [i.doc_id for i in for_rank(inputs(), 0, 2)] == [0, 2, 4]
    assert torch.is_grad_enabled() is not False  # grad mode is left as it was
