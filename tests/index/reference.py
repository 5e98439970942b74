"""The tokens an index should hold, computed without the index code: the corpus's model inputs
(`data.iter_model_inputs`), the model's hidden states from transformers' own `output_hidden_states`,
and the SAE's dense codes, rounded to float16 as the index stores them.

This module knows nothing about the index's files or queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from saescope.config import CorpusSettings
from saescope.data import iter_model_inputs
from saescope.sae.formats import load_sae

LAYER = 1  # resid_post:1 is hidden_states[2]


class Reference(NamedTuple):
    keys: np.ndarray
    """[n] token keys (doc_id * stride + position), in corpus order."""
    doc_ids: np.ndarray
    positions: np.ndarray
    token_ids: np.ndarray
    dense: np.ndarray
    """[n, d_sae] float32 activations rounded to float16 (0 where inactive)."""
    exact: np.ndarray
    """[n, d_sae] the float32 activations themselves."""
    docs: dict[int, list[int]]
    """Every model input's token ids."""
    stride: int


@torch.no_grad()
def reference(model_dir: Path, sae_dir: Path, corpus: Path, tokens: int, context_len: int) -> Reference:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    sae = load_sae(sae_dir).eval()
    settings = CorpusSettings(dataset=str(corpus), context_len=context_len)
    keys, doc_ids, positions, token_ids, rows = [], [], [], [], []
    docs: dict[int, list[int]] = {}
    seen = 0
    for item in iter_model_inputs(settings, tokenizer):
        if seen >= tokens:
            break
        kept = item.positions[: tokens - seen]
        seen += len(kept)
        ids = torch.tensor([item.token_ids])
        hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        x = hidden.hidden_states[LAYER + 1][0][kept]
        rows.append(sae.encode_dense(x).numpy())
        docs[item.doc_id] = list(item.token_ids)
        for p in kept:
            keys.append(item.doc_id * context_len + p)
            doc_ids.append(item.doc_id)
            positions.append(p)
            token_ids.append(item.token_ids[p])
    exact = np.concatenate(rows)
    dense = exact.astype(np.float16).astype(np.float32)
    return Reference(
        np.array(keys),
        np.array(doc_ids),
        np.array(positions),
        np.array(token_ids),
        dense,
        exact,
        docs,
        context_len,
    )
