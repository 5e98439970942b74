"""Shard files of the activation store: safetensors written and mapped without the package.

The safetensors header is written with the data aligned to a page, so that one bf16 row of
d_model 2048 is exactly one page, and parsed here so that shards can be memory-mapped tensor by
tensor. Durable writing itself (temporary name, fsync, rename, SHA-256 while writing) is
`saescope.files`.

This module knows nothing about activations, manifests, ranks or statistics.
"""

from __future__ import annotations

import json
import mmap
import struct
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import StoreError

ALIGN = 4096
"""Data of a safetensors file we write starts at a multiple of this (the header is padded with
spaces, which the safetensors format allows)."""

MAX_HEADER_BYTES = 100_000_000
"""The safetensors format's own limit on the header size."""

TORCH_TO_SAFETENSORS: dict[torch.dtype, str] = {
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int32: "I32",
    torch.int64: "I64",
}
SAFETENSORS_TO_TORCH = {v: k for k, v in TORCH_TO_SAFETENSORS.items()}
SAFETENSORS_TO_NUMPY: dict[str, type[np.generic]] = {
    "BF16": np.uint16,  # numpy has no bfloat16: read the bits, view them as torch.bfloat16
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "I32": np.int32,
    "I64": np.int64,
}
ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I32": 4, "I64": 8}


class TensorSpec(NamedTuple):
    """Where one tensor lies inside a safetensors file."""

    dtype: str
    """Safetensors dtype code (`BF16`, `F32`, `I64`…)."""
    shape: tuple[int, ...]
    """Its shape."""
    offset: int
    """Absolute byte offset of its first element in the file."""
    nbytes: int
    """Its size in bytes."""


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a CPU tensor (no copy when it is contiguous)."""
    t = t.detach().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return array_bytes(t.numpy())


def array_bytes(a: np.ndarray) -> memoryview:
    """The raw bytes of a numpy array (no copy when it is contiguous)."""
    return np.ascontiguousarray(a).data.cast("B")


def safetensors_chunks(
    tensors: Sequence[tuple[str, str, tuple[int, ...], Sequence[memoryview]]],
    metadata: dict[str, str] | None = None,
) -> Iterator[memoryview | bytes]:
    """The bytes of a safetensors file, tensor data in the order given, starting on an ALIGN boundary.

    Each tensor is `(name, dtype code, shape, parts)`: its bytes may come in several parts (the
    rows of several batches), written one after the other without concatenating them.
    """
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, parts in tensors:
        nbytes = sum(len(p) for p in parts)
        expected = ITEMSIZE[dtype] * int(np.prod(shape, dtype=np.int64))
        if nbytes != expected:
            raise ValueError(f"tensor {name}: {nbytes} bytes for shape {shape} {dtype}")
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-(8 + len(text))) % ALIGN)
    yield struct.pack("<Q", len(text)) + text
    for _name, _dtype, _shape, parts in tensors:
        yield from parts


def read_safetensors_header(path: Path) -> tuple[dict[str, TensorSpec], dict[str, str]]:
    """Parse a safetensors header: each tensor's dtype, shape and absolute byte range, and the metadata."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise StoreError(f"{path} is not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise StoreError(f"{path} is not a safetensors file (header length {n} out of range)")
            raw = json.loads(f.read(n))
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path} is not a safetensors file (header is not JSON)") from e
    metadata = raw.pop("__metadata__", None) or {}
    specs: dict[str, TensorSpec] = {}
    for name, info in raw.items():
        try:
            begin, end = (int(v) for v in info["data_offsets"])
            spec = TensorSpec(
                str(info["dtype"]), tuple(int(s) for s in info["shape"]), 8 + n + begin, end - begin
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{path}: malformed safetensors entry for {name!r}") from e
        if spec.offset + spec.nbytes > size:
            raise StoreError(f"{path} is truncated (tensor {name!r} ends past the end of the file)")
        specs[name] = spec
    return specs, metadata


def map_file(path: Path) -> mmap.mmap:
    """Map a whole file read-only (one mapping per shard; its tensors are views into it)."""
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot map {path}: {getattr(e, 'strerror', None) or e}") from e


def mapped_array(mapping: mmap.mmap, spec: TensorSpec) -> np.ndarray:
    """A read-only numpy view of one tensor of a mapped safetensors file (bf16 as uint16 bits)."""
    count = int(np.prod(spec.shape, dtype=np.int64))
    array = np.frombuffer(mapping, dtype=SAFETENSORS_TO_NUMPY[spec.dtype], count=count, offset=spec.offset)
    return array.reshape(spec.shape)


def as_tensor(array: np.ndarray, dtype: str) -> torch.Tensor:
    """A CPU tensor sharing the memory of a (read-only) numpy array; bf16 bits viewed as bfloat16."""
    with warnings.catch_warnings():
        # torch warns that the array is not writable; nothing here writes through it
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(array)
    return t.view(torch.bfloat16) if dtype == "BF16" else t
