"""`saescope dashboard` on the demo SAE: every latent's page (4,608 for the demo), against a
baseline measured in the same run.

Target (issue 10): a dashboard for every latent of the demo SAE in at most 3 minutes on this CPU.

The measured path is the stage itself: pages gathered through `saescope.index.Index` (one query
per item: statistics, top examples, quantiles, neighbours, co-occurring latents, logit effects)
and written by one process per core, each opening the index once. The baseline writes the same
pages from one process, the way a loop over latents does; it runs over every latent too unless
`--baseline-latents` asks for fewer (then its time is scaled to the full count, and said so).
Both outputs are checked to be identical.

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
from saescope.dashboard import dashboard
from saescope.index import Index


def timed(index: Path, out: Path, workers: int, latents: tuple[int, ...] = ()) -> tuple[float, int]:
    """(seconds, pages) of one dashboard build."""
    started = time.perf_counter()
    result = dashboard(DashboardConfig(index=index, out=out, workers=workers, latents=latents))
    return time.perf_counter() - started, result.pages


def same_pages(a: Path, b: Path, latents: range) -> bool:
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
    parser.add_argument("--baseline-latents", type=int, default=0, help="0: every latent")
    args = parser.parse_args()
    d_sae = Index(args.index).d_sae
    with tempfile.TemporaryDirectory(prefix="saescope-dashboard-") as tmp:
        fast_s, pages = timed(args.index, Path(tmp) / "fast", args.workers)
        n = args.baseline_latents or d_sae
        base_s, base_pages = timed(args.index, Path(tmp) / "base", 1, tuple(range(n)))
        identical = same_pages(Path(tmp) / "fast", Path(tmp) / "base", range(n))
    scaled = base_s * d_sae / base_pages
    note = "" if base_pages == d_sae else f" (measured on {base_pages} latents, scaled to {d_sae})"
    print(f"index: {args.index} ({d_sae:,} latents), {os.cpu_count()} CPU cores")
    rate = pages / fast_s
    print(f"dashboard, {args.workers} processes: {pages:,} pages in {fast_s:.1f} s ({rate:.1f} pages/s)")
    print(f"baseline, one process:  {d_sae:,} pages in {scaled:.1f} s{note} ({d_sae / scaled:.1f} pages/s)")
    verdict = "met" if fast_s <= 180 else "NOT met"
    print(f"speed-up: {scaled / fast_s:.2f}x; target, every latent in <= 180 s: {verdict}")
    print(f"pages identical: {identical}")


if __name__ == "__main__":
    main()
