"""FusedAdam: the plain-torch update against torch.optim.Adam/AdamW and the SAE's decoder helpers, the
Triton kernels against that update, checkpoints of its state, bad settings."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from saescope.errors import CheckpointError, ConfigError
from saescope.kernels import triton_adam
from saescope.kernels.fused_adam import FusedAdam, adam_update_reference, dense_flat_view

from .triton_env import DEVICE

HYPER = {"lr": 3e-2, "beta1": 0.9, "beta2": 0.99, "eps": 1e-6}


def make_params(seed: int = 0) -> list[torch.Tensor]:
    """A latent-major encoder, a decoder with unit rows, two biases (random, not zeros)."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    W_enc = torch.randn(13, 7, generator=gen, device=DEVICE).t()
    W_dec = torch.randn(13, 7, generator=gen, device=DEVICE)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    b_enc = torch.randn(13, generator=gen, device=DEVICE)
    b_dec = torch.randn(7, generator=gen, device=DEVICE)
    return [t.clone().requires_grad_() for t in (W_enc, W_dec, b_enc, b_dec)]


def fill_grads(params: list[torch.Tensor], seed: int) -> None:
    gen = torch.Generator(device=DEVICE).manual_seed(1000 + seed)  # not make_params' draws
    for p in params:
        # Same strides as the parameter (what the sparse backward returns for the latent-major W_enc).
        p.grad = torch.empty_like(p).copy_(torch.randn(p.shape, generator=gen, device=DEVICE))


def project_and_renorm_helpers(W_dec: torch.Tensor) -> None:
    """The SAE base class's own helpers, inlined: the unit-norm decoder's gradient projection."""
    assert W_dec.grad is not None
    parallel = (W_dec.grad * W_dec).sum(1, keepdim=True) / (W_dec * W_dec).sum(1, keepdim=True).clamp_min(
        1e-12
    )
    W_dec.grad.sub_(parallel * W_dec)


@pytest.mark.parametrize(("weight_decay", "decoupled"), [(0.0, False), (0.1, False), (0.1, True)])
def test_reference_update_is_torch_adam(weight_decay: float, decoupled: bool) -> None:
    ours, theirs = make_params(), make_params()
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(
        theirs,
        lr=HYPER["lr"],
        betas=(HYPER["beta1"], HYPER["beta2"]),
        eps=HYPER["eps"],
        weight_decay=weight_decay,
        foreach=False,
    )
    fused = FusedAdam(
        ours,
        lr=HYPER["lr"],
        betas=(HYPER["beta1"], HYPER["beta2"]),
        eps=HYPER["eps"],
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled,
        impl="torch",
    )
    for step in range(3):
        fill_grads(ours, step)
        fill_grads(theirs, step)
        opt.step()
        fused.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_reference_decoder_update_is_projection_adam_renorm() -> None:
    ours, theirs = make_params(), make_params()
    opt = torch.optim.Adam(theirs, lr=HYPER["lr"], foreach=False)
    fused = FusedAdam(ours, lr=HYPER["lr"], decoder=ours[1], impl="torch")
    for step in range(3):
        fill_grads(ours, step)
        fill_grads(theirs, step)
        project_and_renorm_helpers(theirs[1])
        opt.step()
        with torch.no_grad():
            theirs[1].div_(theirs[1].norm(dim=1, keepdim=True))
        fused.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours[1].norm(dim=1), torch.ones(13, device=DEVICE))


def reference_then_kernel(shape: tuple[int, int], step: int, **flags: bool) -> tuple[torch.Tensor, ...]:
    p, g, m = (torch.randn(shape, device=DEVICE) for _ in range(3))
    v = torch.rand(shape, device=DEVICE)
    expected = [t.clone() for t in (p, g, m, v)]
    adam_update_reference(*expected, weight_decay=0.05, step=step, **HYPER, **flags)  # type: ignore[arg-type]
    return (p, g, m, v), tuple(expected)  # type: ignore[return-value]


def scalars(step: int, weight_decay: float = 0.05) -> triton_adam.AdamScalars:
    return triton_adam.AdamScalars(
        lr=HYPER["lr"],
        beta1=HYPER["beta1"],
        beta2=HYPER["beta2"],
        eps=HYPER["eps"],
        weight_decay=weight_decay,
        step_size=HYPER["lr"] / (1 - HYPER["beta1"] ** step),
        bias_correction2_sqrt=(1 - HYPER["beta2"] ** step) ** 0.5,
    )


@pytest.mark.parametrize("decoupled", (False, True))
def test_flat_kernel_matches_the_reference(decoupled: bool) -> None:
    (p, g, m, v), expected = reference_then_kernel((37, 29), step=3, decoupled=decoupled)
    triton_adam.adam_flat(
        p.view(-1),
        g.view(-1),
        m.view(-1),
        v.view(-1),
        scalars(3),
        decoupled,
        triton_adam.AdamConfig(flat_block=256),
    )
    for got, want in zip((p, m, v), (expected[0], expected[2], expected[3])):
        # rtol/atol allow for a GPU's fused multiply-adds (one ulp-level differences, seen on an H100)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_d", (64, 16))  # one tile per row; three sweeps of 3 tiles per row
@pytest.mark.parametrize(("project", "renorm"), [(True, True), (True, False), (False, True)])
def test_row_kernel_matches_the_reference(block_d: int, project: bool, renorm: bool) -> None:
    (p, g, m, v), expected = reference_then_kernel(
        (9, 37), step=2, decoupled=True, project=project, renorm=renorm
    )
    triton_adam.adam_rows(
        p, g, m, v, scalars(2), True, project, renorm, triton_adam.AdamConfig(row_block_d=block_d)
    )
    for got, want in zip((p, m, v), (expected[0], expected[2], expected[3])):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_triton_and_torch_optimizers_agree_over_steps() -> None:
    fast, slow = make_params(), make_params()
    opt_fast = FusedAdam(
        fast, lr=1e-2, weight_decay=0.01, decoupled_weight_decay=True, decoder=fast[1], impl="triton"
    )
    opt_slow = FusedAdam(
        slow, lr=1e-2, weight_decay=0.01, decoupled_weight_decay=True, decoder=slow[1], impl="torch"
    )
    for step in range(3):
        fill_grads(fast, step)
        fill_grads(slow, step)
        opt_fast.step()
        opt_slow.step()
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert opt_fast.state[fast[0]]["exp_avg"].stride() == fast[0].stride()


def test_dense_flat_view_follows_storage_order() -> None:
    t = torch.arange(12.0).reshape(4, 3)
    assert dense_flat_view(t.t()) is not None
    assert dense_flat_view(t.t()).tolist() == list(range(12))  # type: ignore[union-attr]
    assert dense_flat_view(t[:, :2]) is None


def test_state_tensors_round_trip_resumes_identically() -> None:
    a = make_params()
    opt_a = FusedAdam(a, lr=1e-2, decoder=a[1], impl="torch")
    for step in range(2):
        fill_grads(a, step)
        opt_a.step()
    saved = {name: t.clone() for name, t in opt_a.state_tensors().items()}
    assert set(saved) == {f"{i}.{key}" for i in range(4) for key in ("step", "exp_avg", "exp_avg_sq")}
    b = [p.detach().clone().requires_grad_() for p in a]
    opt_b = FusedAdam(b, lr=1e-2, decoder=b[1], impl="torch")
    opt_b.load_state_tensors(saved)
    assert opt_b.state[b[0]]["exp_avg"].stride() == b[0].stride()
    fill_grads(a, 5)
    fill_grads(b, 5)
    opt_a.step()
    opt_b.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    # torch's own state_dict works too (same layout as torch.optim.Adam).
    c = [p.detach().clone().requires_grad_() for p in a]
    opt_c = FusedAdam(c, lr=1e-2, decoder=c[1], impl="torch")
    opt_c.load_state_dict(opt_a.state_dict())
    assert int(opt_c.state[c[2]]["step"].item()) == 3


def test_bad_settings_and_bad_state_are_reported() -> None:
    params = make_params()
    with pytest.raises(ConfigError, match="not one of its parameters"):
        FusedAdam(params[:1], decoder=params[1])
    with pytest.raises(ConfigError, match="2-D"):
        FusedAdam(params, decoder=params[2])
    with pytest.raises(ConfigError, match="betas"):
        FusedAdam(params, betas=(0.9, 1.0))
    opt = FusedAdam(params, impl="torch")
    with pytest.raises(CheckpointError, match="shape"):
        opt.load_state_tensors(
            {"0.step": torch.tensor(1.0), "0.exp_avg": torch.zeros(3), "0.exp_avg_sq": torch.zeros(3)}
        )
    with pytest.raises(CheckpointError, match="unexpected"):
        opt.load_state_tensors({"9.step": torch.tensor(1.0)})
    with pytest.raises(CheckpointError, match="incomplete"):
        opt.load_state_tensors({"0.step": torch.tensor(1.0)})
