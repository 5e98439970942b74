"""The arithmetic of an edit against dense, hand-written formulas: the SAE's error is kept exactly,
ablation moves x by exactly −a·d, neutral edits change nothing, splicing equals the edited
reconstruction, conditional edits skip silent positions, and the random-direction control keeps
the edit's norm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from saescope.sae import SparseAutoencoder
from saescope.steer.edit import Steering
from saescope.steer.interventions import Intervention, SteeringError

from .builders import topk_sae


@pytest.fixture(scope="module")
def sae(tiny_model_dir: Path) -> SparseAutoencoder:
    return topk_sae(tiny_model_dir)


def inputs(n: int = 40, seed: int = 3) -> Tensor:
    return 0.5 * torch.randn(n, 32, generator=torch.Generator().manual_seed(seed))


def firing_latent(sae: SparseAutoencoder, x: Tensor) -> tuple[int, Tensor]:
    """A latent that fires on some rows (and not all), with its dense activations [n]."""
    dense = sae.encode_dense(x)
    fires = (dense > 0).float().mean(0)
    latent = int(((fires - 0.5).abs()).argmin())
    assert 0 < fires[latent] < 1
    return latent, dense[:, latent]


def edit(sae: SparseAutoencoder, x: Tensor, *items: Intervention, splice: bool = False) -> Tensor:
    masks = torch.ones(x.shape[0], len(items), dtype=torch.bool)
    with torch.no_grad():
        return Steering(sae, items, splice).edit(x, masks)


def dense_edit(sae: SparseAutoencoder, x: Tensor, latent: int, new: Tensor, splice: bool) -> Tensor:
    """x + decode(f') − decode(f) (or decode(f')) with dense latent vectors, written out."""
    f = sae.encode_dense(x)
    f_new = f.clone()
    f_new[:, latent] = new
    decode = lambda z: z @ sae.W_dec + sae.b_dec  # noqa: E731
    return decode(f_new) if splice else x + decode(f_new) - decode(f)


@torch.no_grad()
def test_ablation_moves_the_activation_by_exactly_minus_a_d(sae: SparseAutoencoder) -> None:
    x = inputs()
    latent, a = firing_latent(sae, x)
    out = edit(sae, x, Intervention(latent, "ablate"))
    torch.testing.assert_close(out - x, -a[:, None] * sae.W_dec[latent], rtol=0, atol=1e-6)
    assert torch.equal(out[a == 0], x[a == 0])  # nothing to remove where it does not fire


@torch.no_grad()
@pytest.mark.parametrize("splice", [False, True])
@pytest.mark.parametrize(
    ("mode", "value", "new"),
    [
        ("add", 2.5, lambda a: a + 2.5),
        ("clamp", 3.0, lambda a: torch.full_like(a, 3.0)),
        ("scale", -1.5, lambda a: -1.5 * a),
        ("ablate", 0.0, lambda a: torch.zeros_like(a)),
    ],
)
def test_every_mode_matches_the_dense_formula(
    sae: SparseAutoencoder, splice: bool, mode: str, value: float, new
) -> None:  # type: ignore[no-untyped-def]
    x = inputs()
    latent, a = firing_latent(sae, x)
    out = edit(sae, x, Intervention(latent, mode, value), splice=splice)  # type: ignore[arg-type]
    torch.testing.assert_close(out, dense_edit(sae, x, latent, new(a), splice), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_neutral_edits_leave_the_activation_unchanged(sae: SparseAutoencoder) -> None:
    x = inputs()
    latent, _ = firing_latent(sae, x)
    assert torch.equal(edit(sae, x, Intervention(latent, "add", 0.0)), x)  # bit for bit
    assert torch.equal(edit(sae, x, Intervention(latent, "scale", 1.0)), x)
    one = x[:1]  # clamping to its own current value at one row
    clamped = edit(sae, one, Intervention(latent, "clamp", float(sae.encode_dense(one)[0, latent])))
    torch.testing.assert_close(clamped, one, rtol=1e-6, atol=1e-7)


@torch.no_grad()
def test_several_latents_add_up_and_conditional_skips_silent_rows(sae: SparseAutoencoder) -> None:
    x = inputs()
    latent, a = firing_latent(sae, x)
    other = (latent + 1) % sae.d_sae
    both = edit(sae, x, Intervention(latent, "add", 1.0, conditional=True), Intervention(other, "add", -2.0))
    expected = x + (a > 0).float()[:, None] * sae.W_dec[latent] - 2.0 * sae.W_dec[other]
    torch.testing.assert_close(both, expected, rtol=0, atol=1e-6)


@torch.no_grad()
def test_masks_select_rows_and_apply_leaves_other_rows_bitwise(sae: SparseAutoencoder) -> None:
    act = inputs(12).reshape(2, 6, 32)
    masks = torch.zeros(1, 2, 6, dtype=torch.bool)
    masks[0, 1, 2:4] = True
    steering = Steering(sae, (Intervention(5, "add", 3.0),))
    out = steering.apply(act, masks)
    assert torch.equal(out[~masks[0]], act[~masks[0]])
    torch.testing.assert_close(out[masks[0]], act[masks[0]] + 3.0 * sae.W_dec[5], rtol=0, atol=1e-6)
    assert steering.apply(act, torch.zeros_like(masks)) is act  # nothing covered: not even a copy


@torch.no_grad()
def test_random_direction_control_keeps_the_norm_of_the_edit(sae: SparseAutoencoder) -> None:
    x = inputs()
    latent, _ = firing_latent(sae, x)
    item = Intervention(latent, "clamp", 2.0)
    direction = torch.randn(32)
    direction /= direction.norm()
    masks = torch.ones(x.shape[0], 1, dtype=torch.bool)
    steered = Steering(sae, (item,)).edit(x, masks) - x
    control = Steering(sae, (item,), direction=direction).edit(x, masks) - x
    torch.testing.assert_close(control.norm(dim=1), steered.norm(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(control, control.norm(dim=1, keepdim=True) * direction, rtol=1e-5, atol=1e-6)


def test_an_absurd_or_overflowing_edit_is_refused_wherever_it_applies(sae: SparseAutoencoder) -> None:
    """The size checked before generating cannot foresee a latent that first fires on a generated
    token: every forward pass refuses an edit 1000x the activation it changes, or one that is not
    finite, instead of generating garbage."""
    x = inputs()
    latent, _ = firing_latent(sae, x)
    masks = torch.ones(1, 1, x.shape[0], dtype=torch.bool)
    big = Steering(sae, (Intervention(latent, "scale", 1e30),))
    with pytest.raises(SteeringError, match="more than 1000x the norm of the activation it changes"):
        big.apply(x[None], masks)
    overflow = Steering(sae, (Intervention(latent, "add", 1e39),))
    with pytest.raises(SteeringError, match="not finite"):
        overflow.apply(x[None], masks)
    fine = Steering(sae, (Intervention(latent, "scale", 5.0),))
    assert torch.isfinite(fine.apply(x[None], masks)).all()
