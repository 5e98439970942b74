"""Latent matching by decoder cosine: best matches both ways, a one-to-one assignment, shared fractions.

    matching = match_decoders(sae_a.W_dec, sae_b.W_dec)
    matching.a_to_b.latent[i], matching.a_to_b.cosine[i]     # latent i of A's best match in B
    matching.assignment.pairs                                 # one-to-one, summed cosine maximised
    matching.shared[0.7]                                      # fraction assigned at cosine ≥ 0.7

Two regimes, chosen by the size of the cosine matrix (`dense_limit` entries):

- small (latents_a × latents_b ≤ dense_limit): the whole float32 cosine matrix, built in blocks;
  best matches from it and the exact Hungarian assignment (`scipy.optimize.linear_sum_assignment`).
- large (e.g. 65,536 × 65,536, a 17 GB float32 matrix): the matrix is screened in blocks of rows
  (`chunk_mb` each) in bfloat16 — twice as fast as float32 on these CPUs — keeping every latent's
  best partners each way; their cosines are then recomputed in float32 and the best `candidates`
  kept (so the cosines reported are exact; only which partners were kept depends on the screen).
  Inputs wider than `screen_dims` are screened on a shared random orthonormal projection to
  `screen_dims` directions (rows re-normalised: Johnson–Lindenstrauss), which cuts the screen's
  work by d_in / screen_dims — the 65,536 × 65,536 × 2,048 screen is 17.6 TFLOP, out of reach of
  a minute on 2 cores — and keeps twice `candidates` per latent for the exact rescoring. The
  projected cosine's error has a standard deviation of about √((1 − c²) / screen_dims) (0.06 for
  an unrelated pair at 256 dimensions), so a partner at cosine 0.5 or more is kept with near
  certainty while, for a latent whose best partner is weak (cosine under about 0.3), a slightly
  weaker partner may be kept instead; `screen_dims = 0` screens at full width. The assignment
  is the maximum-weight one-to-one matching on the graph of those candidate edges
  (`scipy.sparse.csgraph.min_weight_full_bipartite_matching`) in which a latent may also stay
  unmatched as if at cosine 0 (so a matching always exists and no good pair is broken to complete
  it); the latents it leaves unmatched (`fallback_pairs`, whose candidates all went to better
  pairs) are then paired among the free latents by an exact Hungarian on their cosines.
  `Assignment.upper_bound` (each latent's best cosine summed over the smaller side) bounds any
  one-to-one matching's total, so `upper_bound − total` bounds what the restriction can have
  cost.

Memory of the large regime: both decoders as float32 unit rows (a copy: 4 bytes per weight), their
projections (float32 and bfloat16, `screen_dims` per latent), one block of the screened matrix
(`chunk_mb`) and its top-k, the candidates (12 bytes per latent and candidate, each way), one
`chunk_mb` buffer of gathered rows for the exact rescoring, and the candidate graph. Two
65,536-latent SAEs with d_in 2,048 peak at about 1.9 GiB above their decoders (benchmarks/compare.py);
the dense float32 matrix alone would be 16 GiB.

This module knows nothing about files, indexes or models: it takes decoder matrices.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..config.compare import DENSE_LIMIT, SCREEN_DIMS, THRESHOLDS

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 20
"""Bins of the cosine histograms, over [0, 1] (cosines below 0 are counted apart)."""


class BestMatches(NamedTuple):
    """Each latent of one SAE's best partner in the other, by decoder cosine."""

    latent: Tensor
    """[n] int64: the partner."""
    cosine: Tensor
    """[n] float32: their cosine (float32, exact)."""


class Candidates(NamedTuple):
    """Each latent's best partners in the other SAE, best first."""

    latent: Tensor
    """[n, c] int64."""
    cosine: Tensor
    """[n, c] float32 cosines (exact)."""


class Assignment(NamedTuple):
    """A one-to-one matching of latents (every latent of the smaller SAE gets one partner)."""

    latent_a: Tensor
    """[m] int64 latents of A, ascending."""
    latent_b: Tensor
    """[m] int64 their partners in B."""
    cosine: Tensor
    """[m] float32 their decoder cosines."""
    method: str
    """`hungarian` (exact, on the dense matrix) or `candidates` (exact on the candidate graph)."""
    edges: int
    """Edges the assignment chose from (latents_a × latents_b for `hungarian`)."""
    fallback_pairs: int
    """`candidates` only: latents the matching of candidate edges left without a partner (all their
    candidates better used by others), paired afterwards among the free latents (`pair_leftovers`);
    0 for `hungarian`."""
    upper_bound: float
    """The summed best cosine of the smaller side's latents: no one-to-one matching exceeds it."""

    @property
    def total(self) -> float:
        """The assignment's summed cosine."""
        return float(self.cosine.double().sum())

    def permutation(self) -> dict[int, int]:
        """Latent of A → its partner in B."""
        return dict(zip(self.latent_a.tolist(), self.latent_b.tolist()))


class Histogram(NamedTuple):
    """Counts of cosines over [0, 1] in equal bins, and how many fell below 0."""

    edges: tuple[float, ...]
    """Bin edges (one more than the counts)."""
    counts: tuple[int, ...]
    """Cosines in each bin (the last bin includes 1)."""
    below_zero: int
    """Cosines below 0 (not in any bin)."""

    def to_json(self) -> dict[str, object]:
        return {"edges": list(self.edges), "counts": list(self.counts), "below_zero": self.below_zero}


class Matching(NamedTuple):
    """Two SAEs' latents matched by decoder cosine (see the module docstring)."""

    a_to_b: BestMatches
    """Every latent of A's best match in B."""
    b_to_a: BestMatches
    """Every latent of B's best match in A."""
    candidates_a: Candidates
    """A's latents' best few partners in B."""
    candidates_b: Candidates
    """B's latents' best few partners in A."""
    assignment: Assignment
    """The one-to-one assignment."""
    shared: dict[float, float]
    """Threshold → fraction of the smaller SAE's latents whose assigned partner has at least that
    decoder cosine."""
    histogram: Histogram
    """The assigned pairs' cosines."""
    screened_on: int
    """Random directions the candidates were screened on (0: the dense matrix or the full width)."""


def unit_rows(w: Tensor) -> Tensor:
    """The rows of `w` scaled to unit norm (float32; a zero row stays zero)."""
    w = w.detach().float()
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def rows_per_block(columns: int, chunk_mb: int, bytes_per_entry: int) -> int:
    """Rows of a [rows, columns] block that fit in `chunk_mb` MiB (at least one)."""
    return max(1, (chunk_mb << 20) // max(1, columns * bytes_per_entry))


def keep_top_per_column(
    columns: Tensor, rows: Tensor, values: Tensor, n: int, c: int
) -> tuple[Tensor, Tensor]:
    """The `c` largest entries of each of `n` columns among (column, row, value) entries (every
    column has at least `c`): ([n, c] values, [n, c] rows), largest first."""
    order = values.float().argsort(descending=True, stable=True)
    order = order[columns[order].argsort(stable=True)]
    columns, rows, values = columns[order], rows[order], values[order]
    starts = torch.searchsorted(columns, torch.arange(n))
    rank = torch.arange(len(columns)) - starts[columns]
    keep = rank < c
    return values[keep].reshape(n, c), rows[keep].reshape(n, c)


class ColumnTop:
    """Each column's `c` largest entries over blocks of rows of a matrix: the first block by
    `topk`, later ones by the entries above each column's current `c`-th largest (a few per
    column and block once the first blocks are seen), merged after each block."""

    def __init__(self, n: int, c: int) -> None:
        self.n, self.c = n, c
        self.values: Tensor | None = None
        self.rows = torch.zeros(n, c, dtype=torch.int64)

    def add(self, block: Tensor, start: int) -> None:
        """Take the entries of `block` (rows `start`… of the matrix)."""
        if self.values is None:
            top = block.topk(self.c, dim=0)
            self.values, self.rows = top.values.T.contiguous(), (top.indices + start).T.contiguous()
            return
        above = block > self.values[:, -1]
        rows, columns = above.nonzero(as_tuple=True)
        if len(rows) == 0:
            return
        every = torch.arange(self.n).repeat_interleave(self.c)
        self.values, self.rows = keep_top_per_column(
            torch.cat([every, columns]),
            torch.cat([self.rows.reshape(-1), rows + start]),
            torch.cat([self.values.reshape(-1), block[rows, columns]]),
            self.n,
            self.c,
        )


def exact_cosines(a: Tensor, b: Tensor, partners: Tensor, chunk_mb: int) -> Tensor:
    """[n, c] float32 cosines of each unit row of `a` with its `partners` [n, c] among `b`'s rows
    (the partners' rows gathered `chunk_mb` at a time into one reused buffer)."""
    n, c = partners.shape
    d = a.shape[1]
    out = torch.empty(n, c, dtype=torch.float32)
    step = rows_per_block(c * d, chunk_mb, 4)
    gathered = torch.empty(min(step, n) * c, d, dtype=torch.float32)
    for start in range(0, n, step):
        wanted = partners[start : start + step].reshape(-1)
        rows = torch.index_select(b, 0, wanted, out=gathered[: len(wanted)]).view(-1, c, d)
        out[start : start + step] = torch.bmm(rows, a[start : start + step, :, None])[:, :, 0]
    return out


def sort_candidates(latent: Tensor, cosine: Tensor, c: int) -> Candidates:
    """The best `c` candidates by their exact cosines, best first."""
    order = cosine.argsort(dim=1, descending=True)[:, :c]
    return Candidates(latent.gather(1, order), cosine.gather(1, order))


def projected(a: Tensor, b: Tensor, dims: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Both unit-row matrices on the same `dims` random orthonormal directions, rows re-normalised."""
    gen = torch.Generator().manual_seed(seed)
    directions, _ = torch.linalg.qr(torch.randn(a.shape[1], dims, generator=gen))
    return unit_rows(a @ directions), unit_rows(b @ directions)


def screen(
    a: Tensor,
    b: Tensor,
    c: int,
    chunk_mb: int,
    dtype: torch.dtype = torch.bfloat16,
    screen_dims: int = 0,
) -> tuple[Candidates, Candidates]:
    """Each unit row's `c` best partners in the other matrix, both ways, screened blockwise in
    `dtype` (on `screen_dims` random directions when the rows are wider and it is not 0) and
    rescored exactly (see the module docstring)."""
    project = 0 < screen_dims < a.shape[1]
    kept = 2 * c if project else c
    a_screen, b_screen = projected(a, b, screen_dims) if project else (a, b)
    a_side, b_side = screen_rows(a_screen, b_screen, kept, chunk_mb, dtype)
    return (
        sort_candidates(a_side, exact_cosines(a, b, a_side, chunk_mb), c),
        sort_candidates(b_side, exact_cosines(b, a, b_side, chunk_mb), c),
    )


def screen_rows(a: Tensor, b: Tensor, c: int, chunk_mb: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """([len(a), c] partners in b of each row of a, [len(b), c] partners in a of each row of b) by
    the largest entries of `a @ b.T`, computed blockwise in `dtype`."""
    c_ab = min(c, len(b))
    a_low, b_low_t = a.to(dtype), b.to(dtype).T.contiguous()
    row_index = torch.empty(len(a), c_ab, dtype=torch.int64)
    step = rows_per_block(len(b), chunk_mb, a_low.element_size())
    columns = ColumnTop(len(b), min(c, len(a), step))
    for start in range(0, len(a), step):
        block = a_low[start : start + step] @ b_low_t
        row_index[start : start + step] = block.topk(c_ab, dim=1).indices
        columns.add(block, start)
    return row_index, columns.rows


def dense_cosines(a: Tensor, b: Tensor, chunk_mb: int) -> Tensor:
    """The whole [len(a), len(b)] float32 cosine matrix of two unit-row matrices, built blockwise."""
    out = torch.empty(len(a), len(b), dtype=torch.float32)
    step = rows_per_block(len(b), chunk_mb, 4)
    for start in range(0, len(a), step):
        out[start : start + step] = a[start : start + step] @ b.T
    return out


def dense_candidates(cos: Tensor, c: int) -> tuple[Candidates, Candidates]:
    """Both sides' best `c` partners from a dense cosine matrix."""
    rows = cos.topk(min(c, cos.shape[1]), dim=1)
    cols = cos.T.topk(min(c, cos.shape[0]), dim=1)
    return Candidates(rows.indices, rows.values), Candidates(cols.indices, cols.values)


def hungarian(cos: Tensor, upper_bound: float) -> Assignment:
    """The exact maximum-cosine one-to-one assignment on the dense matrix."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cos.numpy(), maximize=True)
    rows_t, cols_t = torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
    chosen = cos[rows_t, cols_t]
    return Assignment(rows_t, cols_t, chosen, "hungarian", cos.numel(), 0, upper_bound)


def candidate_edges(
    side_a: Candidates, side_b: Candidates, nb: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, cosines) of the candidate graph: every candidate edge of either side, once."""
    na = len(side_a.latent)
    rows = torch.cat([torch.arange(na).repeat_interleave(side_a.latent.shape[1]), side_b.latent.reshape(-1)])
    cols = torch.cat([side_a.latent.reshape(-1), torch.arange(nb).repeat_interleave(side_b.latent.shape[1])])
    cosines = torch.cat([side_a.cosine.reshape(-1), side_b.cosine.reshape(-1)])
    keys, first = np.unique((rows * nb + cols).numpy(), return_index=True)
    return keys // nb, keys % nb, cosines.numpy()[first].astype(np.float64)


def match_with_dummies(
    small: np.ndarray, large: np.ndarray, cosines: np.ndarray, n_small: int, n_large: int
) -> np.ndarray:
    """Each latent of the smaller side's partner (-1: none) in the maximum-cosine matching of the
    candidate edges (small[i], large[i], cosines[i]), where a latent may also stay unmatched as if
    at cosine 0 (its own dummy partner, so a full matching always exists)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    dummies = np.arange(n_small)
    # weights cosine + 2 (in [1, 3]: an explicit zero would be no edge); a dummy weighs 2 (cosine 0)
    graph = csr_matrix(
        (
            np.concatenate([cosines + 2.0, np.full(n_small, 2.0)]),
            (np.concatenate([small, dummies]), np.concatenate([large, n_large + dummies])),
        ),
        shape=(n_small, n_large + n_small),
    )
    rows, cols = min_weight_full_bipartite_matching(graph, maximize=True)
    partner = np.full(n_small, -1, dtype=np.int64)
    partner[rows] = np.where(cols < n_large, cols, -1)
    return partner


def pair_leftovers(partner: np.ndarray, small: Tensor, large: Tensor) -> int:
    """Give every latent of the smaller side left without a partner (-1) one among the larger side's
    free latents, by an exact Hungarian on their cosines when that matrix is at most `DENSE_LIMIT`
    entries, else in order; returns how many were paired."""
    from scipy.optimize import linear_sum_assignment

    left = np.flatnonzero(partner < 0)
    if len(left) == 0:
        return 0
    taken = np.zeros(len(large), dtype=bool)
    taken[partner[partner >= 0]] = True
    free = np.flatnonzero(~taken)
    if len(left) * len(free) <= DENSE_LIMIT:
        cos = (small[torch.as_tensor(left)] @ large[torch.as_tensor(free)].T).numpy()
        rows, cols = linear_sum_assignment(cos, maximize=True)
        partner[left[rows]] = free[cols]
    else:
        partner[left] = free[: len(left)]
    return len(left)


def sparse_assignment(
    side_a: Candidates, side_b: Candidates, a: Tensor, b: Tensor, upper_bound: float
) -> Assignment:
    """The maximum-cosine one-to-one assignment on the candidate graph (see the module docstring)."""
    rows, cols, cosines = candidate_edges(side_a, side_b, len(b))
    a_small = len(a) <= len(b)
    small, large = (a, b) if a_small else (b, a)
    edges = (rows, cols) if a_small else (cols, rows)
    partner = match_with_dummies(edges[0], edges[1], cosines, len(small), len(large))
    fallback = pair_leftovers(partner, small, large)
    ids = torch.arange(len(small))
    mate = torch.as_tensor(partner)
    chosen = exact_cosines(small, large, mate[:, None], 64)[:, 0]
    latent_a, latent_b = (ids, mate) if a_small else (mate, ids)
    order = latent_a.argsort()
    return Assignment(
        latent_a[order],
        latent_b[order],
        chosen[order],
        "candidates",
        len(rows),
        fallback,
        upper_bound,
    )


def cosine_histogram(cosine: Tensor, bins: int = HISTOGRAM_BINS) -> Histogram:
    """`cosine` counted in `bins` equal bins over [0, 1], and those below 0."""
    values = cosine.double().clamp_max(1.0)
    below = int((values < 0).sum())
    counts = torch.histc(values[values >= 0], bins=bins, min=0.0, max=1.0).long()
    edges = tuple(round(i / bins, 10) for i in range(bins + 1))
    return Histogram(edges, tuple(int(c) for c in counts), below)


def shared_fractions(assignment: Assignment, thresholds: Sequence[float] = THRESHOLDS) -> dict[float, float]:
    """Threshold → fraction of assigned pairs (every latent of the smaller SAE) at or above it."""
    n = len(assignment.cosine)
    return {t: float((assignment.cosine >= t).sum()) / n for t in thresholds}


def match_decoders(
    w_dec_a: Tensor,
    w_dec_b: Tensor,
    candidates: int = 8,
    dense_limit: int = DENSE_LIMIT,
    chunk_mb: int = 256,
    thresholds: Sequence[float] = THRESHOLDS,
    screen_dims: int = SCREEN_DIMS,
) -> Matching:
    """Match the latents of two SAEs by the cosine of their decoder rows (see the module docstring)."""
    a, b = unit_rows(w_dec_a.cpu()), unit_rows(w_dec_b.cpu())
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"decoders of different widths: {a.shape[1]} and {b.shape[1]}")
    dense = len(a) * len(b) <= dense_limit
    if dense:
        cos = dense_cosines(a, b, chunk_mb)
        side_a, side_b = dense_candidates(cos, candidates)
    else:
        side_a, side_b = screen(a, b, candidates, chunk_mb, screen_dims=screen_dims)
    a_to_b = BestMatches(side_a.latent[:, 0].clone(), side_a.cosine[:, 0].clone())
    b_to_a = BestMatches(side_b.latent[:, 0].clone(), side_b.cosine[:, 0].clone())
    smaller = a_to_b if len(a) <= len(b) else b_to_a
    upper_bound = float(smaller.cosine.double().sum())
    if dense:
        assignment = hungarian(cos, upper_bound)
    else:
        log.info("assigning %d × %d latents on their %d best candidates each way", len(a), len(b), candidates)
        assignment = sparse_assignment(side_a, side_b, a, b, upper_bound)
    return Matching(
        a_to_b,
        b_to_a,
        side_a,
        side_b,
        assignment,
        shared_fractions(assignment, thresholds),
        cosine_histogram(assignment.cosine),
        0 if dense or not 0 < screen_dims < a.shape[1] else screen_dims,
    )


__all__ = [
    "Assignment",
    "BestMatches",
    "Candidates",
    "Histogram",
    "Matching",
    "cosine_histogram",
    "match_decoders",
    "shared_fractions",
    "unit_rows",
]
