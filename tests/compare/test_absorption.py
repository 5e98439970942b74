"""Absorption: a constructed SAE whose latent for `a` is absorbed on a known set of words gives
exactly that rate; letters the probe cannot find are listed as skipped, not averaged; a tokenizer
with too few letter-only tokens is a one-line error."""

from __future__ import annotations

import pytest
import torch

from saescope.compare.absorption import absorption_of
from saescope.compare.first_letter import letter_tokens, sample_words, word_prompts
from saescope.config.compare import AbsorptionSettings
from saescope.errors import SaescopeError
from tests.builders import one_thread, tiny_tokenizer

from .builders import absorbing_sae, letter_activations


def test_a_planted_absorbing_latent_gives_the_planted_rate() -> None:
    data = letter_activations(per_letter=30)
    sae = absorbing_sae()
    with one_thread():
        found = absorption_of(
            data.x_train, data.letters_train, data.x_test, data.letters_test, sae.encode_dense, sae.W_dec
        )
    planted = data.absorbed_test / data.a_test
    assert planted == pytest.approx(1 / 3)
    a = found.letters[0]
    assert a.letter == "a" and a.main_latents == (0,)
    assert a.probe_true_positives == 30 and a.heldout_words == 30
    assert a.full_rate == pytest.approx(planted) and a.full_absorptions == data.absorbed_test
    assert a.mean_fraction == pytest.approx(planted)
    others = [x for x in found.letters if x.letter != "a"]
    assert len(others) == 25 and all(x.full_rate == 0 and x.mean_fraction == 0 for x in others)
    assert found.full_rate == pytest.approx(planted / 26)
    assert found.skipped == () and found.heldout_words == 26 * 30


def test_letters_the_probe_cannot_find_are_skipped_not_averaged() -> None:
    data = letter_activations(per_letter=30, seed=1)
    gen = torch.Generator().manual_seed(9)
    # the words of `z` look like words of other letters: its probe cannot find them on held-out words
    for x, letters in ((data.x_train, data.letters_train), (data.x_test, data.letters_test)):
        for i, letter in enumerate(letters):
            if letter == "z":
                x[i] = 0.05 * torch.randn(x.shape[1], generator=gen)
                x[i, 1 + i % 24] += 3.0
    sae = absorbing_sae()
    with one_thread():
        found = absorption_of(
            data.x_train, data.letters_train, data.x_test, data.letters_test, sae.encode_dense, sae.W_dec
        )
    assert [s.letter for s in found.skipped] == ["z"]
    assert found.skipped[0].probe_f1 is not None and found.skipped[0].probe_f1 < 0.6
    assert len(found.letters) == 25
    assert found.full_rate == pytest.approx((data.absorbed_test / data.a_test) / 25)
    assert found.to_json()["skipped_letters"] == ["z"]


def test_too_few_letter_only_tokens_is_an_error() -> None:
    tok = tiny_tokenizer()
    assert len(letter_tokens(tok)) < 260
    with pytest.raises(SaescopeError, match="letter-only tokens, fewer than the 260") as raised:
        sample_words(tok, 100, 10, AbsorptionSettings().min_words, 0)
    assert "\n" not in str(raised.value)


def test_each_word_is_read_at_its_own_token_before_its_answer() -> None:
    tok = tiny_tokenizer()
    words = letter_tokens(tok)
    assert all(w.text.strip().isalpha() for w in words)
    prompts = word_prompts(tok, words[10:40], words[:3], context_len=128)
    assert len(prompts.sequences) > 1  # packed into several prompts of at most 128 tokens
    for sequence, positions, probed in zip(prompts.sequences, prompts.positions, prompts.words):
        assert len(sequence) <= 128 and sequence[0] == tok.bos_token_id
        for p, w in zip(positions, probed):
            assert sequence[p] == w.token_id
            line = tok.decode(sequence[p:]).split("\n")[0]
            assert line == f"{w.text} has the first letter: {w.letter.upper()}"
