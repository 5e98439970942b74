"""`bind_sae`, `heldout_corpus` and `encode_text`: one way to put a saved SAE in its world."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saescope.bound import bind_sae, encode_text, heldout_corpus
from saescope.errors import SaescopeError
from saescope.hooks import collect_activations
from saescope.models import LoadedModel
from saescope.sae import SAEConfig, get_architecture
from saescope.sae.formats import save_sae
from saescope.sae.init import initialize
from saescope.sae.record import TrainingRecord

D = 32


def saved_sae(
    folder: Path, model: Path, training: dict | None = None, hookpoint: str = "resid_post:1"
) -> Path:  # type: ignore[type-arg]
    cfg = SAEConfig(
        architecture="topk",
        d_in=D,
        d_sae=64,
        k=4,
        model=str(model),
        hookpoint=hookpoint,
        hookpoint_alias=hookpoint,
        training=training or {},
    )
    sae = get_architecture("topk")(cfg)
    initialize(sae, generator=torch.Generator().manual_seed(0))
    return save_sae(sae, folder)


def test_bind_sae_loads_the_model_the_sae_records(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = saved_sae(tmp_path / "sae", tiny_model_dir)
    models: dict[str, LoadedModel] = {}
    bound = bind_sae(path, models=models)
    assert bound.hookpoint.alias == "resid_post:1" and bound.hookpoint.module_path == "model.layers.1"
    assert bound.path == path and not bound.sae.training
    assert list(models) == [str(tiny_model_dir)]
    # a second SAE shares the loaded model
    again = bind_sae(path, models=models)
    assert again.loaded_model is bound.loaded_model
    # …and so does passing the loaded model itself
    assert bind_sae(path, bound.loaded_model).loaded_model is bound.loaded_model


def test_another_model_is_refused_unless_forced(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = saved_sae(tmp_path / "sae", Path("/somewhere/else"))
    with pytest.raises(SaescopeError, match="pass --force"):
        bind_sae(path, str(tiny_model_dir))
    assert bind_sae(path, str(tiny_model_dir), force=True).loaded_model.name == str(tiny_model_dir)


def test_a_hookpoint_the_model_lacks_is_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = saved_sae(tmp_path / "sae", tiny_model_dir, hookpoint="resid_post:40")
    with pytest.raises(SaescopeError, match=r"its hookpoint 'resid_post:40' is not in"):
        bind_sae(path)


def test_heldout_corpus_starts_after_what_training_read(tmp_path: Path, tiny_model_dir: Path) -> None:
    capture = {"dataset": "/data/corpus.txt", "unit": "sentence", "context_len": 48, "seed": 3}
    path = saved_sae(tmp_path / "sae", tiny_model_dir, training={"capture": capture, "next_doc": 17})
    bound = bind_sae(path)
    assert isinstance(bound.sae.cfg.training, TrainingRecord)
    corpus, start = heldout_corpus(bound.sae)
    assert (corpus.dataset, corpus.unit, corpus.context_len, corpus.seed, start) == (
        "/data/corpus.txt",
        "sentence",
        48,
        3,
        17,
    )
    other, start = heldout_corpus(bound.sae, dataset="/other.txt", context_len=20)
    assert (other.dataset, other.unit, other.context_len, start) == ("/other.txt", "sentence", 20, 0)


def test_encode_text_equals_encoding_the_hookpoint_by_hand(tmp_path: Path, tiny_model_dir: Path) -> None:
    bound = bind_sae(saved_sae(tmp_path / "sae", tiny_model_dir))
    codes = encode_text(bound, "The cat sat on the mat.")
    tok = bound.loaded_model.tokenizer
    ids = [tok.bos_token_id, *tok("The cat sat on the mat.", add_special_tokens=False)["input_ids"]]
    assert codes.token_ids == ids and len(codes.tokens) == len(ids)
    with collect_activations(bound.loaded_model.model, [bound.hookpoint]) as c, torch.no_grad():
        act = c.run(input_ids=torch.tensor([ids]))[bound.hookpoint.name][0]
    dense = bound.sae.encode_dense(act.float())
    rebuilt = torch.zeros_like(dense).scatter_(-1, codes.latent_indices, codes.latent_acts)
    torch.testing.assert_close(rebuilt, dense)
    assert (codes.latent_acts[:, :-1] >= codes.latent_acts[:, 1:]).all()  # largest first
    assert codes.top(1, n=2) == [
        (int(i), float(a)) for i, a in zip(codes.latent_indices[1, :2], codes.latent_acts[1, :2])
    ]
    with pytest.raises(SaescopeError, match="empty"):
        encode_text(bound, "", prepend_bos=False)
