"""`FusedAdam`: Adam/AdamW whose step is one pass per parameter, unit-norm decoder included.

A TopK SAE step ends with three passes over the decoder besides Adam itself: remove from each
row's gradient its component along the row (as llama3_interpretability_sae), update, rescale
each row to unit norm.
`FusedAdam(params, decoder=W_dec)` does all of that in the update's single pass over the decoder
(`triton_adam.adam_rows`) and updates every other parameter in one elementwise pass
(`triton_adam.adam_flat`). Off CUDA, or where Triton cannot run, the same update runs in plain
torch (`adam_update_reference`, also the oracle of the tests).

The math is `torch.optim.Adam` (AdamW with `decoupled_weight_decay=True`) with fp32 states, and
the state layout is torch's (`step`, `exp_avg`, `exp_avg_sq` per parameter), so `state_dict()` /
`load_state_dict()` behave as torch's do; `state_tensors()` / `load_state_tensors()` give the same
state as one flat name -> tensor mapping for safetensors checkpoints. The fused step does not
write the projected gradient back into `W_dec.grad`.

This module knows nothing about SAE architectures or training loops: the caller names the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .fallback import run_with_fallback

STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")


def adam_update_reference(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    decoupled: bool,
    project: bool = False,
    renorm: bool = False,
) -> None:
    """One in-place Adam/AdamW step of p (torch.optim.Adam's single-tensor math).

    With `project`, the component of each row's gradient along the row is removed first; with
    `renorm`, each row of p is rescaled to unit norm after the update (p must be 2-D for these).
    """
    if project:
        parallel = (g * p).sum(dim=1, keepdim=True) / (p * p).sum(dim=1, keepdim=True).clamp_min(1e-12)
        g = g - parallel * p
    if weight_decay != 0.0:
        if decoupled:
            p.mul_(1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / (1 - beta1**step))
    if renorm:
        p.div_(p.norm(dim=1, keepdim=True).clamp_min(1e-12))


def dense_flat_view(t: Tensor) -> Tensor | None:
    """A 1-D view of t's elements in storage order, or None when its storage is not dense.

    An elementwise update only needs p, g, m and v to share one layout: this lets the latent-major
    W_enc (a transposed contiguous matrix) be updated as one flat array.
    """
    if t.is_contiguous():
        return t.view(-1)
    expected = 1
    for i in sorted(range(t.dim()), key=t.stride):
        if t.size(i) != 1 and t.stride(i) != expected:
            return None
        expected *= t.size(i)
    return t.as_strided((t.numel(),), (1,))


class FusedAdam(torch.optim.Optimizer):
    """Adam/AdamW with fp32 states; `decoder` (a 2-D parameter among `params`) gets the unit-norm
    treatment: gradient projection before the update (`project_decoder_grad`) and row renormalisation
    after it (`renormalize_decoder`).

    `impl`: `auto` (Triton on CUDA, plain torch elsewhere), `triton`, or `torch` (always plain torch).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = False,
        decoder: Tensor | None = None,
        project_decoder_grad: bool = True,
        renormalize_decoder: bool = True,
        impl: str = "auto",
    ):
        if not lr >= 0.0:
            raise ConfigError(f"learning rate must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ConfigError(f"Adam betas must lie in [0, 1), got {betas}")
        if not eps >= 0.0:
            raise ConfigError(f"Adam eps must be >= 0, got {eps}")
        if not weight_decay >= 0.0:
            raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
        if impl not in ("auto", "triton", "torch"):
            raise ConfigError(f"unknown optimizer implementation {impl!r}; choose from auto, triton, torch")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)
        if decoder is not None:
            if decoder.dim() != 2:
                raise ConfigError(
                    f"the decoder must be a 2-D [latents, d_in] parameter, got shape {tuple(decoder.shape)}"
                )
            if not any(p is decoder for p in self._params()):
                raise ConfigError("the decoder passed to FusedAdam is not one of its parameters")
        self.decoder = decoder
        self.project_decoder_grad = project_decoder_grad
        self.renormalize_decoder = renormalize_decoder
        self.impl = impl

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ConfigError("FusedAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                for key in ("exp_avg", "exp_avg_sq"):
                    if state[key].stride() != p.stride():
                        # The kernels pair a parameter with its moments by memory order (torch's own
                        # load_state_dict, for one, makes moments contiguous): re-lay them like p.
                        state[key] = torch.empty_like(p, memory_format=torch.preserve_format).copy_(
                            state[key]
                        )
                state["step"] += 1
                self._update(
                    p, p.grad, state["exp_avg"], state["exp_avg_sq"], int(state["step"].item()), group
                )
        return loss

    def _update(self, p: Tensor, g: Tensor, m: Tensor, v: Tensor, step: int, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        is_decoder = p is self.decoder
        kwargs: dict[str, Any] = {
            "lr": group["lr"],
            "beta1": beta1,
            "beta2": beta2,
            "eps": group["eps"],
            "weight_decay": group["weight_decay"],
            "step": step,
            "decoupled": group["decoupled_weight_decay"],
            "project": is_decoder and self.project_decoder_grad,
            "renorm": is_decoder and self.renormalize_decoder,
        }

        def slow() -> None:
            adam_update_reference(p, g, m, v, **kwargs)

        if not self._use_triton(p):
            slow()
            return
        if g.stride() != p.stride():
            g = torch.empty_like(p).copy_(g)
        flats = [dense_flat_view(t) for t in (p, g, m, v)]
        row_wise = kwargs["project"] or kwargs["renorm"]
        if row_wise and not all(t.stride(1) == 1 for t in (p, g, m, v)):
            slow()
            return
        if not row_wise and any(f is None for f in flats):
            slow()
            return

        def fast() -> None:
            from . import triton_adam

            scalars = triton_adam.AdamScalars(
                lr=kwargs["lr"],
                beta1=beta1,
                beta2=beta2,
                eps=kwargs["eps"],
                weight_decay=kwargs["weight_decay"],
                step_size=kwargs["lr"] / (1 - beta1**step),
                bias_correction2_sqrt=math.sqrt(1 - beta2**step),
            )
            if row_wise:
                triton_adam.adam_rows(
                    p, g, m, v, scalars, kwargs["decoupled"], kwargs["project"], kwargs["renorm"]
                )
            else:
                fp, fg, fm, fv = flats
                assert fp is not None and fg is not None and fm is not None and fv is not None
                triton_adam.adam_flat(fp, fg, fm, fv, scalars, kwargs["decoupled"])

        run_with_fallback("adam_rows" if row_wise else "adam_flat", p.device, fast, slow)

    def _use_triton(self, p: Tensor) -> bool:
        if self.impl == "torch":
            return False
        if self.impl == "triton" and p.device.type == "cpu":
            # Tests: the Triton interpreter runs the kernels on CPU tensors.
            return True
        from . import resolve_impl

        return resolve_impl("triton", p.device) == "triton"

    # ----- checkpoints as flat tensors (safetensors) ---------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        """The optimizer state as `{"<i>.step" | "<i>.exp_avg" | "<i>.exp_avg_sq": tensor}`, i = the
        parameter's position over all groups. Hyperparameters are not included (they are config)."""
        out: dict[str, Tensor] = {}
        for i, p in enumerate(self._params()):
            state = self.state.get(p)
            if state:
                for key in STATE_KEYS:
                    out[f"{i}.{key}"] = state[key]
        return out

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore what `state_tensors()` returned (copies onto each parameter's device)."""
        params = self._params()
        for name in tensors:
            index, _, key = name.partition(".")
            if not index.isdigit() or int(index) >= len(params) or key not in STATE_KEYS:
                raise CheckpointError(f"optimizer state has an unexpected entry {name!r}")
        for i, p in enumerate(params):
            present = [f"{i}.{key}" in tensors for key in STATE_KEYS]
            if not any(present):
                self.state.pop(p, None)
                continue
            if not all(present):
                raise CheckpointError(f"optimizer state of parameter {i} is incomplete")
            m, v = tensors[f"{i}.exp_avg"], tensors[f"{i}.exp_avg_sq"]
            if m.shape != p.shape or v.shape != p.shape:
                raise CheckpointError(
                    f"optimizer state of parameter {i} has shape {tuple(m.shape)}, "
                    f"the parameter {tuple(p.shape)}"
                )
            exp_avg = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avg_sq = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avg.copy_(m)
            exp_avg_sq.copy_(v)
            step = tensors[f"{i}.step"].detach().to("cpu", torch.float32).reshape(())
            self.state[p] = {"step": step.clone(), "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
