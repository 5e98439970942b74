"""End to end on the real embedded model (slow): a random TopK SAE on SmolLM2-135M's resid_post:3,
indexed from the built-in corpus; logit effects through its real RMSNorm weights, and `--text`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from saescope import cli
from saescope.config import IndexConfig, ModelSettings
from saescope.index import Index
from saescope.index.build import build_index
from saescope.models import load_model
from saescope.sae import SAEConfig, get_architecture
from saescope.sae.formats import load_sae, save_sae

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo_index")
    cfg = SAEConfig(
        "topk", 576, 512, 16, model="smollm2-135m", hookpoint="model.layers.3", hookpoint_alias="resid_post:3"
    )
    sae = get_architecture("topk")(cfg)
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(512, 576, generator=gen)
    with torch.no_grad():
        sae.W_dec.copy_(rows / rows.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.t())
    save_sae(sae, root / "sae")
    build_index(IndexConfig(saes=(root / "sae",), tokens=1024, device="cpu", context_len=128, map="pca"))
    return root / "index"


def test_logit_effects_use_the_real_final_norm(demo_index: Path) -> None:
    model = load_model(ModelSettings(device="cpu")).model
    gain = model.model.norm.weight.detach().double()
    unembed = model.get_output_embeddings().weight.detach().double()
    index = Index(demo_index)
    assert not torch.allclose(gain, torch.ones_like(gain))  # a trained gain: the test can tell
    w_dec = load_sae(demo_index.parent / "sae").W_dec.detach().double()
    for latent in (0, 100, 511):
        naive = (unembed @ (gain * w_dec[latent])).numpy()
        effects = index.logit_effects(latent, 10)
        assert [t.token_id for t in effects.top] == np.argsort(-naive, kind="stable")[:10].tolist()
        assert [t.token_id for t in effects.bottom] == np.argsort(naive, kind="stable")[:10].tolist()
    assert pq.read_table(demo_index / "latents.parquet").num_rows == 512


def test_text_query_on_the_real_model(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["query", str(demo_index), "--text", "Paris is the capital of France.", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "".join(t["token"] for t in doc["tokens"]) == "Paris is the capital of France."
    assert all(len(t["latents"]) == 16 for t in doc["tokens"])
    examples = Index(demo_index).top_examples(7, 5)
    assert len(examples) == 5 and all(e.tokens and e.activation > 0 for e in examples)
