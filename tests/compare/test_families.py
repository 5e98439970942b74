"""Feature families: one latent split into three in a larger SAE is found exactly (and nothing
else is), from either side of the comparison; co-activation drops children that never fire with
their parent."""

from __future__ import annotations

import numpy as np

from saescope.compare.families import find_families
from saescope.compare.matching import match_decoders

from .builders import split_pair


def test_one_latent_split_into_three_is_the_one_family() -> None:
    pair = split_pair()
    m = match_decoders(pair.small, pair.large)
    found = find_families(m.b_to_a.latent, m.b_to_a.cosine, min_cosine=0.5)
    assert [f.parent for f in found.families] == [0]
    assert tuple(sorted(c.latent for c in found.families[0].children)) == pair.children
    assert all(0.5 <= c.cosine < 0.95 for c in found.families[0].children)
    assert all(c.coactivation is None for c in found.families[0].children)  # not measured
    assert found.min_coactivation is None
    # every copied latent matched one to one: a child each, no family
    assert found.children_considered == len(pair.small) - 1 + 3


def test_the_same_families_whichever_sae_is_given_first() -> None:
    pair = split_pair(seed=3)
    m = match_decoders(pair.large, pair.small)
    found = find_families(m.a_to_b.latent, m.a_to_b.cosine)
    assert len(found.families) == 1 and found.families[0].parent == 0
    assert tuple(sorted(c.latent for c in found.families[0].children)) == pair.children


def test_children_that_rarely_fire_with_their_parent_are_dropped() -> None:
    pair = split_pair(seed=4)
    m = match_decoders(pair.small, pair.large)
    weak = pair.children[0]

    def coactivation(parents: list[int], children: list[int]) -> np.ndarray:
        return np.array([0.1 if c == weak else 0.9 for c in children])

    found = find_families(m.b_to_a.latent, m.b_to_a.cosine, 0.5, coactivation, 0.5)
    (family,) = found.families
    assert weak not in [c.latent for c in family.children] and len(family.children) == 2
    assert found.dropped_by_coactivation == 1 and found.min_coactivation == 0.5
    assert all(c.coactivation == 0.9 for c in family.children)
    # with a stricter bar none is left with two children: no family, said as zero families
    none = find_families(m.b_to_a.latent, m.b_to_a.cosine, 0.5, coactivation, 0.95)
    assert none.families == () and none.children_considered > 0
