"""Where the kernel tests run the Triton kernels: CPU tensors under the Triton interpreter, or a GPU.

`TRITON_INTERPRET=1` must be set before any Triton kernel is defined (the `@triton.jit` decorator
reads it), so importing this module sets it (from `conftest.py`, before the test modules import
`saescope.kernels.triton_*`) unless a CUDA device is present: then the kernels compile and run on
it (`TRITON_INTERPRET=1` in the environment forces the interpreter there too).
`SAESCOPE_TRITON_STRICT=1` turns off the plain-torch fallback, so a kernel that fails makes its
test fail instead of passing on torch.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ["SAESCOPE_TRITON_STRICT"] = "1"

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = torch.device("cpu" if INTERPRETED else "cuda")


def _interpret_triton_standard_library() -> None:
    """Re-create `tl.sum`, `tl.zeros`, `tl.cumsum`… as interpreted functions when Triton was imported
    before TRITON_INTERPRET was set (the top-level conftest imports transformers' models, which import
    Triton): they are `@triton.jit` functions themselves, and compiled-mode ones cannot be called from
    an interpreted kernel."""
    if "triton.language.standard" not in sys.modules:
        return
    import triton.language as tl
    from triton.runtime.jit import JITFunction

    if not isinstance(tl.zeros, JITFunction):
        return
    standard = importlib.reload(sys.modules["triton.language.standard"])
    for name, value in vars(tl).items():
        if isinstance(value, JITFunction) and hasattr(standard, name):
            setattr(tl, name, getattr(standard, name))


if INTERPRETED:
    _interpret_triton_standard_library()


def poisoned(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An output buffer full of a value no kernel writes (NaN, or -7 for integers)."""
    if dtype.is_floating_point:
        return torch.full(shape, float("nan"), dtype=dtype, device=DEVICE)
    return torch.full(shape, -7, dtype=dtype, device=DEVICE)
