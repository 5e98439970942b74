"""Small SAEs, ground-truth sparse data and a plain training loop for the SAE tests.

This module knows nothing about the trainer (`saescope.train`): its loop is the minimal one an
architecture must learn under (reconstruction + the architecture's own penalty, Adam).
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar, overload

import torch
from torch import Tensor

from saescope.kernels import sparse_encode
from saescope.sae import ForwardOutput, SAEConfig, SparseAutoencoder, get_architecture
from saescope.sae.base import fvu
from saescope.sae.init import initialize
from tests.builders import one_thread

ARCHITECTURES = ("topk", "batchtopk", "relu", "jumprelu", "matryoshka", "gated")


def k_of(architecture: str, k: int = 4) -> int | None:
    """`k` for an SAE of `architecture`: the given k where it takes one (TopK-style), else None."""
    return k if get_architecture(architecture).takes_k else None


S = TypeVar("S", bound=SparseAutoencoder)


@overload
def make_sae(
    architecture: type[S],
    d_in: int = ...,
    d_sae: int = ...,
    k: int | None = ...,
    seed: int = ...,
    kernel: str = ...,
    **hyperparams: Any,
) -> S: ...
@overload
def make_sae(
    architecture: str,
    d_in: int = ...,
    d_sae: int = ...,
    k: int | None = ...,
    seed: int = ...,
    kernel: str = ...,
    **hyperparams: Any,
) -> SparseAutoencoder: ...
def make_sae(
    architecture: str | type[SparseAutoencoder],
    d_in: int = 8,
    d_sae: int = 32,
    k: int | None = 4,
    seed: int = 0,
    kernel: str = "reference",
    **hyperparams: Any,
) -> SparseAutoencoder:
    """A float32 SAE (by registry name, or by class for a precisely typed result) with random unit
    decoder rows, encoder = decoder transpose, and small random biases (so tests exercise b_enc and
    b_dec too); `hyperparams` are the architecture's own (e.g. `jumprelu_bandwidth=0.1`)."""
    cls = get_architecture(architecture) if isinstance(architecture, str) else architecture
    cfg = SAEConfig(
        architecture=cls.architecture,
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        model="tiny",
        hookpoint="resid_post:1",
        hyperparams=hyperparams,
    )
    sae = cls(cfg)
    gen = torch.Generator().manual_seed(seed)
    initialize(sae, generator=gen, b_dec=0.1 * torch.randn(d_in, generator=gen))
    with torch.no_grad():
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen))
    sae.kernel = kernel
    return sae


def random_inputs(n: int, d_in: int, seed: int = 1) -> Tensor:
    return torch.randn(n, d_in, generator=torch.Generator().manual_seed(seed))


def sparse_dataset(n: int, d_in: int = 16, n_features: int = 48, active: int = 3, seed: int = 0) -> Tensor:
    """x = codes @ D: D [n_features, d_in] random unit rows, each row of codes with `active` features
    firing at magnitudes in [0.5, 1.5], scaled so that E‖x‖² = 1 (the trainer's normalisation)."""
    gen = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(n_features, d_in, generator=gen)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    ids = torch.rand(n, n_features, generator=gen).topk(active, dim=1).indices
    mags = 0.5 + torch.rand(n, active, generator=gen)
    codes = torch.zeros(n, n_features).scatter_(1, ids, mags)
    x = codes @ dictionary
    return x / x.pow(2).sum(1).mean().sqrt()


def step_loss(sae: SparseAutoencoder, x: Tensor) -> Tensor:
    """Sum of squared errors per row (mean over rows) + the architecture's own terms (its penalty,
    and Matryoshka's prefixes or gated's auxiliary reconstruction), on the SAE's kernel."""
    out = sae(x)
    # The selected pre-activations again, with their gradient on the SAE's own kernel path.
    selected = sparse_encode(
        x, sae.W_enc, sae.b_enc, sae.b_dec, lambda _: out.latent_indices, impl=sae.kernel
    )[0]
    own = sae.architecture_loss(x, selected, out)
    return (out.recon - x).pow(2).sum(-1).mean() + own.sparsity_loss + own.extra_loss


class TrainResult(NamedTuple):
    fvu_start: float
    """FVU on the whole dataset before training (eval mode)."""
    fvu_end: float
    """FVU on the whole dataset after training (eval mode)."""
    l0_start: float
    """Mean active latents per row before training (eval mode)."""
    l0_end: float
    """Mean active latents per row after training (eval mode)."""


def evaluate(sae: SparseAutoencoder, data: Tensor) -> tuple[float, float]:
    """(FVU, L0) of `sae` on `data` in eval mode (the mode is restored)."""
    was_training = sae.training
    sae.eval()
    with torch.no_grad():
        out = sae(data)
    sae.train(was_training)
    return float(fvu(data, out.recon)), float((out.latent_acts > 0).sum(-1).float().mean())


def train(
    sae: SparseAutoencoder,
    data: Tensor,
    steps: int = 200,
    batch: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    unit_decoder: bool = False,
) -> TrainResult:
    """Adam on random batches of `data`; returns FVU and L0 on the whole of it before and after.
    With `unit_decoder`, the decoder rows keep unit norm as the trainer keeps them (each row's
    gradient loses its component along the row, the rows are rescaled after each step).

    Runs on one thread: these tensors are tiny, and two threads competing with other work on a
    2-core machine make each step several times slower.
    """
    fvu_start, l0_start = evaluate(sae, data)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    sae.train()
    with one_thread():
        for _ in range(steps):
            x = data[torch.randint(0, data.shape[0], (batch,), generator=gen)]
            loss = step_loss(sae, x)
            opt.zero_grad()
            loss.backward()
            if unit_decoder:
                sae.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            if unit_decoder:
                sae.set_decoder_norm_to_unit_norm()
    fvu_end, l0_end = evaluate(sae, data)
    return TrainResult(fvu_start, fvu_end, l0_start, l0_end)


def parameter_grads(sae: SparseAutoencoder) -> dict[str, Tensor]:
    """Copies of every parameter's gradient (each must have one)."""
    grads = {}
    for name, p in sae.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        grads[name] = p.grad.clone()
    return grads


def gradients(sae: SparseAutoencoder, x: Tensor, kernel: str) -> dict[str, Tensor]:
    """Gradient of `step_loss` with respect to every parameter (and x), computed with `kernel`."""
    sae.kernel = kernel
    sae.zero_grad()
    x = x.clone().requires_grad_(True)
    step_loss(sae, x).backward()
    grads = {name: p.grad.clone() for name, p in sae.named_parameters() if p.grad is not None}
    assert x.grad is not None
    grads["x"] = x.grad.clone()
    return grads


def assert_same_gradients(sae: SparseAutoencoder, x: Tensor) -> dict[str, Tensor]:
    """The reference (dense autograd) and torch (sparse) kernels agree on every parameter's gradient."""
    ref = gradients(sae, x, "reference")
    fast = gradients(sae, x, "torch")
    expected = {name for name, _ in sae.named_parameters()} | {"x"}
    assert set(ref) == expected, f"reference path left {expected - set(ref)} without a gradient"
    assert set(fast) == set(ref)
    for name in ref:
        torch.testing.assert_close(fast[name], ref[name], rtol=1e-5, atol=1e-6, msg=f"gradient of {name}")
    return ref


def assert_kernels_agree(sae: SparseAutoencoder, x: Tensor) -> tuple[ForwardOutput, ForwardOutput]:
    """The reference and torch kernels give the same reconstruction and the same gradients (see
    `assert_same_gradients`); returns both forward passes (reference, torch) for further checks."""
    sae.kernel = "reference"
    ref = sae(x)
    sae.kernel = "torch"
    fast = sae(x)
    torch.testing.assert_close(fast.recon, ref.recon, rtol=1e-6, atol=1e-6)
    assert_same_gradients(sae, x)
    return ref, fast
