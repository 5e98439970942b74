"""Empty is not zero, and every count says which tokens it covers: a proxy that matches nothing, a
precision from a handful of firings, partners ranked by raw counts, a damaged index, a window
called a document, a logit effect without its unit, a text longer than the SAE's context, an
empty ranking called "never fires" — each is an error or says what it measured."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from saescope import cli
from saescope.config import QueryConfig
from saescope.errors import ConfigError
from saescope.index import LatentIndexError, read_header
from saescope.index import query as query_module
from saescope.index.build import IndexResult, IndexSummary
from saescope.index.proxies import parse_proxy, proxy_scores
from saescope.index.reader import Index
from saescope.index.results import LOGIT_SIGN, LOGIT_UNIT
from saescope.index.units import unit_label

from .reference import Reference

D_SAE = 48
TOKENS = 600


@pytest.fixture(scope="module")
def index(built: Path) -> Index:
    return Index(built)


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----- proxies ------------------------------------------------------------------------------------
def test_a_proxy_matching_no_token_is_an_error_naming_it(
    index: Index, built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    searched = rf"the {TOKENS} indexed tokens \(\d+ distinct token ids searched\)"
    with pytest.raises(LatentIndexError, match=rf"proxy 'regex:qqqzzz' matches none of {searched}"):
        index.proxy_scores("regex:qqqzzz")  # before: AUROC 0.500 for latents 0, 1, 2, …
    with pytest.raises(LatentIndexError, match="matches none"):
        index.proxy_histogram(5, "regex:qqqzzz")
    with pytest.raises(LatentIndexError, match=rf"matches every one of {searched}"):
        index.proxy_scores("regex:(?s).")
    code, out, err = run(capsys, "query", built, "--proxy", "regex:qqqzzz")
    assert code == 2 and out == "" and f"matches none of the {TOKENS} indexed tokens" in error_line(err)


def test_an_unknown_script_or_proxy_name_lists_the_nearest() -> None:
    with pytest.raises(
        ConfigError, match=r"no Unicode character's name starts with 'ARABICC' \(nearest: ARABIC"
    ):
        parse_proxy("script:arabicc")  # before: accepted, and matched nothing
    with pytest.raises(ConfigError, match="did you mean digits"):
        parse_proxy("digit")
    assert parse_proxy("script:greek").matches("αβγ") and parse_proxy("script:LATIN").matches("abc")


def test_precision_ranks_only_latents_firing_often_enough(
    index: Index, ref: Reference, capsys: pytest.CaptureFixture[str], built: Path
) -> None:
    scores = proxy_scores(index.storage, parse_proxy("digits"))
    assert [s for s in scores if 0 < s.fires < 10 and s.precision == 1.0]  # a few firings, all on digits
    ranking = index.proxy_ranking("digits", 5, "precision")
    want = sorted((s for s in scores if s.fires >= 10), key=lambda s: (-s.precision, s.latent))[:5]
    assert ranking.latents == want and ranking.min_firings == 10
    texts = index.decode(ref.token_ids.tolist())
    assert ranking.tokens == TOKENS and ranking.matching == sum(
        re.fullmatch("[0-9]+", t.strip()) is not None for t in texts
    )
    assert index.proxy_ranking("digits", 1, "precision", min_firings=1).latents[0].precision == 1.0
    code, out, _ = run(capsys, "query", built, "--proxy", "digits", "--rank-by", "precision", "--top", 3)
    assert (
        code == 0
        and f"of {TOKENS} indexed tokens match; by precision, among latents firing on at least 10" in out
    )
    code, out, _ = run(capsys, "query", built, "--proxy", "digits", "--min-firings", 3, "--json")
    doc = json.loads(out)["proxy"]
    assert (doc["tokens"], doc["matching"], doc["min_firings"]) == (TOKENS, ranking.matching, 3)


# ----- co-occurrence ---------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["jaccard", "lift"])
def test_cooccurring_latents_are_ranked_by_a_ratio_with_dense_ones_marked(
    index: Index, ref: Reference, by: str
) -> None:
    fires = (ref.dense > 0).astype(np.int64)
    counts = fires.T @ fires
    own = np.diag(counts)
    differs = 0
    for latent in range(D_SAE):
        pairs = [o for o in range(D_SAE) if o != latent and counts[latent, o] >= 10]
        jaccard = {o: counts[latent, o] / (own[latent] + own[o] - counts[latent, o]) for o in pairs}
        lift = {o: counts[latent, o] * TOKENS / (own[latent] * own[o]) for o in pairs}
        metric = jaccard if by == "jaccard" else lift
        want = sorted(pairs, key=lambda o: (-metric[o], o))[:6]
        got = index.cooccurring(latent, 6, by)
        assert [c.latent for c in got] == want, latent
        for c in got:
            assert c.shared == counts[latent, c.latent] and c.dense == (own[c.latent] / TOKENS > 0.1)
            assert c.jaccard == pytest.approx(jaccard[c.latent]) and c.lift == pytest.approx(lift[c.latent])
        differs += want != sorted(pairs, key=lambda o: (-counts[latent, o], o))[:6]
    assert differs > 0  # before: ranked by the raw count of shared tokens


def test_cooccurring_says_what_it_covers(
    capsys: pytest.CaptureFixture[str], built: Path, index: Index
) -> None:
    dense = index.stats().column("dense").to_pylist()
    code, out, _ = run(capsys, "query", built, "--latent", 2, "--cooccurring", 47)
    fires = index.stats_of(2)["count"]
    assert code == 0
    head = f"co-occurring latents by jaccard (of its {fires} firings on {TOKENS} indexed tokens; "
    assert head + "partners sharing at least 10 tokens)" in out
    assert "(dense)" in out and any(dense)
    code, out, _ = run(
        capsys, "query", built, "--latent", 2, "--cooccurring", 3, "--cooccurring-by", "lift", "--json"
    )
    doc = json.loads(out)["cooccurring"]
    assert (doc["by"], doc["min_shared"], doc["tokens"], doc["fires"]) == ("lift", 10, TOKENS, fires)
    assert doc["kept_by"] == ["jaccard", "lift"]
    assert all(set(c) == {"latent", "shared", "jaccard", "lift", "dense"} for c in doc["latents"])


# ----- a damaged index ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("remove", "args", "message"),
    [
        ("postings/bucket-00001.parquet", ["--latent", 9],
         r"has no postings of latents 8-15 \(postings/bucket-00001.parquet is missing\)"),
        ("tokens/*", ["--latent", 5, "--unit", "sentence"], r"damaged: tokens/ holds \d+ of its 600"),
        ("docs/*", ["--search", 2, "--top", 100], "is damaged: docs/ has no record of model input"),
        ("latents.parquet", ["--stats"], r"has no latent statistics \(latents.parquet is missing\)"),
        ("cooccurrence.parquet", ["--latent", 2, "--cooccurring", 3], r"has no co-occurring latents \("),
        ("top.parquet", ["--latent", 2, "--top", 3], r"has no top examples \(top.parquet is missing\)"),
    ],
)  # fmt: skip
def test_a_missing_part_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str],
    built: Path,
    tmp_path: Path,
    remove: str,
    args: list[object],
    message: str,
) -> None:
    damaged = tmp_path / "index"
    shutil.copytree(built, damaged)
    sorted(damaged.glob(remove))[0].unlink()
    code, out, err = run(capsys, "query", damaged, *args)
    assert code == 2 and out == ""
    line = error_line(err)  # before, for a postings bucket: "saescope query: error: None: None"
    assert re.search(message, line) and "run saescope index again" in line, line


# ----- what a unit is ----------------------------------------------------------------------------
def test_a_window_of_packed_documents_is_called_a_window(
    capsys: pytest.CaptureFixture[str], built: Path
) -> None:
    code, out, _ = run(capsys, "query", built, "--latent", 2, "--unit", "document", "--top", 2)
    assert code == 0 and out.startswith("latent 2: top windows (24 tokens of packed documents) by max\n")
    code, out, _ = run(capsys, "query", built, "--latent", 2, "--unit", "document", "--top", 2, "--json")
    doc = json.loads(out)
    assert (doc["unit"], doc["unit_label"]) == ("document", "window (24 tokens of packed documents)")
    code, out, _ = run(capsys, "query", built, "--stats")
    assert "600 indexed tokens in 27 windows (24 tokens of packed documents)" in out


def test_unit_labels_follow_how_the_inputs_were_cut() -> None:
    assert (
        unit_label({"unit": "window", "context_len": 256}, "document")
        == "window (256 tokens of packed documents)"
    )
    assert unit_label({"unit": "sentence", "context_len": 64}, "document").startswith("sentence input")
    assert unit_label({"unit": "window", "context_len": 64, "substring": "Paris"}, "document").startswith(
        "document"
    )
    assert unit_label(None, "document") == "document (a model input of the activation store)"
    assert unit_label(None, "sentence") == "sentence"


def test_an_empty_last_ranking_says_why(
    index: Index, capsys: pytest.CaptureFixture[str], built: Path
) -> None:
    counts = index.stats().column("count").to_pylist()
    firing = [k for k in range(D_SAE) if counts[k] and not index.top_units(k, 1, "sentence", "last")]
    assert firing
    code, out, _ = run(capsys, "query", built, "--latent", firing[0], "--unit", "sentence", "--agg", "last")
    want = f"latent {firing[0]} fires on {counts[firing[0]]} of the {TOKENS} indexed tokens, but on no "
    want += "sentence's last token"
    assert code == 0 and out.startswith(want)  # before: "latent N never fires on the indexed text"
    dead = counts.index(0)
    code, out, _ = run(
        capsys, "query", built, "--latent", dead, "--unit", "sentence", "--agg", "last", "--json"
    )
    assert (json.loads(out)["fires"], json.loads(out)["tokens"]) == (0, TOKENS)
    code, out, _ = run(capsys, "query", built, "--latent", dead)
    assert out.startswith(f"latent {dead} never fires on the {TOKENS} indexed tokens")


# ----- logit effects, texts --------------------------------------------------------------------------
def test_logit_effects_state_their_unit_and_sign(capsys: pytest.CaptureFixture[str], built: Path) -> None:
    code, out, _ = run(capsys, "query", built, "--latent", 2, "--logits", 2, "--top", 0)
    assert code == 0 and f"logit effects ({LOGIT_UNIT}; {LOGIT_SIGN})" in out
    assert (
        "residual stream equal to the decoder direction" in LOGIT_UNIT
        and "positive: the latent promotes" in LOGIT_SIGN
    )
    code, out, _ = run(capsys, "query", built, "--latent", 2, "--logits", 2, "--top", 0, "--json")
    logits = json.loads(out)["logits"]
    assert set(logits) == {"unit", "sign", "top", "bottom"} and logits["unit"] == LOGIT_UNIT
    assert logits["top"][0]["effect"] > logits["bottom"][0]["effect"]


def test_a_text_longer_than_the_training_context_warns(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, built: Path
) -> None:
    def warnings() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.name == "saescope.index.text_latents"]
        caplog.clear()
        return found

    code, _, _ = run(capsys, "query", built, "--text", "The cat is on the mat.", "--device", "cpu", "--json")
    assert code == 0 and not warnings()
    long = " ".join(["The cat is on the mat."] * 6)  # far more than the index's 24-token inputs
    code, out, _ = run(capsys, "query", built, "--text", long, "--device", "cpu", "--json")
    assert code == 0 and json.loads(out)["tokens"]
    (warned,) = warnings()  # one line (the CLI logs it to stderr)
    assert "more than the 24 the SAE was trained on" in warned and "out of distribution" in warned


def test_latents_are_checked_before_the_model_loads(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the latents were checked")

    monkeypatch.setattr(query_module, "bind_index_sae", no_model)
    for asked in ({"latent": D_SAE}, {"search": ("5:1", f"{D_SAE}:1")}, {"latent": D_SAE, "stats": True}):
        with pytest.raises(LatentIndexError, match=f"latent {D_SAE} is out of range"):
            query_module.query(QueryConfig(index=built, text="The cat", device="cpu", **asked))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown proxy"):
        query_module.query(QueryConfig(index=built, text="The cat", proxy="klingon", device="cpu"))


# ----- counts and what they cover -------------------------------------------------------------------
def test_every_count_says_which_tokens_it_covers(
    capsys: pytest.CaptureFixture[str], built: Path, index: Index
) -> None:
    dead = sum(index.stats().column("dead").to_pylist())
    dense = sum(index.stats().column("dense").to_pylist())
    code, out, _ = run(capsys, "query", built, "--stats")
    assert code == 0
    said = f"{dead} dead of {D_SAE} latents on {TOKENS} indexed tokens (never fire on them); "
    assert said + f"{dense} dense (fire on more than 10% of them)" in out
    stats = json.loads(run(capsys, "query", built, "--stats", "--json")[1])["stats"]
    assert (stats["tokens"], stats["dense_frequency"], len(stats["dead"])) == (TOKENS, 0.1, dead)
    code, out, _ = run(capsys, "query", built, "--latent", 2, "--stats", "--top", 0)
    count = index.stats_of(2)["count"]
    assert f"fires on {count} of {TOKENS} indexed tokens" in out
    latent_stats = json.loads(run(capsys, "query", built, "--latent", 2, "--stats", "--top", 0, "--json")[1])[
        "stats"
    ]
    assert (latent_stats["count"], latent_stats["tokens"]) == (count, TOKENS)
    built_summary = IndexResult([IndexSummary.of(built, read_header(built))], 0.0)
    assert f"{dead} dead of {D_SAE} latents on these {TOKENS} tokens" in built_summary.render()
    assert built_summary.to_json()["indexes"][0]["dense_frequency"] == 0.1
