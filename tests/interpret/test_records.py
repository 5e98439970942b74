"""Records, marking and example selection: the shapes every other part of `interpret` relies on."""

from __future__ import annotations

import pytest

from saescope.example import Example
from saescope.interpret.records import LatentRecord, active_tokens, mark_active, scale_0_10
from saescope.interpret.sampling import held_out_mix, quantile_bins, select_examples


def ex(acts: list[float], tokens: list[str] | None = None) -> Example:
    tokens = tokens or [f" t{i}" for i in range(len(acts))]
    return Example(tuple(tokens), tuple(acts), 0, 0, max(acts, default=0.0))


def test_mark_active_merges_adjacent_tokens_and_keeps_spaces_outside() -> None:
    e = ex([0, 5, 4, 0, 1, 10], [" the", " cat", " sat", " on", " a", " mat"])
    # 0.3 × 10 = 3: " cat" and " sat" (adjacent, merged) and " mat"; " a" (1) stays unmarked
    assert mark_active(e) == " the <<cat sat>> on a <<mat>>"
    assert mark_active(e, fraction=0.05) == " the <<cat sat>> on <<a mat>>"
    assert active_tokens(e) == [(" cat", 5.0), (" sat", 4.0), (" mat", 10.0)]


def test_mark_active_of_a_silent_example_marks_nothing() -> None:
    e = ex([0, 0], ["a", "b"])
    assert mark_active(e) == "ab" and not e.fires


def test_scale_0_10() -> None:
    assert scale_0_10([0, 2.5, 5, 10, 12], 10) == [0, 2, 5, 10, 10]
    assert scale_0_10([1, 2], 0) == [0, 0]


def test_record_splits_held_out_by_firing() -> None:
    on, off = ex([0, 1]), ex([0, 0])
    r = LatentRecord(3, (on,), (on, off, off))
    assert r.held_out_active == (on,) and r.held_out_inactive == (off, off)
    assert r.n_firings == 1  # from the train examples when `count` is unknown


def test_example_selection_strategies() -> None:
    examples = [ex([float(i + 1)]) for i in range(20)]
    top = select_examples(examples, 4, "top")
    assert [e.max_activation for e in top] == [20, 19, 18, 17]
    spread = select_examples(examples, 4, "quantiles", n_bins=4)
    # one from each quartile: (20..16], (15..11], (10..6], (5..1]
    assert sorted(int(e.max_activation - 1) // 5 for e in spread) == [0, 1, 2, 3]
    mixed = select_examples(examples, 6, "mixed")
    assert [e.max_activation for e in mixed[:3]] == [20, 19, 18] and len(mixed) == 6
    assert len({id(e) for e in mixed}) == 6
    assert select_examples(examples, 4, "quantiles", seed=1) == select_examples(
        examples, 4, "quantiles", seed=1
    )
    with pytest.raises(ValueError, match="unknown example strategy"):
        select_examples(examples, 4, "best")  # type: ignore[arg-type]


def test_held_out_mix_balances_quantiles_and_negatives() -> None:
    active = [ex([float(i + 1)]) for i in range(40)]
    inactive = [ex([0.0]) for _ in range(100)]
    mix = held_out_mix(active, inactive, per_bin=3, n_bins=4, seed=0)
    positives = [e for e, fires in mix if fires]
    assert len(positives) == 12 and sum(1 for _, fires in mix if not fires) == 12
    bins = quantile_bins(active, 4)
    assert all(sum(1 for p in positives if any(p is b for b in bin_)) == 3 for bin_ in bins)
    assert mix == held_out_mix(active, inactive, per_bin=3, n_bins=4, seed=0)
