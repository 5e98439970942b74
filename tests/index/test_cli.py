"""`saescope query` and `saescope index` through the CLI: the JSON contracts exactly, the readable
rendering, and bad input as one error line with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from saescope import cli

from .reference import Reference


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_latent_top_json_is_the_contract(
    capsys: pytest.CaptureFixture[str], built: Path, ref: Reference
) -> None:
    code, out, _ = run(capsys, "query", built, "--latent", 5, "--top", 3, "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"latent", "examples"} and doc["latent"] == 5 and len(doc["examples"]) == 3
    for example in doc["examples"]:
        assert set(example) == {"doc_id", "position", "activation", "tokens", "activations", "focus"}
        assert isinstance(example["doc_id"], int) and isinstance(example["position"], int)
        assert len(example["tokens"]) == len(example["activations"])
        assert all(isinstance(t, str) for t in example["tokens"])
        lo = max(0, example["position"] - 12)  # the default context: 12 tokens before
        assert example["focus"] == example["position"] - lo  # the focal token is marked, not implied
        assert example["activations"][example["focus"]] == example["activation"] > 0


def test_text_json_lists_every_active_latent_of_every_token(
    capsys: pytest.CaptureFixture[str], built: Path, world: dict[str, Path]
) -> None:
    code, out, _ = run(
        capsys, "query", built, "--text", "The cat is on the mat.", "--device", "cpu", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"tokens"}
    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    ids = tokenizer("The cat is on the mat.", add_special_tokens=False)["input_ids"]
    assert [t["token"] for t in doc["tokens"]] == [tokenizer.decode([i]) for i in ids]
    assert [t["position"] for t in doc["tokens"]] == list(range(1, len(ids) + 1))  # after BOS
    for token in doc["tokens"]:
        assert set(token) == {"position", "token", "latents"}
        acts = [a["activation"] for a in token["latents"]]
        assert len(acts) == 5 and acts == sorted(acts, reverse=True) and min(acts) > 0  # TopK: all k
        assert all(set(a) == {"latent", "activation"} for a in token["latents"])
    code, out, _ = run(capsys, "query", built, "--text", "The cat", "--rank", 3, "--device", "cpu", "--json")
    ranked = json.loads(out)["ranked"]
    assert len(ranked) == 3 and ranked[0]["max"] >= ranked[1]["max"] >= ranked[2]["max"]


def test_sections_render_readably(capsys: pytest.CaptureFixture[str], built: Path) -> None:
    code, out, _ = run(
        capsys, "query", built, "--latent", 5, "--top", 2, "--quantiles", 2, "--random", 1,
        "--cooccurring", 2, "--neighbours", 2, "--logits", 2, "--stats",
    )  # fmt: skip
    assert code == 0
    for heading in ("latent 5: top tokens", "quantile 2/2", "where it does not fire", "co-occurring latents",
                    "decoder neighbours", "logit effects", "mean when active"):  # fmt: skip
        assert heading in out
    assert "[[" in out and "\x1b[" not in out  # not a TTY: plain marks, no colours
    code, out, _ = run(
        capsys, "query", built, "--stats", "--proxy", "digits", "--top", 3, "--search", "5:1,2:0.5"
    )
    assert (
        code == 0
        and "dead:" in out
        and "latents detecting proxy 'digits'" in out
        and "windows (24 tokens of packed documents) ranked by" in out  # a window is not a document
    )
    code, out, _ = run(capsys, "query", built, "--stats", "--json")
    stats = json.loads(out)["stats"]
    assert (
        stats["tokens"] == 600
        and stats["d_sae"] == 48
        and sum(stats["density_counts"]) + len(stats["dead"]) == 48
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "{tmp}", "--stats"], "is not a latent index (no index.json)"),
        (["query", "{tmp}/nope", "--stats"], "is not a latent index (no such folder)"),
        (["query", "{built}", "--latent", "48"], "latent 48 is out of range: this SAE has 48 latents"),
        (["query", "{built}", "--text", ""], "the query text is empty"),
        (["query", "{built}", "--proxy", "regex:(["], "the regular expression does not compile"),
        (
            ["query", "{built}", "--text", "hi", "--sae", "{other}", "--device", "cpu"],
            "built with another SAE",
        ),
        (["query", "{built}", "--search", "5:x"], "is not a number"),
        (["index", "{other}", "--out", "{built}", "--device", "cpu"], "holds the index of another SAE"),
        (["query", "{built}"], "ask something"),
    ],
)
def test_bad_input_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
    built: Path,
    world: dict[str, Path],
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    filled = [a.format(tmp=tmp_path, built=built, other=world["other_sae"]) for a in args]
    code, out, err = run(capsys, *filled)
    assert code == 2 and out == ""
    assert message in error_line(err)
    assert error_line(err).startswith(f"saescope {args[0]}: error: ")
