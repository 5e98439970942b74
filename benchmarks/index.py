"""Latent index figures, each beside a baseline measured in the same run.

1. Storage: bytes per stored nonzero (its token key included) and per token, against delphi's layout
   (three uint16 locations + a float16 value per nonzero, written here as a safetensors file of
   the same postings) and against dense float16 activations (2 · d_sae bytes per token).
2. Build speed on this CPU, SmolLM2-135M (the embedded model): tokens/s of `saescope index` from
   text and from an activation store, against the forward pass alone (the model up to the SAE's
   layer over the same inputs, nothing else).
3. Query latency, warm, p50 and p95 over 100 random latents, on an index of `--tokens` tokens
   (default 10M) filled with SYNTHETIC latents written by the real writer: TopK-like (32 draws of
   4,608 per token, a latent drawn twice firing once; latent i drawn with probability ∝ 1/(i + 10),
   Zipf-ish), lognormal activations. Top-20 examples (with context windows) against a scan of
   every postings file for the same top 20 (no windows); examples per quantile; co-occurring latents.
4. Latents of a 128-token text with the model loaded (`--text` queries), against the forward pass
   alone on the same tokens.

    python benchmarks/index.py                     # everything (the 10M-token index takes minutes)
    python benchmarks/index.py --tokens 1000000    # a smaller synthetic index
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import torch
from safetensors.numpy import save_file

from saescope.bound import bind_sae, heldout_corpus
from saescope.capture import capture
from saescope.config import CaptureConfig, IndexConfig
from saescope.data import iter_model_inputs
from saescope.errors import SaescopeError
from saescope.hooks import collect_activations
from saescope.index.build import build_index
from saescope.index.finalize import compact, finish
from saescope.index.format import IndexHeader, write_header
from saescope.index.postings import as_stored
from saescope.index.reader import Index
from saescope.index.sources import CodeBatch, Codes, first_tokens
from saescope.index.text_latents import text_latents
from saescope.index.writer import IndexWriter
from saescope.positions import iter_positions
from saescope.sae import SAEConfig, SparseAutoencoder, get_architecture
from saescope.sae.formats import save_sae
from saescope.store.docs import DocRecord

D_SAE, K, STRIDE, VOCAB = 4608, 32, 256, 49152
HOOKPOINT = "resid_post:15"


# ----------------------------------------------------------------------------------- synthetic
def synthetic_batches(tokens: int, seed: int = 0, batch_docs: int = 64) -> Iterator[tuple[CodeBatch, Codes]]:
    """TopK-like codes over `tokens` tokens (see the module docstring), in documents of 255 tokens."""
    rng = np.random.default_rng(seed)
    p = 1.0 / (np.arange(D_SAE) + 10.0)
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    per_doc = STRIDE - 1
    docs = -(-tokens // per_doc)
    for first in range(0, docs, batch_docs):
        ids = list(range(first, min(first + batch_docs, docs)))
        n_rows = sum(min(per_doc, tokens - d * per_doc) for d in ids)
        doc_ids = np.repeat(ids, per_doc)[:n_rows]
        positions = np.tile(np.arange(1, STRIDE), len(ids))[:n_rows]
        latents = np.sort(np.searchsorted(cdf, rng.random((n_rows, K))), axis=1)
        acts = rng.lognormal(0.0, 0.7, size=(n_rows, K)).astype(np.float32)
        acts[:, 1:][latents[:, 1:] == latents[:, :-1]] = 0  # a latent drawn twice fires once
        token_ids = rng.integers(0, VOCAB, size=(len(ids), STRIDE))
        records = [DocRecord(d, token_ids[i].tolist(), "", "synthetic") for i, d in enumerate(ids)]
        batch = CodeBatch(
            doc_ids,
            positions.astype(np.int32),
            token_ids[doc_ids - ids[0], positions].astype(np.int32),
            doc_ids.astype(np.int64),
            records,
            np.array(ids, dtype=np.int64),
            [],
        )
        yield batch, Codes(torch.from_numpy(acts), torch.from_numpy(latents.astype(np.int64)))


def random_sae(model: str = "smollm2-135m", d_in: int = 576, seed: int = 0) -> SparseAutoencoder:
    """A random TopK SAE (4,608 latents, k = 32) on the embedded model's resid_post:15."""
    cfg = SAEConfig(
        "topk", d_in, D_SAE, K, model=model, hookpoint="model.layers.15", hookpoint_alias=HOOKPOINT
    )
    sae = get_architecture("topk")(cfg)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(D_SAE, d_in, generator=gen)
    with torch.no_grad():
        sae.W_dec.copy_(rows / rows.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.t())
    return sae.eval()


def build_synthetic(out: Path, tokens: int) -> float:
    """Write the synthetic index with the real writer and finaliser; returns seconds."""
    sae = random_sae()
    header = IndexHeader(
        sae="(synthetic)",
        sae_sha256="synthetic",
        cfg=sae.cfg.to_dict(),
        model="smollm2-135m",
        hookpoint="model.layers.15",
        d_sae=D_SAE,
        source="synthetic",
        corpus=None,
        store=None,
        start=0,
        stride=STRIDE,
        target_tokens=tokens,
        values="float16",
        bucket_latents=64,
        world_size=1,
        settings={"top_examples": 100},
    )
    cfg = IndexConfig(saes=(Path("synthetic"),), map="pca", tokens=tokens)
    out.mkdir(parents=True)
    write_header(out, header)
    writer = IndexWriter(out, 0, STRIDE, 64, "float16", 65_536, np.zeros(VOCAB, dtype=bool))
    t0 = time.perf_counter()
    for batch, codes in synthetic_batches(tokens):
        writer.add(batch, codes, int(batch.order[-1]) + 1)
    writer.finish(writer.cursor)
    compact(out, header, cfg, 0, 1)

    def no_model() -> None:
        raise SaescopeError("a synthetic index has no model")

    finish(out, header, cfg, sae, no_model)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------- storage
def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def delphi_bytes_per_nonzero(index: Path, d_sae: int) -> float:
    """Bytes per nonzero of one bucket's postings written in delphi's layout (safetensors)."""
    path = next(iter(sorted((index / "postings").glob("*.parquet"))))
    table = duckdb.sql(f"SELECT latent, token, activation FROM '{path}'").fetchnumpy()
    n = len(table["latent"])
    doc, pos = np.divmod(table["token"], STRIDE)
    wide = np.uint32 if d_sae > 65_536 else np.uint16  # delphi: 14 bytes above 65,536 latents
    locations = np.stack([doc.astype(wide), pos.astype(wide), table["latent"].astype(wide)], axis=1)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "delphi.safetensors"
        save_file(
            {"locations": locations, "activations": as_stored(table["activation"], "float16")}, str(file)
        )
        return file.stat().st_size / n


def report_storage(index: Path, label: str) -> None:
    h = Index(index).header
    per_nonzero = folder_bytes(index / "postings") / h.nonzeros
    per_token = folder_bytes(index) / h.tokens
    delphi = delphi_bytes_per_nonzero(index, h.d_sae)
    dense = 2 * h.d_sae
    k = h.nonzeros / h.tokens
    print(f"\n[storage] {label}: {h.tokens:,} tokens, {h.nonzeros:,} nonzeros ({k:.1f} per token)")
    print(f"  ours          {per_nonzero:6.2f} bytes per nonzero (postings, token key included)")
    print(f"                {per_token:6.1f} bytes per token (the whole folder: tokens, docs, tables too)")
    print(f"  delphi        {delphi:6.2f} bytes per nonzero (same postings written as delphi stores them)")
    print(f"                {delphi * k:6.1f} bytes per token")
    print(f"  dense float16 {dense / k:6.1f} bytes per nonzero, {dense:,} bytes per token")
    print(f"  target <= 4 bytes per nonzero: {'met' if per_nonzero <= 4 else 'NOT met'}")


# ------------------------------------------------------------------------------------- latency
def timed(fn: Callable[[int], object], latents: list[int]) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `fn(latent)` over `latents`."""
    times = []
    for latent in latents:
        t0 = time.perf_counter()
        fn(latent)
        times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=20)
    return statistics.median(times), q[18]


def report_latency(index: Path) -> None:
    reader = Index(index)
    reader.decode(list(range(VOCAB)))  # warm: the tokenizer and every token's text
    rng = np.random.default_rng(1)
    chosen = rng.choice(D_SAE, size=200, replace=False).tolist()
    warmup, latents = chosen[:100], chosen[100:]  # warm: other latents open every file first
    scan = duckdb.connect()
    glob = f"'{index}/postings/*.parquet'"
    print(
        f"\n[latency] warm, 100 random latents, index of {reader.tokens:,} synthetic tokens (ms, p50 / p95)"
    )

    def scan_top(latent: int) -> object:
        sql = (
            f"SELECT token, activation FROM {glob} WHERE latent = {latent} ORDER BY activation DESC LIMIT 20"
        )
        return scan.execute(sql).fetchall()

    cases: list[tuple[str, Callable[[int], object], int]] = [
        ("top-20 examples with windows", lambda i: reader.top_examples(i, 20), 100),
        ("  baseline: SQL over all postings", scan_top, 20),  # seconds each: 20 latents
        ("examples per quantile (10 x 3)", lambda i: reader.quantile_examples(i, 10, 3), 100),
        ("co-occurring latents (20)", lambda i: reader.cooccurring(i, 20), 100),
    ]
    for bucket in range(reader.header.buckets):  # warm: every postings file's footer read once
        reader.top_examples(min(bucket * reader.header.bucket_latents, D_SAE - 1), 1)
    results = {}
    for name, fn, n in cases:
        timed(fn, warmup[:n])  # file footers read, the process warm; the latents timed are new ones
        results[name] = timed(fn, latents[:n])
        print(f"  {name:34s} {results[name][0]:7.1f} / {results[name][1]:7.1f}  ({n} latents)")
    p95 = results[cases[0][0]][1]
    print(f"  target top-20 p95 <= 50 ms: {'met' if p95 <= 50 else 'NOT met'}")


# ------------------------------------------------------------------------------------- the model
def forward_only_rate(bound: object, tokens: int, batch_size: int) -> float:
    """Tokens/s of the forward pass alone (up to the SAE's layer) over the held-out inputs."""
    sae, loaded, hookpoint = bound.sae, bound.loaded_model, bound.hookpoint  # type: ignore[attr-defined]
    corpus, start = heldout_corpus(sae)
    t0, seen = time.perf_counter(), 0  # tokenising counts, as it does when indexing
    inputs = first_tokens(iter_model_inputs(corpus, loaded.tokenizer, start), tokens)
    for pb in iter_positions(loaded, [hookpoint], inputs, batch_size):
        seen += len(pb.token_ids)
    return seen / (time.perf_counter() - t0)


def report_build(sae_dir: Path, work: Path, tokens: int) -> None:
    for name in ("from-text", "from-store", "acts"):  # scratch of an earlier run of this benchmark
        shutil.rmtree(work / name, ignore_errors=True)
    bound = bind_sae(sae_dir, settings=None)
    print(f"\n[build] SmolLM2-135M on this CPU, SAE {sae_dir} ({bound.sae.d_sae} latents), {tokens:,} tokens")
    forward = forward_only_rate(bound, tokens, 8)
    print(f"  baseline: forward pass alone      {forward:8.0f} tok/s")
    t0 = time.perf_counter()
    result = build_index(IndexConfig(saes=(sae_dir,), out=(work / "from-text",), tokens=tokens, device="cpu"))
    text_seconds = time.perf_counter() - t0
    print(f"  index from text: streaming        {result.tokens_per_second:8.0f} tok/s (model + SAE + chunks)")
    print(f"  index from text: whole command    {tokens / text_seconds:8.0f} tok/s ({text_seconds:.1f} s)")
    corpus = heldout_corpus(bound.sae).corpus
    acts = work / "acts"
    store = CaptureConfig(
        model="smollm2-135m",
        dataset=corpus.dataset,
        hookpoints=(HOOKPOINT,),
        tokens=tokens,
        device="cpu",
        out=acts,
    )
    capture(store)
    t0 = time.perf_counter()
    from_store = IndexConfig(
        saes=(sae_dir,), out=(work / "from-store",), acts=acts, tokens=tokens, device="cpu"
    )
    result = build_index(from_store)
    store_seconds = time.perf_counter() - t0
    print(
        f"  index from a store: streaming     {result.tokens_per_second:8.0f} tok/s (SAE + chunks, no model)"
    )
    print(f"  index from a store: whole command {tokens / store_seconds:8.0f} tok/s ({store_seconds:.1f} s)")
    report_storage(work / "from-text", "real SAE on held-out text")
    report_text_latency(bound)


def report_text_latency(bound: object) -> None:
    loaded, hookpoint = bound.loaded_model, bound.hookpoint  # type: ignore[attr-defined]
    words = ["The", "river", "runs", "past", "the", "old", "stone", "house", "where", "light", "falls"]
    text = " ".join(words[i % len(words)] for i in range(200))
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"][:127]
    text = loaded.tokenizer.decode(ids)
    input_ids = torch.tensor([[loaded.tokenizer.bos_token_id, *ids]])
    text_latents(bound, text, rank=20)  # type: ignore[arg-type]  # warm
    ours, base = [], []
    for _ in range(20):  # interleaved, so that both see the same load on a shared machine
        with collect_activations(loaded.model, [hookpoint]) as collector, torch.inference_mode():
            t0 = time.perf_counter()
            collector.run(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
            base.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        text_latents(bound, text, rank=20)  # type: ignore[arg-type]
        ours.append((time.perf_counter() - t0) * 1e3)
    median = statistics.median(ours)
    print("\n[text] latents of a 128-token text, model loaded (ms, median of 20, interleaved)")
    forward = statistics.median(base)
    print(f"  ours (--text: forward to the SAE's layer, SAE, each token's latents, ranking) {median:7.1f}")
    print(f"  baseline: the forward pass alone                                            {forward:7.1f}")
    print(f"  target <= 300 ms: {'met' if median <= 300 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=10_000_000, help="tokens of the synthetic index")
    parser.add_argument("--build-tokens", type=int, default=20_000, help="tokens indexed from text and store")
    parser.add_argument(
        "--sae", type=Path, default=None, help="an SAE on the embedded model (default: random)"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch folder (default: a temporary one); a synthetic index there is reused",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default: torch's own); 1 on a shared, busy machine",
    )
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"this machine: {os.cpu_count()} CPUs, load average {load:.1f} at the start (other work slows it)")
    print(
        f"torch threads: {torch.get_num_threads()} (on a busy machine, OpenMP threads waiting for each other"
    )
    print("  cost more than they bring: --threads 1 measures the code, not the contention)")
    work = args.work or Path(tempfile.mkdtemp(prefix="saescope-bench-index-"))
    try:
        built = (work / "synthetic" / "index.json").exists()
        if not args.skip_synthetic and built:
            print(f"[synthetic] reusing the index in {work / 'synthetic'}")
        elif not args.skip_synthetic:
            seconds = build_synthetic(work / "synthetic", args.tokens)
            rate = args.tokens / seconds
            print(
                f"[synthetic] {args.tokens:,} tokens indexed in {seconds:.0f} s ({rate:,.0f} tok/s, no model)"
            )
        if not args.skip_synthetic:
            report_storage(work / "synthetic", "synthetic TopK-like latents")
            report_latency(work / "synthetic")
        if not args.skip_model:
            sae_dir = args.sae
            if sae_dir is None:
                sae_dir = work / "sae"
                save_sae(random_sae(), sae_dir)
            report_build(sae_dir, work, args.build_tokens)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
