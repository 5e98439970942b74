"""A tiny run to serve and to build dashboards from, with hostile text everywhere a user's or a
model's text can reach a page.

`build_run` writes RUN/sae (a random TopK SAE on the tiny Llama), RUN/index (the latent index of a
small corpus whose documents hold `<script>`, `onerror=`, quotes, `&` and line breaks),
explanations with scores stored in the index through the interpretation stage's own writer (their
texts and model name hostile too), and RUN/sae/eval.json from the eval stage.

This module knows nothing about the code under test beyond the stages' public entry points.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from saescope.config import EvalConfig, IndexConfig
from saescope.evals import evaluate
from saescope.index.build import build_index
from saescope.interpret import Explanation, LatentResult, Score
from saescope.interpret.tables import ResultStore, key_of
from saescope.sae import SparseAutoencoder
from saescope.sae.formats import save_sae
from tests.builders import random_topk_sae

HOOKPOINT = "resid_post:1"
D_MODEL = 32  # the tiny Llama's width
D_SAE = 40
HOSTILE = (
    "<script>alert('corpus')</script>",
    '<img src=x onerror="alert(1)">',
    "Tom & Jerry said \"hi\" and 'bye'",
    "</textarea><b>bold</b>",
    "line one\nline two\ttabbed",
)
"""Strings that would run, break out or vanish if any page forgot to escape them."""
WORDS = ["the", "cat", "is", "on", "a", "mat", "Paris", "river", "stone", "light", "42", "&", "<", ">"]
EXPLAINED = {
    0: "<img src=x onerror=alert('explanation')> tokens",
    1: "</script><script>alert(2)</script>",
    2: "quotes \" ' & ampersands",
}
"""Explanations written into the index (latent → text)."""
DETECTION = {0: 0.8, 1: 0.65, 2: 0.9}
"""Their detection accuracies (the headline score)."""
MODEL = "explainer <i>model</i> & co"
"""The model that "wrote" them (hostile too: it is shown on pages)."""


def topk_sae(model_dir: Path, d_sae: int = D_SAE, k: int = 4, seed: int = 0) -> SparseAutoencoder:
    """A TopK SAE on the tiny model's `resid_post:1`: random unit decoder rows, the encoder their
    scaled transpose, so that several latents fire on every token."""
    return random_topk_sae(model_dir, d_sae, k, seed)


def write_corpus(path: Path, docs: int = 30, seed: int = 0) -> Path:
    """Short documents of random words, every one holding a hostile string (`.jsonl`)."""
    rng = random.Random(seed)
    lines = []
    for d in range(docs):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        words.insert(rng.randint(0, len(words)), HOSTILE[d % len(HOSTILE)])
        lines.append(json.dumps({"text": " ".join(words)}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_explanations(index: Path, explained: dict[int, str] = EXPLAINED) -> None:
    """Store explanations and scores in the index as `saescope interpret` does (`ResultStore`):
    each with a detection accuracy (interval and chance baseline) and a fuzzing accuracy that
    could not be measured (NaN); latent 2 fired on few tokens."""
    store = ResultStore(index)
    nan = math.nan
    for latent, text in explained.items():
        explanation = Explanation(latent, "llm", MODEL, "v1", text, 0.75, True, None, 12, latent == 2, "")
        scores = (
            Score(latent, "detection", "accuracy", DETECTION[latent], 0.7, 0.9, 0.5, 0.45, 0.55, 40, {}),
            Score(latent, "fuzzing", "accuracy", nan, nan, nan, nan, nan, nan, 0, {"error": "no answer"}),
        )
        result = LatentResult(latent, explanation, scores, None)
        store.write(result, key_of(explanation), {"detection": MODEL, "fuzzing": MODEL})
    store.compact()


def build_run(root: Path, model_dir: Path, tokens: int = 500) -> Path:
    """The tiny run (see the module docstring) under `root/run`; returns the run folder."""
    run = root / "run"
    sae = run / "sae"
    save_sae(topk_sae(model_dir), sae)
    corpus = write_corpus(root / "corpus.jsonl")
    build_index(
        IndexConfig(
            saes=(sae,),
            out=(run / "index",),
            dataset=str(corpus),
            device="cpu",
            tokens=tokens,
            context_len=24,
            batch_size=4,
            chunk_tokens=256,
            bucket_latents=16,
            top_examples=30,
            map="pca",
            map_clusters=3,
        )
    )
    write_explanations(run / "index")
    evaluate(
        EvalConfig(
            saes=(sae,), dataset=str(corpus), tokens=200, context_len=24, device="cpu", downstream=False
        )
    )
    return run
