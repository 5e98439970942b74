"""`saescope verify STORE`: every shard and docs table of a store against its recorded size and SHA-256.

Unlike opening a store for training (which stops at the first bad file), this checks every file
and names all the bad ones. Knows nothing about how the store was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from ..config.verify import VerifyConfig
from ..errors import StoreError
from ..files import file_sha256
from .manifest import read_manifest


class VerifyResult(NamedTuple):
    """What `verify_store` checked."""

    store: Path
    """The store folder."""
    files: int
    """Files checked (shards and docs tables)."""
    bytes: int
    """Their total size."""
    rows: int
    """Rows the manifest records."""

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "files": self.files,
            "bytes": self.bytes,
            "rows": self.rows,
            "ok": True,
        }

    def render(self) -> str:
        size = f"{self.bytes / 2**20:,.1f} MiB, {self.rows:,} rows"
        return f"{self.store}: all {self.files} files ({size}) match their checksums"


def file_problem(path: Path, size: int, sha256: str, progress: Any = None) -> str | None:
    """Why `path` does not match its recorded size and SHA-256 (None when it does)."""
    if not path.is_file():
        return "missing"
    actual = path.stat().st_size
    if actual != size:
        return f"size {actual}, manifest says {size}"
    if file_sha256(path, progress) != sha256:
        return "sha256 mismatch"
    return None


def verify_store(cfg: VerifyConfig) -> VerifyResult:
    """Check every file of the store at `cfg.store`; a `StoreError` naming every bad file otherwise."""
    manifest = read_manifest(cfg.store)
    files = [(s.path, s.nbytes, s.sha256) for s in manifest.shards]
    files += [(s.docs, s.docs_nbytes, s.docs_sha256) for s in manifest.shards]
    total = sum(size for _, size, _ in files)
    problems = []
    with tqdm(total=total, unit="B", unit_scale=True, desc="verifying", leave=False) as bar:
        for rel, size, sha in files:
            problem = file_problem(cfg.store / rel, size, sha, bar)
            if problem:
                problems.append(f"{rel} ({problem})")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise StoreError(f"{cfg.store}: {len(problems)} of {len(files)} files are corrupt: {shown}")
    return VerifyResult(cfg.store, len(files), total, manifest.rows)
