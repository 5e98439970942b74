"""Feature absorption on the first-letter task (Chanin et al. 2024, "A is for Absorption";
SAEBench's variant), offline from the tokenizer's vocabulary.

    found = measure(bound_sae)                     # or absorption_of(...) on activations you have
    found.mean_fraction, found.full_rate, found.letters, found.skipped

1. Words: letter-only vocabulary tokens (`first_letter`), read at their own token in an
   in-context prompt; a seeded split into probe-training and held-out words.
2. A linear probe per letter (one-vs-rest logistic regression, class-balanced) on the model's
   activations of the training words; its F1 on the held-out words says whether the model
   represents that letter there. Letters below `min_probe_f1` (or without held-out words) are
   skipped: listed with their F1, never averaged in.
3. k-sparse probing on the SAE's latents (training words): latents ranked by how much more they
   fire on the letter than off it; k grows from 1 while the k-latent probe's held-out F1 rises by
   more than `f1_jump` — those k latents are the letter's main latents (SAEBench).
4. On every held-out word of the letter that the probe detects (its true positives), with `p` the
   probe's unit direction and each latent's contribution to the probe projection its activation
   times (its decoder row · p) — SAEBench's activation × cosine for unit decoder rows:
   - absorption fraction: 0 when the main latents account for the whole projection `x · p` or the
     best three other latents aligned with p (cosine ≥ 0.1) contribute under 40% of it; 1 when the
     main latents contribute nothing; else the share of (main + absorbing) that the absorbing
     latents carry;
   - full absorption: no main latent fires, and the single latent contributing most (cosine with p
     ≥ 0.025) carries at least 40% of the projection.
   Per letter: the mean fraction and the full-absorption rate over its probe true positives; the
   headline numbers are their means over the letters measured.

Every number is of held-out words. `absorption_of` takes activations and the SAE's encoder, so a
constructed SAE (tests) or another architecture (benchmarks) is measured the same way.
This module knows nothing about files or the CLI.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..bound import BoundSAE
from ..config.compare import AbsorptionSettings
from ..errors import SaescopeError
from .activations import activations_at
from .first_letter import LETTERS, Word, sample_words, word_prompts
from .logistic import f1_score, fit_logistic

log = logging.getLogger(__name__)

FULL_ABSORPTION_COSINE = 0.025
"""The top contributing latent's cosine with the probe must be at least this (full absorption)."""
ABSORBER_COSINE = 0.1
"""A latent's cosine with the probe must be at least this to count as absorbing (fraction)."""
PROJECTION_SHARE = 0.4
"""Absorbing latents must carry at least this share of the probe projection (both metrics)."""
MAX_ABSORBERS = 3
"""Latents that may together compensate for an absorbed feature (fraction)."""
EPS = 1e-8


class LetterAbsorption(NamedTuple):
    """One letter measured."""

    letter: str
    """The letter."""
    probe_f1: float
    """The linear probe's F1 on the held-out words."""
    heldout_words: int
    """Held-out words starting with it."""
    main_latents: tuple[int, ...]
    """Its main latents (k-sparse probing)."""
    main_f1: float
    """The k-sparse probe's held-out F1 on them."""
    probe_true_positives: int
    """Held-out words of the letter the probe detects: what the two numbers below are over."""
    mean_fraction: float
    """Mean absorption fraction over them."""
    full_rate: float
    """Fraction of them fully absorbed."""
    full_absorptions: int
    """How many were fully absorbed."""


class SkippedLetter(NamedTuple):
    """A letter not measured, and why."""

    letter: str
    """The letter."""
    probe_f1: float | None
    """The probe's held-out F1 (None when there was nothing to fit or score)."""
    heldout_words: int
    """Held-out words starting with it."""
    reason: str
    """Why it is not averaged in."""


class Absorption(NamedTuple):
    """Absorption of one SAE on the first-letter task."""

    mean_fraction: float | None
    """Mean over the measured letters of their mean absorption fraction (None: no letter measured)."""
    full_rate: float | None
    """Mean over the measured letters of their full-absorption rate (None: no letter measured)."""
    letters: tuple[LetterAbsorption, ...]
    """The letters measured, a to z."""
    skipped: tuple[SkippedLetter, ...]
    """The letters skipped, with why."""
    vocabulary: int
    """Letter-only tokens in the tokenizer's vocabulary (0 when activations were given)."""
    train_words: int
    """Words the probes were fitted on."""
    heldout_words: int
    """Words every number is measured on."""
    settings: dict[str, Any]
    """The settings it ran with."""

    @property
    def reason(self) -> str:
        """Why nothing was averaged ("" when some letter was measured)."""
        if self.letters:
            return ""
        return (
            f"no letter measured ({len(self.skipped)} skipped: {self.skipped[0].reason}…)"
            if self.skipped
            else "no letters"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "measured": bool(self.letters),
            "reason": self.reason,
            "mean_fraction": self.mean_fraction,
            "full_rate": self.full_rate,
            "letters_measured": len(self.letters),
            "per_letter": {
                x.letter: {k: v for k, v in x._asdict().items() if k != "letter"} for x in self.letters
            },
            "skipped_letters": [x.letter for x in self.skipped],
            "skipped": [x._asdict() for x in self.skipped],
            "vocabulary_letter_tokens": self.vocabulary,
            "train_words": self.train_words,
            "heldout_words": self.heldout_words,
            "settings": self.settings,
        }


Encoder = Callable[[Tensor], Tensor]
"""Activations [n, d_in] → dense latent activations [n, d_sae]."""


def latent_codes(encode: Encoder, x: Tensor, rows: int = 1024) -> Tensor:
    """Dense latents of `x`, encoded `rows` at a time."""
    with torch.inference_mode():
        return torch.cat([encode(x[s : s + rows]).float().cpu() for s in range(0, len(x), rows)])


def ranked_latents(z: Tensor, positive: Tensor, k: int) -> list[int]:
    """The `k` latents whose mean activation is most higher on positives than on the rest."""
    difference = z[positive].mean(0) - z[~positive].mean(0)
    return difference.topk(min(k, z.shape[1])).indices.tolist()


def main_latents(
    z_train: Tensor, y_train: Tensor, z_test: Tensor, y_test: Tensor, max_k: int, f1_jump: float
) -> tuple[tuple[int, ...], float]:
    """The letter's main latents and their k-sparse probe's held-out F1 (see the module docstring)."""
    ranked = ranked_latents(z_train, y_train, max_k)
    chosen: list[int] = []
    best = -1.0
    for k in range(1, len(ranked) + 1):
        features = ranked[:k]
        probe = fit_logistic(z_train[:, features], y_train)
        score = f1_score(probe.decision(z_test[:, features])[:, 0] > 0, y_test)
        if score <= best + f1_jump:
            break
        chosen, best = features, score
    return tuple(chosen), best


def word_absorption(
    projection: float, contributions: Tensor, cosines: Tensor, main: Sequence[int], activations: Tensor
) -> tuple[float, bool]:
    """(absorption fraction, fully absorbed) of one word (SAEBench's rules, module docstring)."""
    if projection <= 0:
        return 0.0, False
    main_ids = list(main)
    main_projection = float(contributions[main_ids].sum())
    others = torch.ones(len(contributions), dtype=torch.bool)
    others[main_ids] = False
    absorbing = contributions[others & (cosines >= ABSORBER_COSINE) & (contributions > 0)]
    absorbed = (
        float(absorbing.topk(min(MAX_ABSORBERS, len(absorbing))).values.sum()) if len(absorbing) else 0.0
    )
    if main_projection >= projection or absorbed / projection < PROJECTION_SHARE:
        fraction = 0.0
    elif main_projection <= 0:
        fraction = 1.0
    else:
        part = min(absorbed, projection - main_projection)
        fraction = min(max(part / (part + main_projection), 0.0), 1.0)
    top = int(contributions.argmax())
    full = (
        bool((activations[main_ids] < EPS).all())
        and float(cosines[top]) >= FULL_ABSORPTION_COSINE
        and float(contributions[top]) / projection >= PROJECTION_SHARE
    )
    return fraction, full


def letter_absorption(
    letter: str,
    index: int,
    data: _Data,
    probe_direction: Tensor,
    w_dec: Tensor,
    settings: AbsorptionSettings,
) -> LetterAbsorption | SkippedLetter:
    """One letter: its probe F1, main latents and absorption on held-out words (or why skipped)."""
    y_train, y_test = data.train_labels == index, data.test_labels == index
    heldout = int(y_test.sum())
    if heldout == 0 or int(y_train.sum()) == 0:
        return SkippedLetter(letter, None, heldout, "no training or held-out word starts with it")
    detected = data.probe_says[:, index]
    probe_f1 = f1_score(detected, y_test)
    if probe_f1 < settings.min_probe_f1:
        return SkippedLetter(letter, probe_f1, heldout, f"probe F1 {probe_f1:.3f} < {settings.min_probe_f1}")
    main, main_f1 = main_latents(data.z_train, y_train, data.z_test, y_test, settings.max_k, settings.f1_jump)
    p = probe_direction / probe_direction.norm().clamp_min(1e-12)
    along = w_dec.float() @ p
    cosines = along / w_dec.float().norm(dim=1).clamp_min(1e-12)
    positives = (y_test & detected).nonzero().flatten().tolist()
    if not positives:
        return SkippedLetter(letter, probe_f1, heldout, "the probe detects none of its held-out words")
    fractions, fulls = [], 0
    for i in positives:
        projection = float(data.x_test[i].double() @ p.double())
        contributions = data.z_test[i] * along
        fraction, full = word_absorption(projection, contributions, cosines, main, data.z_test[i])
        fractions.append(fraction)
        fulls += int(full)
    n = len(positives)
    return LetterAbsorption(letter, probe_f1, heldout, main, main_f1, n, sum(fractions) / n, fulls / n, fulls)


class _Data(NamedTuple):
    x_test: Tensor
    train_labels: Tensor
    test_labels: Tensor
    z_train: Tensor
    z_test: Tensor
    probe_says: Tensor


def absorption_of(
    x_train: Tensor,
    letters_train: Sequence[str],
    x_test: Tensor,
    letters_test: Sequence[str],
    encode: Encoder,
    w_dec: Tensor,
    settings: AbsorptionSettings | None = None,
    vocabulary: int = 0,
) -> Absorption:
    """Absorption from activations of training and held-out words and their first letters."""
    settings = settings or AbsorptionSettings()
    index = {letter: i for i, letter in enumerate(LETTERS)}
    train_labels = torch.tensor([index[c] for c in letters_train])
    test_labels = torch.tensor([index[c] for c in letters_test])
    present = [i for i in range(len(LETTERS)) if 0 < int((train_labels == i).sum()) < len(train_labels)]
    if not present:
        raise SaescopeError("the first-letter training words do not cover two letters: nothing to probe")
    one_hot = torch.stack([train_labels == i for i in present], dim=1)
    probe = fit_logistic(x_train, one_hot)
    says = torch.zeros(len(x_test), len(LETTERS), dtype=torch.bool)
    says[:, present] = probe.decision(x_test) > 0
    directions = torch.zeros(len(LETTERS), x_train.shape[1], dtype=torch.float64)
    directions[present] = probe.direction()
    data = _Data(
        x_test, train_labels, test_labels, latent_codes(encode, x_train), latent_codes(encode, x_test), says
    )
    found = [
        letter_absorption(letter, i, data, directions[i].float(), w_dec.detach().cpu(), settings)
        for i, letter in enumerate(LETTERS)
    ]
    letters = [m for m in found if isinstance(m, LetterAbsorption)]
    skipped = [s for s in found if isinstance(s, SkippedLetter)]
    mean = sum(m.mean_fraction for m in letters) / len(letters) if letters else None
    full = sum(m.full_rate for m in letters) / len(letters) if letters else None
    return Absorption(
        mean,
        full,
        tuple(letters),
        tuple(skipped),
        vocabulary,
        len(x_train),
        len(x_test),
        settings_json(settings),
    )


def settings_json(settings: AbsorptionSettings) -> dict[str, Any]:
    return {
        **settings.__dict__,
        "full_absorption_cosine": FULL_ABSORPTION_COSINE,
        "absorber_cosine": ABSORBER_COSINE,
        "projection_share": PROJECTION_SHARE,
        "max_absorbers": MAX_ABSORBERS,
    }


class WordActivations(NamedTuple):
    """Activations of first-letter words, split into probe-training and held-out words."""

    x_train: Tensor
    """[n_train, d_in]."""
    train: list[Word]
    """The training words."""
    x_test: Tensor
    """[n_test, d_in]."""
    test: list[Word]
    """The held-out words."""
    vocabulary: int
    """Letter-only tokens in the vocabulary."""


def word_activations(bound: BoundSAE, settings: AbsorptionSettings) -> WordActivations:
    """The model's activations at each sampled word in its prompt, split (seeded)."""
    tokenizer = bound.loaded_model.tokenizer
    sample = sample_words(tokenizer, settings.words, settings.icl_examples, settings.min_words, settings.seed)
    prompts = word_prompts(tokenizer, sample.probed, sample.examples, settings.context_len)
    rows = activations_at(
        bound, prompts.sequences, prompts.positions, settings.batch_size, "first-letter words"
    )
    x = torch.cat(rows)
    words = [w for ws in prompts.words for w in ws]
    order = list(range(len(words)))
    random.Random(settings.seed + 1).shuffle(order)
    cut = len(order) - max(1, round(settings.heldout_fraction * len(order)))
    train, test = sorted(order[:cut]), sorted(order[cut:])
    return WordActivations(
        x[train], [words[i] for i in train], x[test], [words[i] for i in test], sample.vocabulary
    )


def measure(
    bound: BoundSAE, settings: AbsorptionSettings | None = None, words: WordActivations | None = None
) -> Absorption:
    """Absorption of a bound SAE (see the module docstring); SaescopeError when its tokenizer has
    too few letter-only tokens. `words`: the word activations `word_activations` read with these
    settings, when the caller has them (sparse probing's first-letter task reads the same)."""
    settings = settings or AbsorptionSettings()
    words = words if words is not None else word_activations(bound, settings)
    log.info(
        "absorption: %d training and %d held-out words of %d letter-only tokens",
        len(words.train),
        len(words.test),
        words.vocabulary,
    )
    sae = bound.sae
    return absorption_of(
        words.x_train,
        [w.letter for w in words.train],
        words.x_test,
        [w.letter for w in words.test],
        lambda x: sae.encode_dense(x.to(sae.W_dec.device)),
        sae.W_dec,
        settings,
        words.vocabulary,
    )


__all__ = [
    "Absorption",
    "LetterAbsorption",
    "SkippedLetter",
    "WordActivations",
    "absorption_of",
    "measure",
    "word_activations",
]
