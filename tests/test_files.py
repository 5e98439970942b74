"""`saescope.files`: atomic writes, JSON in and out, checksums, the JSON normaliser, the dtype table."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import pytest
import torch

from saescope import files
from saescope.errors import SaescopeError, StoreError


def test_atomic_write_reports_size_and_sha256_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    written = files.write_atomic(target, [b"abc", memoryview(b"def")])
    assert target.read_bytes() == b"abcdef" and written.size == 6
    assert written.sha256 == hashlib.sha256(b"abcdef").hexdigest() == files.file_sha256(target)
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    mode = target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # the usual permissions, not a temp file's private ones


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.json"
    files.write_json(target, {"old": True})

    def broken(f: BinaryIO, data: memoryview) -> None:
        f.write(data[:3])
        raise OSError("disk full")

    monkeypatch.setattr(files, "write_all", broken)
    with pytest.raises(OSError, match="disk full"):
        files.write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SaescopeError, match=r"missing nope.json in .* \(a thing\)"):
        files.read_json(tmp_path / "nope.json", what="a thing")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StoreError, match=r"cannot read .*bad\.json: unreadable or not valid JSON"):
        files.read_json(tmp_path / "bad.json", StoreError)
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(SaescopeError, match="does not hold a JSON object"):
        files.read_json_object(tmp_path / "list.json")


class Pair(NamedTuple):
    a: float
    b: Path


def test_json_safe_gives_strict_json() -> None:
    value = {
        "nan": math.nan,
        "inf": -math.inf,
        "path": Path("/x"),
        "tuple": (1, 2),
        "np": np.float32(1.5),
        "arr": np.arange(3),
        "tensor": torch.tensor([0.5, 1.0]),
        "scalar": torch.tensor(3),
        "pair": Pair(2.0, Path("y")),
        7: "int key",
    }
    safe = files.json_safe(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == {
        "nan": None,
        "inf": None,
        "path": "/x",
        "tuple": [1, 2],
        "np": 1.5,
        "arr": [0, 1, 2],
        "tensor": [0.5, 1.0],
        "scalar": 3,
        "pair": {"a": 2.0, "b": "y"},
        "7": "int key",
    }
    assert files.json_roundtrip({"t": (1, (2, 3))}) == {"t": [1, [2, 3]]}


def test_dtype_table() -> None:
    assert files.torch_dtype("bfloat16") is torch.bfloat16
    assert files.torch_dtype("torch.float16") is torch.float16
    assert files.dtype_name(torch.float32) == "float32"
    with pytest.raises(SaescopeError, match="unknown dtype 'int8'"):
        files.torch_dtype("int8")
