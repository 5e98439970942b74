"""Quantile examples of a heavy latent: the sort by activation, against the two-key sort it
replaced, measured in the same run.

Issue: `Index.quantile_examples` had a p95 of 292 ms on a 10M-token index, for latents firing on
millions of tokens: it reads the latent's whole posting list and sorts it by (activation, token).
The sort is now a stable radix sort of the float16 activations' bit patterns (`windows.by_activation`);
the read is unchanged. This prints, for synthetic posting lists of heavy-latent sizes (float16
activations, as the index stores them), the time of the draw (`quantile_centres`, 10 quantiles x 3)
beside the lexsort it replaced, checks both draw the same centres, and, with `--index`, the time
of `Index.quantile_examples` for the index's heaviest latent (read included).

    python benchmarks/quantiles.py --index runs/demo/index
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from saescope.index import Index, windows
from saescope.index.windows import quantile_centres


def timed(run: Any, repeats: int) -> tuple[float, Any]:
    """(median seconds, last result) of `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def lexsort_centres(keys: np.ndarray, values: np.ndarray) -> Any:
    """The draw with the two-key sort it had before (`by_activation` swapped for `np.lexsort`)."""
    fast = windows.by_activation
    windows.by_activation = lambda k, v: np.lexsort((k, v))  # type: ignore[assignment]
    try:
        return quantile_centres(keys, values, 7, 10, 3, 0)
    finally:
        windows.by_activation = fast


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in (100_000, 1_000_000, 3_000_000):
        keys = np.sort(rng.choice(20 * n, n, replace=False)).astype(np.int64)
        values = rng.gamma(2, 1, n).astype(np.float16).astype(np.float32)
        new_s, new = timed(lambda k=keys, v=values: quantile_centres(k, v, 7, 10, 3, 0), args.repeats)
        old_s, old = timed(lambda k=keys, v=values: lexsort_centres(k, v), args.repeats)
        print(
            f"{n:>9,} postings: draw {1000 * new_s:6.1f} ms, with lexsort {1000 * old_s:6.1f} ms "
            f"({old_s / new_s:.1f}x); same centres: {new == old}"
        )
    if args.index is not None:
        index = Index(args.index)
        counts = index.stats().column("count").to_numpy()
        heavy = int(np.argmax(counts))
        index.quantile_examples(heavy, 10, 3)  # the tokenizer loaded once, shared below
        fresh = lambda: Index(args.index, tokenizer=index.tokenizer)  # noqa: E731  (nothing cached)
        s, _ = timed(lambda: fresh().quantile_examples(heavy, 10, 3), args.repeats)
        what = f"heaviest latent {heavy} ({counts[heavy]:,} postings), quantile_examples on a fresh Index"
        print(f"{args.index}: {what}: {1000 * s:.1f} ms")


if __name__ == "__main__":
    main()
