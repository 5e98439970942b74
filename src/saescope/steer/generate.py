"""Token-by-token generation over the model's KV cache, with an optional patch where a dictionary writes.

    steps = generate_steps(loaded, batch, Sampling(max_new_tokens=30), patch)
    for step in steps:            # one Step per new token of every row
        print(step.texts[0], end="")
        if enough:
            steps.close()          # frees the cache; no hook is ever left on the model

Our own loop rather than `model.generate`, so that the patch sees every forward pass with the
columns it covers (`Patch.fn(read, written, start)`: a transcoder reads `mlp_in:L` and its edit
changes `mlp_out:L` in the same pass; `bound.rewriting`), streaming is natural, and the uncached path
(`use_cache=False`: the whole sequence recomputed every step) can be compared token for token.
Prompts are left-padded (`layout.left_pad`) with position ids counted from each row's first real
token, so a padded row computes what it would alone. The hook is registered around each forward
pass and removed before the step is yielded: a generator left suspended, abandoned or
interleaved with other calls never leaves a hook behind.

Sampling: greedy at temperature 0, else softmax(logits / temperature), restricted to the
smallest set of tokens holding `top_p` of the probability, drawn from a generator seeded with
`seed` (so two runs that differ only in their patch draw from the same random stream). A row
stops at an EOS token (the tokenizer's and the generation config's); finished rows are fed the
pad token until every row is done or `max_new_tokens` is reached.

This module knows nothing about SAEs or interventions.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from ..bound import rewriting
from ..errors import SaescopeError
from ..hookpoints import Hookpoint
from ..models import LoadedModel, pad_token_id
from .places import PromptBatch


class Sampling(NamedTuple):
    """How tokens are chosen."""

    max_new_tokens: int = 40
    """Tokens to generate per prompt at most."""
    temperature: float = 0.0
    """0 is greedy."""
    top_p: float = 1.0
    """Nucleus sampling's probability mass (1 keeps every token)."""
    seed: int = 0
    """Seed of the sampling generator."""


class Patch(NamedTuple):
    """A change of the activation where a dictionary writes, in every forward pass."""

    reads: Hookpoint
    """Where the dictionary reads (its input: `fn` is given it)."""
    writes: Hookpoint
    """Where the activation is changed (the same hookpoint as `reads` for an SAE; a transcoder's
    output)."""
    fn: Callable[[Tensor, Tensor, int], Tensor]
    """(read [B, T, d_in], written [B, T, d_out], the first column this pass covers) → the new
    activation at `writes`."""


def applying(model: Any, patch: Patch | None, start: int) -> AbstractContextManager[Any]:
    """Within the block, `patch` changes every forward pass that covers columns `start` on
    (nothing when None)."""
    if patch is None:
        return nullcontext()
    return rewriting(model, patch.reads, patch.writes, lambda read, act: patch.fn(read, act, start))


class Step(NamedTuple):
    """One new token for every row of the batch."""

    number: int
    """0 for the first generated token."""
    token_ids: list[int]
    """The new token of each row (the pad token in rows that had already finished)."""
    texts: list[str]
    """The new text of each row ("" where nothing printable is complete yet, or the row is done)."""
    live: list[bool]
    """Rows whose token in this step is real (they had not finished before it)."""
    finished: list[bool]
    """Rows that are done after this step (EOS reached)."""
    logits: Tensor
    """[B, V] float32 logits the tokens were chosen from."""


class Completion(NamedTuple):
    """What one prompt generated."""

    text: str
    """The generated text (special tokens dropped)."""
    token_ids: list[int]
    """The generated tokens, EOS included when reached."""
    stopped: Literal["eos", "length"]
    """Why it stopped."""
    target_logprob: float | None
    """Mean over its generated tokens of log P(any of the target tokens) at that step; None when
    no targets were given."""


class Generation(NamedTuple):
    """A whole generation."""

    completions: list[Completion]
    """One per prompt, in prompt order."""
    tokens: int
    """Real tokens generated, over all rows."""
    seconds: float
    """Wall time of the generation."""


# ----- the model call ---------------------------------------------------------------------
_PARAMETERS: dict[type, frozenset[str]] = {}


def _forward_parameters(model: Any) -> frozenset[str]:
    """The keyword arguments `model.forward` names (looked up once per model class)."""
    cls = type(model)
    if cls not in _PARAMETERS:
        _PARAMETERS[cls] = frozenset(inspect.signature(cls.forward).parameters)
    return _PARAMETERS[cls]


def new_cache(model: Any) -> Any:
    """An empty KV cache for `model`."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # transformers 4.x
        return DynamicCache()


def cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    """The keyword that hands `cache` to `model` ({} for None). transformers 5 renamed
    `past_key_values` to `cache`; a wrong keyword would be swallowed by **kwargs and the cache
    silently not used."""
    if cache is None:
        return {}
    return {"cache" if "cache" in _forward_parameters(model) else "past_key_values": cache}


def forward_last_logits(
    model: Any, ids: Tensor, mask: Tensor, positions: Tensor, cache: Any, patch: Patch | None, start: int
) -> Tensor:
    """Float32 logits [B, V] at the last column of one forward pass over `ids` (columns `start` on)."""
    accepted = _forward_parameters(model)
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": positions,
        "use_cache": cache is not None,
    }
    kwargs.update(cache_argument(model, cache))
    if "logits_to_keep" in accepted:
        kwargs["logits_to_keep"] = 1
    with torch.no_grad(), applying(model, patch, start):
        logits = model(**kwargs).logits
    return logits[:, -1].float()


# ----- sampling ---------------------------------------------------------------------------
def next_tokens(logits: Tensor, sampling: Sampling, generator: torch.Generator) -> Tensor:
    """[B] tokens chosen from [B, V] logits (see the module docstring)."""
    if sampling.temperature == 0:
        return logits.argmax(-1)
    probs = (logits / sampling.temperature).softmax(-1)
    if sampling.top_p < 1:
        sorted_probs, order = probs.sort(-1, descending=True)
        # keep a token when the mass before it is below top_p (the most likely one always stays)
        keep = (sorted_probs.cumsum(-1) - sorted_probs) < sampling.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def eos_ids(loaded: LoadedModel) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS and the generation config's."""
    ids: set[int] = set()
    if loaded.tokenizer.eos_token_id is not None:
        ids.add(int(loaded.tokenizer.eos_token_id))
    configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, (list, tuple)):
        ids.update(int(i) for i in configured)
    return sorted(ids)


def context_limit(model: Any) -> int | None:
    """The longest sequence the model accepts, when its config says."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_length(model: Any, batch: PromptBatch, max_new_tokens: int) -> None:
    """Refuse a generation longer than the model's context."""
    limit = context_limit(model)
    width = batch.input_ids.shape[1]
    if limit is not None and width + max_new_tokens > limit:
        raise SaescopeError(
            f"prompt ({width} tokens) + {max_new_tokens} new tokens exceeds the model's context of "
            f"{limit} tokens; lower --max-new-tokens to at most {max(limit - width, 0)}"
        )


class TextStream:
    """Decodes one row's tokens incrementally, holding back an incomplete UTF-8 character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.shown = 0

    def text(self) -> str:
        """Everything generated so far."""
        return str(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def push(self, token: int, last: bool = False) -> str:
        """The text `token` completes ("" while a multi-byte character is unfinished, unless it
        is the `last` token: then whatever is left, undecodable bytes as U+FFFD)."""
        self.ids.append(token)
        text = self.text()
        if text.endswith("\ufffd") and not last:
            return ""
        new, self.shown = text[self.shown :], len(text)
        return new


# ----- the loop ---------------------------------------------------------------------------
def generate_steps(
    loaded: LoadedModel,
    batch: PromptBatch,
    sampling: Sampling | None = None,
    patch: Patch | None = None,
    use_cache: bool = True,
) -> Generator[Step, None, None]:
    """Generate for every prompt of `batch`, one `Step` per token (see the module docstring).

    A context overflow is refused here, before anything runs; the generator allocates nothing until
    its first step."""
    sampling = sampling or Sampling()
    check_length(loaded.model, batch, sampling.max_new_tokens)
    return _steps(loaded, batch, sampling, patch, use_cache)


def _steps(
    loaded: LoadedModel, batch: PromptBatch, sampling: Sampling, patch: Patch | None, use_cache: bool
) -> Generator[Step, None, None]:
    model = loaded.model
    device = batch.input_ids.device
    pad = torch.tensor(pad_token_id(loaded.tokenizer), device=device)
    stops = torch.tensor(eos_ids(loaded), dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    cache = new_cache(model) if use_cache else None
    ids, mask = batch.input_ids, batch.attention_mask
    streams = [TextStream(loaded.tokenizer) for _ in batch.token_ids]
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
    for index in range(sampling.max_new_tokens):
        start = ids.shape[1] - 1 if (cache is not None and index > 0) else 0
        positions = (mask.cumsum(-1) - 1).clamp_min(0)[:, start:]
        logits = forward_last_logits(model, ids[:, start:], mask, positions, cache, patch, start)
        live = ~done
        tokens = torch.where(live, next_tokens(logits, sampling, generator), pad)
        done = done | (live & torch.isin(tokens, stops))
        ids = torch.cat([ids, tokens[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        token_list, live_list, done_list = tokens.tolist(), live.tolist(), done.tolist()
        final = index == sampling.max_new_tokens - 1
        texts = [
            s.push(t, last=final or d) if alive else ""
            for s, t, alive, d in zip(streams, token_list, live_list, done_list)
        ]
        yield Step(index, token_list, texts, live_list, done_list, logits)
        if bool(done.all()):
            return


def target_logprob(logits: Tensor, targets: Tensor) -> Tensor:
    """[B] log P(any of `targets`) under [B, V] logits."""
    return logits.log_softmax(-1)[:, targets].logsumexp(-1)


def generate(
    loaded: LoadedModel,
    batch: PromptBatch,
    sampling: Sampling | None = None,
    patch: Patch | None = None,
    use_cache: bool = True,
    targets: Sequence[int] = (),
    on_step: Callable[[Step], None] | None = None,
) -> Generation:
    """Run `generate_steps` to the end; with `targets`, also score each completion by the mean
    log-probability of those tokens along it. `on_step` sees every step (streaming)."""
    rows = len(batch.token_ids)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    scores: list[list[float]] = [[] for _ in range(rows)]
    finished = [False] * rows
    target_ids = torch.tensor(list(targets), dtype=torch.long, device=batch.input_ids.device)
    started = time.perf_counter()
    for step in generate_steps(loaded, batch, sampling, patch, use_cache):
        step_scores = target_logprob(step.logits, target_ids).tolist() if targets else None
        for r in range(rows):
            if step.live[r]:
                tokens[r].append(step.token_ids[r])
                if step_scores is not None:
                    scores[r].append(step_scores[r])
        finished = step.finished
        if on_step is not None:
            on_step(step)
    decode = loaded.tokenizer.decode
    completions = [
        Completion(
            text=str(decode(tokens[r], skip_special_tokens=True)),
            token_ids=tokens[r],
            stopped="eos" if finished[r] else "length",
            target_logprob=sum(scores[r]) / len(scores[r]) if scores[r] else None,
        )
        for r in range(rows)
    ]
    return Generation(completions, sum(len(t) for t in tokens), time.perf_counter() - started)


__all__ = [
    "Completion",
    "Generation",
    "Patch",
    "Sampling",
    "Step",
    "TextStream",
    "applying",
    "cache_argument",
    "check_length",
    "context_limit",
    "eos_ids",
    "forward_last_logits",
    "generate",
    "generate_steps",
    "new_cache",
    "next_tokens",
    "target_logprob",
]
