"""`saescope dashboard` on the demo SAE: every latent's page (4,608 for the demo), against the
per-latent path it replaced, measured in the same run.

Targets: every latent of the demo SAE in at most 3 minutes on this CPU (issue 10), and at most
60 s for the demo's 10-minute budget.

The measured path is the stage itself: `latent_views` asks the index for a few postings buckets
of latents at once (`Index.*_many`: each table, bucket and document read once), one process per
core writes the pages into a staging folder synced once. The baseline is the path the stage had
before: one `latent_view` per latent (about 11 index calls: SQL relation lookups, row-group reads)
and a durable `write_atomic` (an fsync) per page, in one process, over `--baseline-latents`
latents spread over the whole SAE, its time scaled to every latent (the tokenizer is loaded before
it is timed, so the scaling does not multiply its load). The stage in one process on those same
latents is printed too, and its pages are checked to be byte-identical to the baseline's.

    python benchmarks/dashboard.py --index runs/demo/index
"""

from __future__ import annotations

import argparse
import filecmp
import os
import tempfile
import time
from pathlib import Path

from saescope.config.dashboard import DashboardConfig
from saescope.dashboard import dashboard, explanation_views, latent_view, settings_of
from saescope.files import write_atomic
from saescope.index import Index
from saescope.render import latent_page


def stage(index: Path, out: Path, workers: int, latents: tuple[int, ...] = ()) -> tuple[float, int]:
    """(seconds, pages) of one dashboard build by the stage."""
    started = time.perf_counter()
    result = dashboard(DashboardConfig(index=index, out=out, workers=workers, latents=latents))
    return time.perf_counter() - started, result.pages


def per_latent(index_path: Path, out: Path, latents: list[int]) -> float:
    """Seconds to write `latents`' pages the per-latent way (one `latent_view` and one durable
    write each), the tokenizer loaded beforehand."""
    index = Index(index_path)
    _ = index.tokenizer
    settings = settings_of(DashboardConfig(index=index_path))
    (out / "latents").mkdir(parents=True)
    started = time.perf_counter()
    explanations = explanation_views(index)
    for latent in latents:
        write_atomic(
            out / "latents" / f"{latent}.html",
            latent_page(latent_view(index, latent, settings, explanations)),
        )
    return time.perf_counter() - started


def same_pages(a: Path, b: Path, latents: list[int]) -> bool:
    """Whether two dashboards hold byte-identical pages for `latents`."""
    names = [f"{i}.html" for i in latents]
    match, mismatch, errors = filecmp.cmpfiles(a / "latents", b / "latents", names, shallow=False)
    return not mismatch and not errors and len(match) == len(names)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=Path("runs/demo/index"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-latents", type=int, default=512, help="0: every latent")
    args = parser.parse_args()
    d_sae = Index(args.index).d_sae
    n = min(args.baseline_latents or d_sae, d_sae)
    sample = sorted({i * d_sae // n for i in range(n)})
    with tempfile.TemporaryDirectory(prefix="saescope-dashboard-") as tmp:
        root = Path(tmp)
        fast_s, pages = stage(args.index, root / "fast", args.workers)
        one_s, _ = stage(args.index, root / "one", 1, tuple(sample))
        base_s = per_latent(args.index, root / "base", sample)
        identical = same_pages(root / "fast", root / "base", sample) and same_pages(
            root / "one", root / "base", sample
        )
    scale = d_sae / len(sample)
    print(
        f"index: {args.index} ({d_sae:,} latents), {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"dashboard (bulk), {args.workers} processes: {pages:,} pages in {fast_s:.1f} s "
        f"({pages / fast_s:.1f} pages/s, {1000 * fast_s / pages:.1f} ms/page)"
    )
    print(
        f"dashboard (bulk), one process: {len(sample)} latents in {one_s:.1f} s, "
        f"{one_s * scale:.1f} s scaled to {d_sae:,} ({1000 * one_s / len(sample):.1f} ms/page)"
    )
    print(
        f"baseline (per latent, fsync per page), one process: {len(sample)} latents in {base_s:.1f} s, "
        f"{base_s * scale:.1f} s scaled to {d_sae:,} ({1000 * base_s / len(sample):.1f} ms/page)"
    )
    print(f"speed-up: {base_s * scale / fast_s:.1f}x (one process: {base_s / one_s:.1f}x)")
    verdicts = [f"<= {limit} s: {'met' if fast_s <= limit else 'NOT met'}" for limit in (180, 60)]
    print(f"every latent in {'; '.join(verdicts)}")
    print(f"pages identical to the baseline's: {identical}")


if __name__ == "__main__":
    main()
