"""The JSON API over real HTTP: every endpoint against the index and the model computed directly,
every limit refused with its name, errors as JSON, no filesystem path accepted anywhere."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from saescope import cli
from saescope.bound import BoundSAE, bind_sae, encode_text
from saescope.config.serve import ServeConfig
from saescope.index.reader import Index
from saescope.steer import Intervention, Sampling, generate_steered, latent_effects
from tests.render.html_checks import script_texts, unsafe_markup

from .builders import D_SAE, DETECTION, EXPLAINED
from .conftest import LIMITS
from .servers import Running, running


@pytest.fixture(scope="module")
def http(server: Running) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


@pytest.fixture(scope="module")
def index(run: Path) -> Index:
    return Index(run / "index")


@pytest.fixture(scope="module")
def bound(run: Path) -> BoundSAE:
    return bind_sae(run / "sae")


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def refused(response: httpx.Response, status: int, limit: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and "\n" not in body["error"]
    if limit is not None:
        assert body["limit"] == limit and body["value"] == LIMITS[limit]
    return body


# ----- the index --------------------------------------------------------------------------------
def test_status_and_run(http: httpx.Client, run: Path) -> None:
    status = ok(http.get("/api/status"))
    assert status["loaded"] and status["generating"] == 0 and status["has_index"] and status["has_sae"]
    info = ok(http.get("/api/run"))
    assert info["sae"]["d_sae"] == D_SAE and info["index"]["d_sae"] == D_SAE
    assert (
        info["eval"]["reconstruction"]["fvu"]
        == json.loads((run / "sae" / "eval.json").read_text())["reconstruction"]["fvu"]
    )


def test_latent_search(http: httpx.Client, server: Running) -> None:
    server.ctx.rows(wait=30)  # the list is built in the background at start
    everything = ok(http.get("/api/latents", params={"limit": 5000}))
    assert everything["total"] == D_SAE and everything["complete"]
    freqs = [r["frequency"] for r in everything["rows"]]
    assert freqs == sorted(freqs, reverse=True)
    found = ok(http.get("/api/latents", params={"q": "ONERROR"}))
    assert [r["latent"] for r in found["rows"]] == [0] and found["rows"][0]["explanation"] == EXPLAINED[0]
    by_score = ok(http.get("/api/latents", params={"sort": "score", "limit": 3}))["rows"]
    assert [(r["latent"], r["score"]) for r in by_score] == sorted(DETECTION.items(), key=lambda kv: -kv[1])
    by_id = ok(http.get("/api/latents", params={"q": "17", "sort": "latent", "descending": False}))
    assert 17 in [r["latent"] for r in by_id["rows"]]
    token = next(t for r in everything["rows"] for t in r["top_tokens"])
    hits = ok(http.get("/api/latents", params={"q": token, "limit": 5000}))["rows"]
    assert hits and all(
        token.lower() in " ".join(r["top_tokens"]).lower() + r["explanation"].lower() + str(r["latent"])
        for r in hits
    )


def test_a_latent_as_json(http: httpx.Client, index: Index) -> None:
    got = ok(http.get("/api/latents/5"))
    assert got["latent"] == 5 and got["stats"]["fires"] == index.stats_of(5)["count"]
    top = index.top_examples(5, 20)
    assert got["top"] == [e.to_json() for e in top]  # the one example shape, focus marked
    assert [n["latent"] for n in got["neighbours"]] == [n.latent for n in index.neighbours(5, 10)]


def test_more_examples_continue_the_top_list(http: httpx.Client, index: Index) -> None:
    got = ok(http.get("/api/latents/5/examples", params={"offset": 20, "count": 5}))
    want = index.top_examples(5, 25)[20:]
    assert [(e["doc_id"], e["position"], e["tokens"]) for e in got["examples"]] == [
        (e.doc_id, e.position, e.tokens) for e in want
    ]
    for e in got["examples"]:
        assert e["activations"][e["focus"]] == pytest.approx(e["activation"])


def test_quantile_random_related_and_map(http: httpx.Client, index: Index) -> None:
    q = ok(http.get("/api/latents/5/quantile", params={"which": 2, "of": 3, "n": 2}))
    want = index.quantile_examples(5, 3, 2)[1]
    assert q["label"].startswith("quantile 2 of 3") and [e["position"] for e in q["examples"]] == [
        e.position for e in want.examples
    ]
    rnd = ok(http.get("/api/latents/5/random", params={"n": 3}))["examples"]
    assert rnd and all(max(e["activations"]) == 0 for e in rnd)
    co = ok(http.get("/api/latents/5/related", params={"kind": "cooccurring", "n": 4}))
    assert [r["latent"] for r in co["latents"]] == [c.latent for c in index.cooccurring(5, 4)]
    nb = ok(http.get("/api/latents/0/related", params={"kind": "neighbours", "n": 3}))
    assert [r["value"] for r in nb["latents"]] == pytest.approx([n.cosine for n in index.neighbours(0, 3)])
    the_map = ok(http.get("/api/map"))
    assert sorted(the_map["latent"]) == list(range(D_SAE)) and len(the_map["x"]) == D_SAE


def test_unknown_latents_are_404(http: httpx.Client) -> None:
    for path in (f"/api/latents/{D_SAE}", f"/api/latents/{D_SAE}/examples", "/api/latents/99999/related"):
        assert "out of range" in refused(http.get(path), 404)["error"]
    assert http.get(f"/latents/{D_SAE}").status_code == 404
    assert http.get("/api/latents/-1").status_code == 404


# ----- the model --------------------------------------------------------------------------------
def test_inspect_equals_encoding_the_text(http: httpx.Client, bound: BoundSAE) -> None:
    text = "The cat <script>alert(1)</script> & co"
    got = ok(http.post("/api/inspect", json={"text": text, "latent": 3}))
    codes = encode_text(bound, text)
    assert codes.first == 1  # BOS first: left out of the report, as `query --text` leaves it out
    assert [t["token"] for t in got["tokens"]] == codes.tokens[1:]
    for row, (p, t) in enumerate(zip(codes.text_positions, got["tokens"])):
        assert t["position"] == p
        assert [(x["latent"], x["activation"]) for x in t["latents"]] == [
            (i, pytest.approx(a, rel=1e-5)) for i, a in codes.top(p, 8)
        ]
        assert got["activations"][row] == pytest.approx(dict(codes.top(p, 100)).get(3, 0.0), rel=1e-5)
    assert got["latent"] == 3
    default = ok(http.post("/api/inspect", json={"text": text}))
    assert default["latent"] is not None and max(default["activations"]) > 0


def test_effects_equal_the_effects_stage(http: httpx.Client, bound: BoundSAE) -> None:
    text = "The cat is on the mat"
    got = ok(http.post("/api/effects", json={"text": text, "top": 5}))
    want = latent_effects(bound, text, top=5)
    assert got["tokens"] == want.tokens and got["target"] == want.target
    assert [(p["position"], p["latent"]) for p in got["top"]] == [(p.position, p.latent) for p in want.top]
    assert [p["ablation"] for p in got["top"]] == pytest.approx(
        [p.ablation for p in want.top], rel=1e-4, abs=1e-6
    )


def steer_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompts": ["The cat is"],
        "interventions": [{"latent": 3, "mode": "add", "value": 6.0}],
        "max_new_tokens": 6,
        "controls": False,
    }
    return {**body, **over}


def test_steer_equals_generating_directly(http: httpx.Client, bound: BoundSAE) -> None:
    got = ok(http.post("/api/steer", json=steer_body(prompts=["The cat is", "Paris"])))
    sampling = Sampling(max_new_tokens=6)
    plain = generate_steered(bound, ["The cat is", "Paris"], [], sampling)
    steered = generate_steered(bound, ["The cat is", "Paris"], [Intervention(3, "add", 6.0)], sampling)
    variants = {v["variant"]: v for v in got["variants"]}
    assert variants["unsteered"]["completions"] == [c.text for c in plain.completions]
    assert variants["steered"]["completions"] == [c.text for c in steered.completions]
    assert variants["steered"]["interventions"] == ["3:add:6"]


def read_events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_the_stream_adds_up_to_the_same_completions(http: httpx.Client) -> None:
    whole = ok(http.post("/api/steer", json=steer_body(controls=True)))
    with http.stream("POST", "/api/steer/stream", json=steer_body(controls=True)) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        events = read_events(response)
    assert events[-1]["event"] == "done"
    assert [v["completions"] for v in events[-1]["variants"]] == [v["completions"] for v in whole["variants"]]
    assert sum(e["event"] == "token" for e in events) > 4


def test_the_server_reports_the_command_lines_effects(
    http: httpx.Client, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same request through /api/steer and `saescope steer --json`: the same completions and
    the same effects (one code path decides, runs and measures the variants)."""
    edits = [{"latent": 3, "mode": "add", "value": 6.0}, {"latent": 5, "mode": "clamp", "value": 2.0}]
    body = steer_body(prompts=["The cat is", "Paris"], interventions=edits, controls=True, targets=[" cat"])
    served = ok(http.post("/api/steer", json=body))
    with open_prompts(run, ["The cat is", "Paris"]) as prompts:
        argv = ["steer", str(run / "sae"), "--prompts", str(prompts), "--steer", "3:add:6,5:clamp:2"]
        status = cli.main([*argv, "--max-new-tokens", "6", "--target", " cat", "--json"])
    assert status == 0
    command = json.loads(capsys.readouterr().out)
    variants = {v["variant"]: v for v in served["variants"]}
    assert variants["steered"]["completions"] == command["steered"]
    assert variants["unsteered"]["completions"] == command["unsteered"]
    assert served["targets"] == command["targets"] and served["measures"] == command["measures"]
    assert set(served["effects"]) == {"steered", "random_latent", "random_direction"}
    for name, effects in command["effects"].items():
        for measure, value in effects.items():
            got = served["effects"][name][measure]
            assert got["covers"] == value["covers"] and got["not_measured"] == value["not_measured"]
            assert got["value"] == pytest.approx(value["value"], rel=1e-5, abs=1e-6), (name, measure)


@contextmanager
def open_prompts(run: Path, prompts: list[str]) -> Iterator[Path]:
    """A prompts file beside the run (one per line), removed afterwards."""
    path = run.parent / f"prompts-{len(prompts)}.txt"
    path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink()


def test_a_sweep_comes_with_the_done_event(http: httpx.Client) -> None:
    body = steer_body(controls=True, targets=[" cat"], sweep=[2.0, 0.5])
    with http.stream("POST", "/api/steer/stream", json=body) as response:
        events = read_events(response)
    assert [e["multiple"] for e in events if e["event"] == "sweep"] == [0.5, 2.0]
    sweep = events[-1]["sweep"]
    assert [p["multiple"] for p in sweep["points"]] == [0.5, 2.0]
    assert sweep["points"][1]["interventions"] == ["3:add:12"] and sweep["ngram"] == 3
    assert (
        sweep["points"][0]["perplexity"]["unit"] == "tokens"
        and sweep["unsteered"]["perplexity"]["covers"] > 0
    )


@pytest.mark.parametrize(
    ("value", "message"), [(1e308, "overflows the model's float32"), (1e30, "more than 1000x")]
)
def test_an_absurd_value_is_422_not_a_traceback(http: httpx.Client, value: float, message: str) -> None:
    body = steer_body(interventions=[{"latent": 3, "mode": "add", "value": value}])
    for route in ("/api/steer", "/api/steer/stream"):
        assert message in refused(http.post(route, json=body), 422)["error"]
    ablate_sweep = steer_body(interventions=[{"latent": 3, "mode": "ablate"}], sweep=[2.0])
    assert "ablation has none" in refused(http.post("/api/steer", json=ablate_sweep), 422)["error"]
    assert ok(http.get("/api/status"))["generating"] == 0  # the slot was released


# ----- limits and errors ---------------------------------------------------------------------------
def test_every_limit_is_enforced_and_named(http: httpx.Client) -> None:
    long_prompt = " ".join(["cat"] * 60)
    refused(http.post("/api/steer", json=steer_body(prompts=[long_prompt])), 413, "max_prompt_tokens")
    refused(http.post("/api/steer", json=steer_body(prompts=["a"] * 4)), 422, "max_prompts")
    refused(http.post("/api/steer", json=steer_body(max_new_tokens=201)), 422, "max_new_tokens")
    edits = [{"latent": i, "mode": "ablate"} for i in range(4)]
    refused(http.post("/api/steer/stream", json=steer_body(interventions=edits)), 422, "max_latents")
    refused(http.post("/api/inspect", json={"text": " ".join(["cat"] * 70)}), 413, "max_text_tokens")
    refused(http.post("/api/inspect", json={"text": "x" * 100_000}), 413, "max_text_tokens")
    refused(http.post("/api/effects", json={"text": " ".join(["cat"] * 30)}), 413, "max_effects_tokens")
    refused(http.get("/api/latents/5/examples", params={"offset": 40, "count": 20}), 422, "max_examples")
    refused(http.get("/api/latents/5/random", params={"n": 51}), 422, "max_examples")


def test_bad_requests_are_clear(http: httpx.Client) -> None:
    assert "empty" in refused(http.post("/api/inspect", json={"text": "  "}), 400)["error"]
    assert (
        "prompt 1 is empty"
        in refused(http.post("/api/steer", json=steer_body(prompts=["a", " "])), 400)["error"]
    )
    assert (
        "out of range"
        in refused(
            http.post("/api/steer", json=steer_body(interventions=[{"latent": 999, "mode": "ablate"}])), 404
        )["error"]
    )
    assert http.post("/api/steer", json={"prompts": "not a list"}).status_code == 422
    assert (
        http.post(
            "/api/steer", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert http.post("/api/inspect", json={"text": "a", "latent": -3}).status_code == 422


def test_no_endpoint_takes_a_path(http: httpx.Client, run: Path) -> None:
    for path in (
        "/static/../../sae/cfg.json",
        "/static/%2e%2e%2fcfg.json",
        "/static/" + str(run / "sae" / "cfg.json"),
        "/run/images/cfg.json",
        "/run/images/..%2fcfg.json",
        "/run/images/eval.json",
    ):
        response = http.get(path)
        assert response.status_code == 404 and "d_sae" not in response.text, path
    assert http.get("/run/images/eval_density.png").headers["content-type"] == "image/png"
    schema = ok(http.get("/openapi.json"))
    for route in (
        "/api/latents",
        "/api/latents/{latent}",
        "/api/inspect",
        "/api/effects",
        "/api/steer",
        "/api/steer/stream",
    ):
        assert route in schema["paths"]
    for route, item in schema["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                assert "path" not in parameter["name"].lower() and "file" not in parameter["name"].lower(), (
                    route
                )


def test_a_run_works_with_whatever_parts_it_has(run: Path, tmp_path: Path) -> None:
    shutil.copytree(run / "sae", tmp_path / "sae-only" / "sae")
    with running(ServeConfig(run=tmp_path / "sae-only", device="cpu", port=0)) as up:
        http = httpx.Client(base_url=up.url, timeout=60)
        assert "no latent index" in http.get("/latents").text and http.get("/").status_code == 200
        assert "saescope index" in refused(http.get("/api/latents"), 404)["error"]
        assert "no latent index" in http.get("/latents/3").text
        assert ok(http.post("/api/inspect", json={"text": "The cat"}))["latent"] is not None
    shutil.copytree(run / "index", tmp_path / "index-only" / "index")
    with running(ServeConfig(run=tmp_path / "index-only", device="cpu", port=0), warm=False) as up:
        http = httpx.Client(base_url=up.url, timeout=60)
        assert ok(http.get("/api/latents/3"))["latent"] == 3
        assert "has no SAE" in refused(http.post("/api/inspect", json={"text": "The cat"}), 400)["error"]


def test_every_page_escapes_corpus_explanations_and_prompts(http: httpx.Client, server: Running) -> None:
    server.ctx.rows(wait=30)
    evil = "</textarea><script>alert(1)</script><img src=x onerror=alert(2)>&\"'"
    pages = ["/", "/latents", "/latents/0", "/latents/1", "/latents/2", "/inspect", "/steer"]
    pages += [f"/inspect?text={evil}", f"/steer?prompt={evil}"]
    for path in pages:
        response = http.get(path, params=None)
        assert response.status_code == 200, path
        assert unsafe_markup(response.text) == [], path
    fragments = [
        http.get("/fragments/latents/0/examples", params={"offset": 0, "count": 30}),
        http.get("/fragments/latents/1/related", params={"kind": "neighbours", "n": 39}),
        http.post("/fragments/inspect", json={"text": "<img src=x onerror=alert(2)>&\"'"}),
        http.post("/fragments/effects", json={"text": "<b>x</b> & 'y'"}),
    ]
    for response in fragments:
        assert response.status_code == 200 and unsafe_markup(response.text) == [], response.url
    rows = json.loads(script_texts(http.get("/latents").text)["latent-rows"])
    assert {r["l"]: r["e"] for r in rows if r["e"]} == EXPLAINED
