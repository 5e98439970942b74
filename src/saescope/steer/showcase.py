"""The demo's steering run: one latent that stands for a word, pushed as hard as the text stays
readable, beside the unsteered completion and both controls.

The latent is chosen without any index: among latents that fire on held-out text (but not on
most of it), those whose decoder direction promotes one token most distinctly — the largest
z-score of its top logit effect over the vocabulary (`saescope.readout`) — keeping only latents
whose top token is a word: a whole word the tokenizer gives back unchanged
(`saescope.tokens.is_whole_word`) after which the model expects a new word rather than the rest of
this one (`targets.ends_words`: so `' than'`, never `' strugg'`). That token is the effect's target.

The strength is found, not fixed: the edit (add `m` × the latent's maximum activation at every
position) is swept over `MULTIPLES` (`saescope.steer.sweep`), and the demo uses the strongest
multiple whose steered completion stays readable — perplexity under the unsteered model within
`sweep.PERPLEXITY_LIMIT` × the unsteered completion's, and no more repeated 3-grams than
`REPEATS` — and whose next-token effect beats both controls'. (A fixed 3× the maximum turned the
completion into "on...\\n\\nI can on..." on the full demo SAE.) The next candidate latent is tried when
none qualifies, up to `TRIES`; when no latent qualifies, the first one's weakest strength is
shown, and its numbers say so. The result carries the sweep.

This module knows nothing about the demo's other stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from ..bound import BoundSAE, bind_sae
from ..models import LoadedModel
from ..readout import direct_logits
from ..tokens import is_whole_word
from .experiment import SteerResult, run_steering, sweep_steering
from .frequencies import FiringStats, firing_stats
from .generate import Sampling
from .interventions import Intervention
from .sweep import PERPLEXITY_LIMIT, Sweep, SweepPoint
from .targets import ends_words
from .variants import SteerOptions

DEMO_PROMPT = "My favourite thing to do on a quiet weekend is"
MULTIPLES = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Strengths tried, in multiples of the latent's maximum activation."""
REPEATS = 0.34
"""Readable text repeats at most this fraction of its 3-grams (a loop repeats nearly all)."""
TRIES = 3
"""Candidate latents tried, best first."""
CANDIDATES = 64
"""Latents ranked by z-score before the word filter."""
MIN_FREQUENCY = 1e-3
MAX_FREQUENCY = 0.05
CHUNK = 256
"""Latents whose logit weights are computed at once (each is vocabulary-sized)."""


class TokenLatent(NamedTuple):
    """A latent that stands for one token."""

    latent: int
    """The latent id."""
    token: int
    """The token its decoder direction promotes most."""
    zscore: float
    """How far that token's logit weight stands above the others (standard deviations)."""


@torch.no_grad()
def token_latents(bound: BoundSAE, stats: FiringStats, count: int = 1) -> list[TokenLatent]:
    """The `count` latents (firing between MIN_ and MAX_FREQUENCY) whose top logit weight has the
    largest z-score, best first."""
    freq = stats.frequency
    candidates = ((freq >= MIN_FREQUENCY) & (freq <= MAX_FREQUENCY)).nonzero()[:, 0]
    if len(candidates) == 0:
        candidates = (freq > 0).nonzero()[:, 0]
    best: list[tuple[float, int, int]] = []
    for start in range(0, len(candidates), CHUNK):
        ids = candidates[start : start + CHUNK]
        weights = direct_logits(bound.loaded_model.model, bound.sae.W_dec[ids].float())
        top, token = weights.max(-1)
        z = (top - weights.mean(-1)) / weights.std(-1).clamp_min(1e-12)
        best += list(zip(z.tolist(), ids.tolist(), token.tolist()))
    best.sort(reverse=True)
    return [TokenLatent(latent, token, z) for z, latent, token in best[:count]]


def word_latents(bound: BoundSAE, stats: FiringStats) -> list[TokenLatent]:
    """Token latents (best first) whose top token is a word (see the module docstring)."""
    tokenizer = bound.loaded_model.tokenizer
    ranked = [c for c in token_latents(bound, stats, CANDIDATES) if is_whole_word(tokenizer, c.token)]
    if not ranked:
        return token_latents(bound, stats)
    loaded = bound.loaded_model
    whole = ends_words(loaded.model, loaded.tokenizer, [c.token for c in ranked])
    words = [c for c, ok in zip(ranked, whole) if ok]
    return words or ranked


def beats_controls(point: SweepPoint) -> bool:
    """Whether the steered next-token effect is measured and above both controls' at this strength."""
    steered = point.effects.next_token.value
    controls = [point.random_latent.value, point.random_direction.value]
    return steered is not None and all(c is not None and steered > c for c in controls)


def readable(point: SweepPoint, sweep: Sweep) -> bool:
    """Whether the steered text stays readable (perplexity and repetition, see the module docstring)."""
    reference = sweep.unsteered.perplexity.value
    ppl, repeated = point.perplexity.value, point.repeated.value
    if reference is None or ppl is None:
        return False
    return ppl <= PERPLEXITY_LIMIT * reference and (repeated is None or repeated <= REPEATS)


def chosen_multiple(sweep: Sweep) -> float | None:
    """The strongest multiple that is readable and beats both controls (None when none is)."""
    fine = [p.multiple for p in sweep.points if readable(p, sweep) and beats_controls(p)]
    return max(fine) if fine else None


def demo_steering(
    sae_dir: Path,
    model: LoadedModel | None = None,
    prompt: str = DEMO_PROMPT,
    max_new_tokens: int = 24,
) -> SteerResult:
    """Steer the demo SAE's most word-like latent on `prompt` at the strongest readable strength,
    with controls and the sweep that chose it (for `make demo`)."""
    bound = bind_sae(sae_dir, model)
    stats = firing_stats(bound, need_maximum=True)
    assert stats.maximum is not None
    sampling = Sampling(max_new_tokens=max_new_tokens)
    fallback: tuple[TokenLatent, Sweep] | None = None
    for candidate in word_latents(bound, stats)[:TRIES]:
        options = SteerOptions(sampling=sampling, target_ids=(candidate.token,))
        top = float(stats.maximum[candidate.latent])
        edit = [Intervention(candidate.latent, "add", top)]
        sweep = sweep_steering(bound, [prompt], edit, options, stats, MULTIPLES)
        multiple = chosen_multiple(sweep)
        if multiple is not None:
            return shown(bound, prompt, candidate, top * multiple, options, stats, sweep)
        fallback = fallback or (candidate, sweep)
    assert fallback is not None, "the SAE has no latent that fires"
    candidate, sweep = fallback
    options = SteerOptions(sampling=sampling, target_ids=(candidate.token,))
    top = float(stats.maximum[candidate.latent])
    return shown(bound, prompt, candidate, top * min(MULTIPLES), options, stats, sweep)


def shown(
    bound: BoundSAE,
    prompt: str,
    candidate: TokenLatent,
    value: float,
    options: SteerOptions,
    stats: FiringStats,
    sweep: Sweep,
) -> SteerResult:
    """The steering run the demo shows, with the sweep that chose its strength."""
    result = run_steering(bound, [prompt], [Intervention(candidate.latent, "add", value)], options, stats)
    source = f"the top logit-effect token of latent {candidate.latent}, a word"
    return result._replace(targets=result.targets._replace(source=source), sweep=sweep)


__all__ = [
    "DEMO_PROMPT",
    "MULTIPLES",
    "TokenLatent",
    "beats_controls",
    "chosen_multiple",
    "demo_steering",
    "token_latents",
    "word_latents",
]
