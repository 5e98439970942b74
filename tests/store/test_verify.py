"""`saescope verify STORE`: every file checked, every bad one named, exit status 2 when any is bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from saescope import cli
from saescope.config import VerifyConfig
from saescope.errors import StoreError
from saescope.store import read_manifest
from saescope.store.verify import verify_store

from .synthetic import feed, open_writer


@pytest.fixture
def store(tmp_path: Path) -> Path:
    out = tmp_path / "store"
    with open_writer(out, target_rows=200, shard_rows=40) as writer:
        feed(writer)
    return out


def flip_a_byte(path: Path, offset: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_sound_store_verifies(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = verify_store(VerifyConfig(store))
    manifest = read_manifest(store)
    assert result.files == 2 * len(manifest.shards) and result.rows == 200
    assert cli.main(["verify", str(store)]) == 0
    assert "match their checksums" in capsys.readouterr().out


def test_every_bad_file_is_named(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards = read_manifest(store).shards
    flip_a_byte(store / shards[0].path)
    flip_a_byte(store / shards[2].docs)
    (store / shards[3].path).unlink()
    with pytest.raises(StoreError) as info:
        verify_store(VerifyConfig(store))
    message = str(info.value)
    assert f"3 of {2 * len(shards)} files are corrupt" in message
    assert f"{shards[0].path} (sha256 mismatch)" in message
    assert f"{shards[2].docs} (sha256 mismatch)" in message
    assert f"{shards[3].path} (missing)" in message
    assert cli.main(["verify", str(store)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the (closed) progress bar
    assert last.startswith("saescope verify: error: ") and "3 of" in last


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no activation store"):
        verify_store(VerifyConfig(tmp_path))
