"""Which columns each intervention covers in a left-padded batch, and that the cached passes'
windows add up to the uncached one."""

from __future__ import annotations

import pytest
import torch

from saescope.errors import SaescopeError
from saescope.steer.interventions import Intervention
from saescope.steer.places import left_pad, places_for
from tests.builders import tiny_tokenizer

PROMPTS = [[1, 2, 3, 4, 5], [7, 8], [9, 10, 11]]


def covered(where: str, **kwargs: object) -> torch.Tensor:
    batch = left_pad(PROMPTS, 0, torch.device("cpu"))
    places = places_for([Intervention(0, "add", 1.0, where=where, **kwargs)], batch, tiny_tokenizer())  # type: ignore[arg-type]
    return places.window(0, 7)[0]  # 5 prompt columns, then 2 generated ones


def test_left_padding() -> None:
    batch = left_pad(PROMPTS, 0, torch.device("cpu"))
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5], [0, 0, 0, 7, 8], [0, 0, 9, 10, 11]]
    assert batch.attention_mask.tolist() == [[1] * 5, [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]
    assert batch.pads == [0, 3, 2]
    with pytest.raises(SaescopeError, match="at least one token"):
        left_pad([[1], []], 0, torch.device("cpu"))


def test_each_place_covers_its_columns_and_never_padding() -> None:
    assert covered("all").int().tolist() == [[1] * 7, [0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]]
    assert covered("prompt").int().tolist() == [
        [1] * 5 + [0, 0],
        [0, 0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
    ]
    assert covered("generated").int().tolist() == [[0] * 5 + [1, 1]] * 3
    # positions count from each prompt's own first token; -1 is its last
    assert covered("positions", positions=(0, -1)).int().tolist() == [
        [1, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 1, 0, 0],
        [0, 0, 1, 0, 1, 0, 0],
    ]


def test_substring_covers_the_tokens_of_every_occurrence() -> None:
    tok = tiny_tokenizer()
    texts = ["The cat is on the mat, the cat", "a cat"]
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    batch = left_pad(prompts, 0, torch.device("cpu"))
    places = places_for([Intervention(0, "add", 1.0, where="substring", substring=" cat")], batch, tok)
    for row, (text, ids) in enumerate(zip(texts, prompts)):
        cols = (places.prompt[0, row].nonzero()[:, 0] - batch.pads[row]).tolist()
        assert "".join(tok.decode([ids[c]]) for c in cols) == " cat" * text.count(" cat")


def test_bad_places_name_the_prompt() -> None:
    batch = left_pad(PROMPTS, 0, torch.device("cpu"))
    with pytest.raises(SaescopeError, match=r"position 3 is beyond prompt 11 \(2 tokens: 0 to 1\)"):
        places_for(
            [Intervention(0, "add", 1.0, where="positions", positions=(3,))], batch, tiny_tokenizer(), 10
        )
    with pytest.raises(SaescopeError, match="substring 'dog' does not occur in prompt 0"):
        places_for([Intervention(0, "add", 1.0, where="substring", substring="dog")], batch, tiny_tokenizer())


def test_cached_windows_concatenate_to_the_uncached_window() -> None:
    batch = left_pad(PROMPTS, 0, torch.device("cpu"))
    items = [
        Intervention(0, "add", 1.0, where="prompt"),
        Intervention(1, "add", 1.0, where="generated"),
        Intervention(2, "add", 1.0, where="positions", positions=(1,)),
    ]
    places = places_for(items, batch, tiny_tokenizer())
    full = places.window(0, 9)
    pieces = [places.window(0, 5)] + [places.window(c, 1) for c in range(5, 9)]
    assert torch.equal(torch.cat(pieces, dim=-1), full)
