"""`saescope demo`: the whole pipeline on the embedded SmolLM2-135M, run twice (the second run reuses)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from saescope import cli


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_reuses_what_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--tokens", "4096", "--latents", "1152", "--k", "16"]
    argv += ["--epochs", "1", "--eval-tokens", "512"]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out
    assert f"activation store: {out / 'acts'}" in summary and f"SAE: {out / 'sae'}" in summary
    trained = re.search(r"trained on 4,096 tokens: FVU ([0-9.]+), L0 ([0-9.]+), dead ([0-9.]+)%", summary)
    assert trained is not None, summary
    fvu, l0, dead = (float(v) for v in trained.groups())
    assert 0 < fvu < 1 and l0 == 16.0 and 0 <= dead <= 100
    header = next(line for line in summary.splitlines() if " arch " in line).split()
    assert {"SAE", "arch", "latents", "L0", "FVU", "dead%", "ΔCE", "KL"} <= set(header)
    row = next(line for line in summary.splitlines() if line.split()[:3] == ["sae", "topk", "1152"])
    assert float(row.split()[header.index("L0")]) == pytest.approx(16.0)

    store, sae = files(out / "acts"), files(out / "sae")
    assert "manifest.json" in store and "sae.safetensors" in sae
    assert cli.main(argv) == 0
    again = capsys.readouterr().out
    assert "trained on" not in again and f"SAE: {out / 'sae'}" in again and " arch " in again
    assert files(out / "acts") == store
    assert files(out / "sae")["sae.safetensors"] == sae["sae.safetensors"]

    # an SAE of another shape is not passed off as this run's
    assert cli.main([*argv, "--k", "8"]) == 2
    err = capsys.readouterr().err
    assert "saescope demo: error: " in err and "k=16" in err and "--k 8" in err
