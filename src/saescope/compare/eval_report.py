"""What `saescope eval --metrics …` prints: the core table, then absorption and probing per SAE.

Each number names what it is of: held-out words and letters for absorption, held-out examples and
chance for probing, with the letters skipped and the tasks not measured listed by reason.
This module knows nothing about how the numbers were measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..evals import EvalResult, format_table

if TYPE_CHECKING:
    from .evaluate import Evaluation


def cell(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def absorption_lines(name: str, found: dict[str, Any]) -> list[str]:
    if not found.get("measured"):
        return [f"  {name}: not measured ({found.get('reason', '')})"]
    skipped = found.get("skipped", [])
    why = ", ".join(f"{s['letter']} ({s['reason']})" for s in skipped[:6]) + (
        " …" if len(skipped) > 6 else ""
    )
    return [
        f"  {name}: mean absorption fraction {cell(found['mean_fraction'])}, full-absorption rate "
        f"{cell(found['full_rate'])} (means over {found['letters_measured']} letters; "
        f"{found['heldout_words']:,} held-out words, probes fitted on {found['train_words']:,}, "
        f"{found['vocabulary_letter_tokens']:,} letter-only tokens in the vocabulary)",
        f"    skipped {len(skipped)} letters: {why}" if skipped else "    no letter skipped",
    ]


def probing_lines(name: str, found: dict[str, Any]) -> list[str]:
    ks = sorted({int(k[1:]) for t in found.values() for k in t if k[:1] == "k" and k[1:].isdigit()})
    header = ["task", *[f"k={k}" for k in ks], "ceiling", "floor k=1", "held-out"]
    rows = []
    notes = []
    for task, t in found.items():
        if not t.get("measured"):
            notes.append(f"    {task}: not measured ({t.get('reason', '')})")
            continue
        rows.append(
            [
                task,
                *[cell(t.get(f"k{k}")) for k in ks],
                cell(t.get("ceiling")),
                cell(t.get("floor")),
                f"{t['test_examples']:,}",
            ]
        )
    lines = [f"  {name}:"]
    if rows:
        widths = [max(len(v) for v in column) for column in zip(header, *rows)]
        lines += ["    " + "  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in [header, *rows]]
    return lines + notes


def render_evaluation(result: Evaluation) -> str:
    lines = []
    if "core" in result.families:
        lines.append(format_table(EvalResult(result.evals, result.comparison_plot)))
    if "absorption" in result.families:
        lines += [
            "",
            "absorption (first-letter task, on held-out words; letters whose probe F1 < 0.6 skipped):",
        ]
        for e in result.evals:
            lines += absorption_lines(e.path.name, e.metrics["absorption"])
    if "probing" in result.families:
        lines += [
            "",
            "sparse probing (held-out balanced accuracy, chance 0.5; k latents by mean difference; ceiling: "
            "all raw activations; floor: k=1 of a random projection to the SAE's width):",
        ]
        for e in result.evals:
            lines += probing_lines(e.path.name, e.metrics["probing"])
    return "\n".join(lines)


__all__ = ["render_evaluation"]
