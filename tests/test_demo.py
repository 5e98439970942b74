"""`saescope demo --quick`: every stage of the pipeline on the embedded SmolLM2-135M, run twice
(the second run reuses what the first made)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from saescope import cli


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_the_quick_demo_runs_every_stage_and_reuses_what_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--quick", "--out", str(out)]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out
    trained = re.search(r"k=16: FVU ([0-9.]+), L0 ([0-9.]+), dead ([0-9.]+)%", summary)
    assert trained is not None, summary
    fvu, l0, dead = (float(v) for v in trained.groups())
    assert 0 < fvu < 1 and l0 == 16.0 and 0 <= dead <= 100
    assert re.search(r"\[eval\] +[0-9,]+ held-out tokens: FVU 0\.[0-9]+, L0 16\.0", summary), summary
    assert "CE-loss recovered" in summary
    assert f"indexed 4,096 tokens of {out / 'sae'}" in summary
    assert "explained by statistics:" in summary and "top examples:" in summary
    assert "unsteered:" in summary and "random latent:" in summary and "random direction:" in summary
    assert f"open {out / 'dashboard' / 'index.html'}" in summary
    assert f"saescope serve {out}" in summary

    assert json.loads((out / "index" / "index.json").read_text())["complete"] is True
    assert (out / "dashboard" / "index.html").is_file() and (out / "sae" / "eval.json").is_file()
    store, sae = files(out / "acts"), (out / "sae" / "sae.safetensors").read_bytes()
    postings = files(out / "index" / "postings")

    assert cli.main([*argv, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["trained"] is None  # the SAE was reused, not retrained
    assert files(out / "acts") == store and (out / "sae" / "sae.safetensors").read_bytes() == sae
    assert files(out / "index" / "postings") == postings
    assert [r["status"] for r in again["interpretation"]["stats"]] == ["stored"]

    # an SAE of another shape is not passed off as this run's
    assert cli.main([*argv, "--k", "8"]) == 2
    err = capsys.readouterr().err
    assert "saescope demo: error: " in err and "k=16" in err and "--k 8" in err
