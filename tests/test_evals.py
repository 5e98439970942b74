"""`saescope eval` against hand computations on a tiny model: reconstruction, sparsity and downstream
metrics, checks that cannot be faked (identity SAE, zero decoder), imported SAEs, several SAEs in
one comparison, and bad input as one line from the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor
from transformers import AutoModelForCausalLM, AutoTokenizer

import saescope.evals
from saescope import cli
from saescope.config import ConvertConfig, CorpusSettings, EvalConfig
from saescope.convert import convert
from saescope.data import iter_model_inputs
from saescope.errors import SaescopeError
from saescope.evals import evaluate
from saescope.sae import SparseAutoencoder
from saescope.sae.formats import save_sae
from saescope.sae.relu import ReLUSAE
from tests.builders import one_thread
from tests.sae.builders import make_sae

D = 32  # the tiny Llama's width
TOKENS = 150
CONTEXT = 48
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval_corpus") / "corpus.txt"
    # sentences of different lengths: batches of them are padded
    lines = [
        f"The cat {i} is on the mat. Paris is{' very' * (i % 5)} far from here, {i % 7} miles."
        for i in range(40)
    ]
    path.write_text("\n".join(lines))
    return path


def with_identity(
    sae: SparseAutoencoder, model: Path, hookpoint: str = "resid_post:1", **cfg: Any
) -> SparseAutoencoder:
    sae.cfg = sae.cfg.with_updates(model=str(model), hookpoint=hookpoint, hookpoint_alias=hookpoint, **cfg)
    return sae


def relu_sae(
    W_enc: Tensor, W_dec: Tensor, b_enc: Tensor | None = None, b_dec: Tensor | None = None
) -> ReLUSAE:
    from saescope.sae import SAEConfig

    d_in, d_sae = W_enc.shape
    sae = ReLUSAE(SAEConfig(architecture="relu", d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_enc.copy_(torch.zeros(d_sae) if b_enc is None else b_enc)
        sae.b_dec.copy_(torch.zeros(d_in) if b_dec is None else b_dec)
    return sae


def identity_sae() -> ReLUSAE:
    """relu(x) − relu(−x) = x exactly: W_enc = [I, −I], W_dec = [I; −I], no biases."""
    eye = torch.eye(D)
    return relu_sae(torch.cat([eye, -eye], 1), torch.cat([eye, -eye], 0))


def eval_config(saes: list[Path], corpus: Path, **changes: Any) -> EvalConfig:
    settings: dict[str, Any] = {
        "saes": tuple(saes),
        "dataset": str(corpus),
        "tokens": TOKENS,
        "context_len": CONTEXT,
        "batch_size": 3,
        "device": "cpu",
    }
    return EvalConfig(**(settings | changes))


# ----- an independent implementation: plain forward hooks, one input at a time -----------------------
def hand_metrics(
    model_dir: Path, corpus: Path, encode: Callable[[Tensor], Tensor], W_dec: Tensor, b_dec: Tensor
) -> dict[str, Any]:
    """Every eval metric of the SAE `x -> encode(x) @ W_dec + b_dec` at resid_post:1 (the output of
    decoder layer 1), computed input by input (no padding) in float64 where it matters."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    settings = CorpusSettings(dataset=str(corpus), context_len=CONTEXT, unit="sentence")
    inputs, count = [], 0
    for item in iter_model_inputs(settings, tok):
        inputs.append(item)
        count += len(item.positions)
        if count >= TOKENS:
            break
    assert len({len(i.token_ids) for i in inputs}) > 3  # the evaluation batches hold padding
    layer = model.model.layers[1]

    def run(ids: Tensor, replace: Callable[[Tensor], Tensor] | None) -> tuple[Tensor, Tensor]:
        seen: list[Tensor] = []

        def hook(_m: Any, _a: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            seen.append(hidden.detach().clone())
            if replace is None:
                return None
            new = replace(hidden)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        handle = layer.register_forward_hook(hook)
        try:
            with torch.no_grad():
                logits = model(ids[None]).logits[0].double()
        finally:
            handle.remove()
        return seen[0][0], logits

    xs, recons, codes = [], [], []
    per_input = []
    for item in inputs:
        ids, pos = torch.tensor(item.token_ids), torch.tensor(item.positions)
        hidden, clean = run(ids, None)
        x = hidden[pos]
        z = encode(x)
        xs.append(x.double())
        recons.append((z @ W_dec + b_dec).double())
        codes.append(z)
        per_input.append((ids, pos, clean))
    x, recon, z = torch.cat(xs), torch.cat(recons), torch.cat(codes)
    mean = x.mean(0)

    def swapped(new_rows: Callable[[Tensor], Tensor], pos: Tensor) -> Callable[[Tensor], Tensor]:
        def replace(hidden: Tensor) -> Tensor:
            out = hidden.clone()
            out[0, pos] = new_rows(hidden[0, pos]).to(hidden.dtype)
            return out

        return replace

    sums = {name: 0.0 for name in ("clean", "sae", "zero", "mean")}
    kls = {name: 0.0 for name in ("sae", "zero", "mean")}
    scored = 0
    for ids, pos, clean in per_input:
        keep = pos[pos < len(ids) - 1]  # a prediction exists for the next token
        targets = ids[keep + 1]
        clean_lp = clean[keep].log_softmax(-1)
        sums["clean"] -= float(clean_lp.gather(1, targets[:, None]).sum())
        scored += len(keep)
        replacements = {
            "sae": lambda h: encode(h.float()) @ W_dec + b_dec,
            "zero": torch.zeros_like,
            "mean": lambda h: mean.expand_as(h),
        }
        for name, fn in replacements.items():
            _, logits = run(ids, swapped(fn, pos))
            lp = logits[keep].log_softmax(-1)
            sums[name] -= float(lp.gather(1, targets[:, None]).sum())
            kls[name] += float((clean_lp.exp() * (clean_lp - lp)).sum())
    ce = {k: v / scored for k, v in sums.items()}
    kl = {k: v / scored for k, v in kls.items()}
    n = x.shape[0]
    err = (x - recon).pow(2).sum()
    fvu = float(err / (x - mean).pow(2).sum())
    active = z > 0
    freq = active.double().mean(0)
    return {
        "tokens": n,
        "mse": float(err / (n * D)),
        "fvu": fvu,
        "cosine": float(torch.nn.functional.cosine_similarity(x, recon, dim=1).mean()),
        "norm_ratio": float((recon.norm(dim=1) / x.norm(dim=1)).mean()),
        "bias": float(recon.pow(2).sum() / (recon * x).sum()),
        "l0": float(active.sum(1).double().mean()),
        "frequency": freq,
        "dead": int((freq == 0).sum()),
        "dense": int((freq > 0.1).sum()),
        "ce": ce,
        "kl": kl,
        "scored": scored,
    }


def test_metrics_equal_a_hand_computation(tiny_model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    sae = make_sae("relu", d_in=D, d_sae=64, k=None, seed=3)
    with torch.no_grad():
        sae.W_enc.mul_(0.5)
        sae.b_enc.sub_(0.3)  # some latents never fire, some fire often
    # a capture of single sentences: evaluated on sentences too (held-out text from --dataset)
    capture = {"capture": {"unit": "sentence", "context_len": CONTEXT}}
    folder = save_sae(with_identity(sae, tiny_model_dir, training=capture), tmp_path / "sae")
    (result,) = evaluate(eval_config([folder], corpus)).evals
    m = result.metrics

    W_enc, b_enc, W_dec, b_dec = (t.detach().clone() for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    want = hand_metrics(tiny_model_dir, corpus, lambda x: ((x - b_dec) @ W_enc + b_enc).relu(), W_dec, b_dec)

    def near(value: float) -> Any:
        return pytest.approx(value, rel=2e-4, abs=1e-6)

    r, s, d = m["reconstruction"], m["sparsity"], m["downstream"]
    assert m["tokens"] == want["tokens"] >= TOKENS
    assert r["mse"] == near(want["mse"])
    assert r["fvu"] == near(want["fvu"])
    assert r["explained_variance"] == near(1 - want["fvu"])
    assert r["cosine_similarity"] == near(want["cosine"])
    assert r["norm_ratio"] == near(want["norm_ratio"])
    assert r["relative_reconstruction_bias"] == near(want["bias"])
    assert s["l0_mean"] == near(want["l0"])
    assert (s["dead_latents"], s["dense_latents"]) == (want["dead"], want["dense"])
    assert 0 < s["dead_latents"] < 64 and 0 < s["dense_latents"] < 64  # both cases occur
    assert d["scored_predictions"] == want["scored"]
    ce, kl = want["ce"], want["kl"]
    assert d["ce_clean"] == near(ce["clean"])
    assert d["ce_spliced"] == near(ce["sae"])
    assert d["ce_zero_ablation"] == near(ce["zero"])
    assert d["ce_mean_ablation"] == near(ce["mean"])
    assert d["delta_ce"] == near(ce["sae"] - ce["clean"])
    rec0 = (ce["zero"] - ce["sae"]) / (ce["zero"] - ce["clean"])
    rec_mean = (ce["mean"] - ce["sae"]) / (ce["mean"] - ce["clean"])
    assert d["ce_loss_recovered_zero"] == near(rec0)
    assert d["ce_loss_recovered_mean"] == near(rec_mean)
    assert d["kl_spliced"] == near(kl["sae"])
    assert d["kl_zero_ablation"] == near(kl["zero"])
    assert d["kl_mean_ablation"] == near(kl["mean"])
    assert "BOS" in d["positions"] and "padding" in d["positions"]

    # outputs beside the SAE
    assert json.loads((folder / "eval.json").read_text())["reconstruction"]["fvu"] == r["fvu"]
    saved = load_file(str(folder / "eval_latents.safetensors"))
    torch.testing.assert_close(saved["frequency"].double(), want["frequency"], rtol=0, atol=1e-7)
    assert (folder / "eval_density.png").read_bytes()[:4] == b"\x89PNG"


def test_identity_sae_has_fvu_zero_and_recovers_all_ce_loss(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    folder = save_sae(with_identity(identity_sae(), tiny_model_dir), tmp_path / "identity")
    m = evaluate(eval_config([folder], corpus)).evals[0].metrics
    assert m["reconstruction"]["fvu"] == 0 and m["reconstruction"]["cosine_similarity"] == pytest.approx(1)
    d = m["downstream"]
    assert d["ce_spliced"] == pytest.approx(d["ce_clean"], abs=1e-6) and d["ce_zero_ablation"] > d["ce_clean"]
    assert d["ce_loss_recovered_zero"] == pytest.approx(1, abs=1e-5)
    assert d["ce_loss_recovered_mean"] == pytest.approx(1, abs=1e-4)
    assert d["kl_spliced"] == pytest.approx(0, abs=1e-6) and d["kl_zero_ablation"] > 0


def strict_json(text: str) -> Any:
    """JSON as strict readers (jq, JavaScript) parse it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_zero_decoder_costs_what_zero_ablation_costs(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eye = torch.eye(D)
    zero = relu_sae(torch.cat([eye, -eye], 1), torch.zeros(2 * D, D))
    folder = save_sae(with_identity(zero, tiny_model_dir), tmp_path / "zero")
    m = evaluate(eval_config([folder], corpus)).evals[0].metrics
    d = m["downstream"]
    assert d["ce_spliced"] == pytest.approx(d["ce_zero_ablation"], rel=1e-6)
    assert d["ce_loss_recovered_zero"] == pytest.approx(0, abs=1e-5)
    assert d["kl_spliced"] == pytest.approx(d["kl_zero_ablation"], rel=1e-6)
    # x̂ = 0: the relative reconstruction bias E‖x̂‖² / E[x̂·x] is 0/0, which JSON writes as null
    assert (
        m["reconstruction"]["relative_reconstruction_bias"]
        != m["reconstruction"]["relative_reconstruction_bias"]
    )
    saved = strict_json((folder / "eval.json").read_text())
    assert saved["reconstruction"]["relative_reconstruction_bias"] is None
    argv = ["eval", str(folder), "--dataset", str(corpus), "--tokens", "40", "--device", "cpu"]
    assert cli.main([*argv, "--no-downstream", "--json"]) == 0
    printed = strict_json(capsys.readouterr().out)
    assert printed["saes"][0]["reconstruction"]["relative_reconstruction_bias"] is None


@pytest.mark.parametrize("fmt", ["saelens", "sparsify"])
def test_imported_saes_evaluate_like_the_original(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, fmt: str
) -> None:
    original = save_sae(
        with_identity(make_sae("topk", d_in=D, d_sae=64, k=6, seed=1), tiny_model_dir), tmp_path / "native"
    )
    exported = convert(
        ConvertConfig(sae_dir=original, from_format="native", to_format=fmt, out=tmp_path / fmt / "layers.1")
    ).out
    imported = convert(
        ConvertConfig(
            sae_dir=exported,
            from_format=fmt,
            to_format="native",
            out=tmp_path / "imported",
            model=str(tiny_model_dir),
            hookpoint="resid_post:1",
        )
    ).out
    result = evaluate(eval_config([original, imported], corpus, downstream=False))
    a, b = (e.metrics for e in result.evals)
    assert b["sae"]["architecture"] == "topk" and b["sparsity"]["l0_mean"] == pytest.approx(6)
    assert b["reconstruction"]["fvu"] == pytest.approx(a["reconstruction"]["fvu"], rel=1e-5)
    assert b["sparsity"]["l0_mean"] == a["sparsity"]["l0_mean"]
    assert b["settings"]["hookpoint"] == a["settings"]["hookpoint"] == "model.layers.1"


def test_several_saes_share_one_table_and_one_frontier_plot(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    folders = [
        save_sae(
            with_identity(make_sae("topk", d_in=D, d_sae=64, k=k, seed=k), tiny_model_dir),
            tmp_path / "saes" / f"k{k}",
        )
        for k in (2, 8)
    ]
    result = evaluate(eval_config(folders, corpus, downstream=False))
    assert result.comparison_plot == tmp_path / "saes" / "eval_frontier.png"
    assert result.comparison_plot.read_bytes()[:4] == b"\x89PNG"
    comparison = json.loads((tmp_path / "saes" / "eval_comparison.json").read_text())
    assert [s["path"] for s in comparison["saes"]] == [str(f) for f in folders]
    assert [s["sparsity"]["l0_mean"] for s in comparison["saes"]] == pytest.approx([2, 8])
    assert all((f / "eval.json").exists() for f in folders)


def test_default_corpus_is_the_saes_own_after_what_it_trained_on(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    capture = {"dataset": str(corpus), "context_len": CONTEXT, "unit": "window", "prepend_bos": True}
    sae = with_identity(
        make_sae("topk", d_in=D, d_sae=64, k=4), tiny_model_dir, training={"capture": capture, "next_doc": 3}
    )
    folder = save_sae(sae, tmp_path / "sae")
    m = evaluate(EvalConfig(saes=(folder,), tokens=40, device="cpu", downstream=False)).evals[0].metrics
    assert m["settings"]["first_input"] == 3 and m["settings"]["corpus"]["dataset"] == str(corpus)
    assert m["settings"]["corpus"]["context_len"] == CONTEXT


def test_another_model_is_refused_unless_forced_and_the_same_folder_may_be_named_relatively(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = save_sae(with_identity(identity_sae(), tiny_model_dir), tmp_path / "sae")
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    with pytest.raises(SaescopeError, match=f"trained on '{tiny_model_dir}', not '{other}'; pass --force"):
        evaluate(eval_config([folder], corpus, model=str(other)))
    forced = evaluate(eval_config([folder], corpus, model=str(other), force=True, downstream=False))
    assert forced.evals[0].metrics["settings"]["model"] == str(other)
    monkeypatch.chdir(tiny_model_dir.parent)
    relative = evaluate(eval_config([folder], corpus, model=tiny_model_dir.name, downstream=False))
    assert relative.evals[0].metrics["reconstruction"]["fvu"] == 0


# ----- the command line -----------------------------------------------------------------------------
def test_json_prints_exactly_one_document(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = save_sae(with_identity(identity_sae(), tiny_model_dir), tmp_path / "sae")
    argv = ["eval", str(folder), "--dataset", str(corpus), "--tokens", "40", "--context-len", str(CONTEXT)]
    assert cli.main([*argv, "--device", "cpu", "--json"]) == 0
    out = capsys.readouterr().out
    document = strict_json(out)  # the whole of stdout is one document
    assert [s["path"] for s in document["saes"]] == [str(folder)]
    assert document["saes"][0]["reconstruction"]["fvu"] == 0
    assert cli.main([*argv, "--device", "cpu", "--no-downstream"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["SAE", "arch", "latents", "hookpoint", "L0", "FVU"]
    row = table[1].split()
    assert row[:4] == [tmp_path.name, "relu", "64", "resid_post:1"] and "nan" not in table[1]  # its run
    assert row[-6:] == ["–"] * 6 and "not measured (--no-downstream)" in table[2]


def test_an_evaluation_is_reused_and_a_smaller_one_never_replaces_a_fuller(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = save_sae(
        with_identity(make_sae("topk", d_in=D, d_sae=64, k=4, seed=2), tiny_model_dir), tmp_path / "s"
    )
    (full,) = evaluate(eval_config([folder], corpus)).evals
    headline = (folder / "eval.json").read_bytes()
    # the same weights and settings again: nothing is run (binding the SAE would fail here)
    monkeypatch.setattr(saescope.evals, "bind_sae", lambda *a, **k: pytest.fail("evaluated again"))
    (again,) = evaluate(eval_config([folder], corpus)).evals
    assert again.metrics == json.loads(headline)
    monkeypatch.undo()
    # a quick check without downstream metrics is kept apart; eval.json keeps the full evaluation
    (quick,) = evaluate(eval_config([folder], corpus, tokens=20, downstream=False)).evals
    assert "downstream" not in quick.metrics and (folder / "eval.json").read_bytes() == headline
    assert len(list((folder / "evals").glob("*.json"))) == 2
    # new weights are a new evaluation
    save_sae(with_identity(make_sae("topk", d_in=D, d_sae=64, k=4, seed=3), tiny_model_dir), folder)
    (retrained,) = evaluate(eval_config([folder], corpus)).evals
    assert retrained.metrics["reconstruction"]["fvu"] != full.metrics["reconstruction"]["fvu"]
    assert json.loads((folder / "eval.json").read_text()) == json.loads(json.dumps(retrained.metrics))


def test_the_table_warns_when_hookpoints_differ(tiny_model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    folders = [
        save_sae(
            with_identity(make_sae("topk", d_in=D, d_sae=64, k=4, seed=1), tiny_model_dir, hookpoint=h),
            tmp_path / h.replace(":", "_"),
        )
        for h in ("resid_post:1", "resid_post:2")
    ]
    text = evaluate(eval_config(folders, corpus, downstream=False)).render()
    assert "resid_post:1" in text and "resid_post:2" in text
    assert "read different hookpoints (resid_post:1, resid_post:2)" in text


@pytest.mark.parametrize("case", ["hookpoint", "model", "empty"])
def test_bad_input_is_one_line_and_exit_2(
    tiny_model_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    hookpoint = "resid_post:9" if case == "hookpoint" else "resid_post:1"  # the tiny model has 4 layers
    folder = save_sae(with_identity(identity_sae(), tiny_model_dir, hookpoint=hookpoint), tmp_path / "sae")
    dataset = corpus
    if case == "empty":
        dataset = tmp_path / "empty.txt"
        dataset.write_text("")
    argv = ["eval", str(folder), "--dataset", str(dataset), "--tokens", "40", "--device", "cpu"]
    if case == "model":
        argv += ["--model", "smollm2-135m"]
    expected = {
        "hookpoint": f"{folder}: its hookpoint 'resid_post:9' is not in {tiny_model_dir}",
        "model": f"{folder} was trained on '{tiny_model_dir}', not 'smollm2-135m'; pass --force",
        "empty": f"corpus {dataset} is empty",
    }[case]
    if case == "hookpoint":  # once through a real process: exit status, stdout, no traceback
        proc = subprocess.run(
            [sys.executable, "-m", "saescope", *argv], env=ENV, capture_output=True, text=True, timeout=300
        )
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        code = cli.main(argv)
        out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("saescope eval: error: "), err
    assert expected in errors[0]
    assert not (folder / "eval.json").exists()
