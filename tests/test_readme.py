"""The README's Python example runs as printed: it captures, trains, binds and encodes for real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def python_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's Python API section has no ```python block"
    return found.group(1)


def test_the_example_uses_only_the_public_api() -> None:
    imports = re.findall(r"^(?:from|import) (\S+)", python_example(), re.M)
    assert set(imports) <= {"saescope", "pathlib"}, imports


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(python_example(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.match(r"runs/notebook/sae: FVU 0\.\d+  L0 16\.0", lines[0]), lines[0]
    assert (tmp_path / "runs/notebook/sae/sae.safetensors").is_file()
    tokens = [line for line in lines[1:] if "[(" in line]
    assert len(tokens) == 7, done.stdout  # one line per token of the sentence (BOS left out)
