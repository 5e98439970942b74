"""Durable files: atomic writes, directory fsync, JSON in and out, checksums, one dtype table.

Every file saescope writes becomes visible under its final name only once complete: it is written
to a temporary name in the same folder (a dot in front, `.tmp` at the end), flushed, fsynced,
renamed, and the folder is fsynced, so a process killed at any moment leaves either the old file
or the new one (plus, at worst, a temporary file that the next run ignores). A file's SHA-256 is
computed from the bytes as they are written, never by reading the file back.

`json_safe` is the one normaliser of values headed for JSON: paths become strings, tuples lists,
numpy and torch scalars Python numbers, and NaN/±inf become `null` (strict readers — jq,
JavaScript — reject a document holding them).

This module is the ground floor: it knows nothing about models, stores, SAEs or stages, and
imports torch only when a dtype is asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from .errors import SaescopeError

if TYPE_CHECKING:
    import torch

WRITE_CHUNK = 16 << 20
"""Bytes handed to one `write` call (and one SHA-256 update)."""


class Written(NamedTuple):
    """A file that was written durably."""

    path: Path
    """Its final path."""
    size: int
    """Its size in bytes."""
    sha256: str
    """Hex SHA-256 of its bytes, computed while writing."""


class TempFile(NamedTuple):
    """A file fully written under its temporary name, not yet durable nor visible."""

    tmp: Path
    final: Path
    size: int
    sha256: str


# ----- atomic writes ------------------------------------------------------------------------------
def temp_path(final: Path) -> Path:
    """The temporary name `final` is written under (same folder, so the rename is atomic)."""
    return final.with_name(f".{final.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temporary names."""
    return name.startswith(".") and name.endswith(".tmp")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (a no-op where a folder cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_all(f: BinaryIO, data: memoryview) -> None:
    """Write every byte of `data` (a raw file may write less than asked)."""
    while len(data):
        n = f.write(data)
        if n is None:  # pragma: no cover - only non-blocking files return None
            raise OSError("non-blocking write")
        data = data[n:]


def write_temp(final: Path, chunks: Iterable[bytes | memoryview]) -> TempFile:
    """Write `chunks` under `final`'s temporary name, hashing in parallel with writing.

    hashlib and file writes both release the GIL: the SHA-256 of each chunk runs in a helper
    thread while the chunk is written, so a large file costs max(hash, write), not their sum.
    The file gets the usual permissions (0666 less the umask). Removed again on failure.
    """
    tmp = temp_path(final)
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            open(tmp, "wb", buffering=0) as f,
            ThreadPoolExecutor(1, thread_name_prefix="saescope-sha256") as pool,
        ):
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                for start in range(0, len(view), WRITE_CHUNK):
                    part = view[start : start + WRITE_CHUNK]
                    hashed = pool.submit(digest.update, part)
                    write_all(f, part)  # type: ignore[arg-type]
                    hashed.result()
                    size += len(part)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return TempFile(tmp, final, size, digest.hexdigest())


def publish(files: Sequence[TempFile]) -> list[Written]:
    """Make written temporary files durable and visible: fsync each, rename, fsync their folders.

    On failure the temporary files are removed (a file already renamed stays: the caller decides).
    """
    try:
        for t in files:
            fd = os.open(t.tmp, os.O_WRONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for t in files:
            os.replace(t.tmp, t.final)
    except BaseException:
        for t in files:
            t.tmp.unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(t.final.parent for t in files):
        fsync_dir(folder)
    return [Written(t.final, t.size, t.sha256) for t in files]


def write_atomic(path: Path, data: bytes | str | Iterable[bytes | memoryview]) -> Written:
    """Write `data` (bytes, text as UTF-8, or byte chunks) to `path` durably and atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    chunks: Iterable[bytes | memoryview] = [data] if isinstance(data, (bytes, bytearray)) else data
    return publish([write_temp(Path(path), chunks)])[0]


def write_json(path: Path, obj: Any, indent: int | None = 1) -> Written:
    """Write `obj` (through `json_safe`) as a JSON document to `path`, durably and atomically."""
    text = json.dumps(json_safe(obj), indent=indent, ensure_ascii=False)
    return write_atomic(Path(path), text + "\n")


def write_safetensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Written:
    """Write contiguous CPU copies of `tensors` as a safetensors file, durably and atomically."""
    from safetensors.torch import save

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return write_atomic(Path(path), save(cpu, metadata=metadata))


# ----- reading ------------------------------------------------------------------------------------
def read_json(path: Path, error: type[SaescopeError] = SaescopeError, what: str = "") -> Any:
    """The JSON document at `path`; a missing, unreadable or malformed file raises `error` naming it
    (`what` says what the file should have been, e.g. "an SAE config")."""
    path = Path(path)
    suffix = f" ({what})" if what else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"missing {path.name} in {path.parent}{suffix}") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a file{suffix}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {path}{suffix}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"cannot read {path}{suffix}: unreadable or not valid JSON ({e})") from None


def read_json_object(
    path: Path, error: type[SaescopeError] = SaescopeError, what: str = ""
) -> dict[str, Any]:
    """Like `read_json`, and the document must be a JSON object."""
    data = read_json(path, error, what)
    if not isinstance(data, dict):
        raise error(f"{path} does not hold a JSON object" + (f" ({what})" if what else ""))
    return data


def file_sha256(path: Path, progress: Any = None) -> str:
    """SHA-256 of a file read in chunks (`progress.update(nbytes)` is called if given)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            block = f.read(WRITE_CHUNK)
            if not block:
                break
            digest.update(block)
            if progress is not None:
                progress.update(len(block))
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """Hex SHA-256 of a string's UTF-8 bytes (cache keys, fingerprints of settings)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----- JSON values --------------------------------------------------------------------------------
def json_safe(obj: Any) -> Any:
    """`obj` as plain JSON values (see the module docstring); dataclasses and NamedTuples become
    objects, anything else unknown its `str`."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if hasattr(obj, "_asdict"):  # a NamedTuple
        return {k: json_safe(v) for k, v in obj._asdict().items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: json_safe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy and torch scalars and arrays
    if callable(tolist):
        return json_safe(tolist())
    return str(obj)


def json_roundtrip(obj: Any) -> Any:
    """`obj` as it reads back from a JSON file (tuples become lists…), so settings compare exactly."""
    return json.loads(json.dumps(json_safe(obj)))


# ----- dtypes -------------------------------------------------------------------------------------
DTYPE_NAMES = ("float32", "bfloat16", "float16", "float64")
"""Floating-point dtypes saescope reads and writes, by torch name."""


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a name (`bfloat16`, `torch.float32`, …); SaescopeError for anything else."""
    import torch

    key = str(name).removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise SaescopeError(f"unknown dtype {name!r}; choose from {', '.join(DTYPE_NAMES)}")
    dtype: torch.dtype = getattr(torch, key)
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.bfloat16` -> `"bfloat16"`."""
    return str(dtype).removeprefix("torch.")


__all__ = [
    "DTYPE_NAMES",
    "TempFile",
    "Written",
    "dtype_name",
    "file_sha256",
    "fsync_dir",
    "is_temp_name",
    "json_roundtrip",
    "json_safe",
    "publish",
    "read_json",
    "read_json_object",
    "temp_path",
    "text_sha256",
    "torch_dtype",
    "write_all",
    "write_atomic",
    "write_json",
    "write_safetensors",
    "write_temp",
]
