"""The parts of a run folder, found through the run layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from saescope.errors import SaescopeError
from saescope.web.run import find_run_parts


def test_a_full_run(run: Path) -> None:
    parts = find_run_parts(run)
    assert parts.sae == run / "sae" and parts.index_dir == run / "index" and parts.acts is None
    assert parts.sae_cfg is not None and parts.sae_cfg["d_sae"] == 40
    assert parts.eval is not None and "reconstruction" in parts.eval
    assert parts.images == ("eval_density.png",)
    assert parts.image("eval_density.png") == run / "sae" / "eval_density.png"
    assert parts.image("../cfg.json") is None and parts.image("training_curves.png") is None


def test_whatever_parts_exist(run: Path, tmp_path: Path) -> None:
    shutil.copytree(run / "sae", tmp_path / "only" / "sae")
    parts = find_run_parts(tmp_path / "only")
    assert parts.sae is not None and parts.index_dir is None and parts.eval is not None
    (tmp_path / "broken" / "index").mkdir(parents=True)
    (tmp_path / "broken" / "index" / "index.json").write_text("{not json")
    shutil.copytree(run / "sae", tmp_path / "broken" / "sae")
    assert find_run_parts(tmp_path / "broken").index_dir is None  # an unreadable index is left out


def test_no_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SaescopeError, match="no such folder"):
        find_run_parts(tmp_path / "missing")
    with pytest.raises(SaescopeError, match="holds no run parts"):
        find_run_parts(tmp_path)
