"""From entry scores to a ranking of concepts: leave-one-out mask, max pooling, exact top-k, fusion.

Every step is deterministic: ties are broken by concept index (the id order of the release), never
by the order a partial sort happens to leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def mask(scores: np.ndarray, held: Sequence[Sequence[int]]) -> None:
    """Set ``scores[i, e]`` to -inf for each entry ``e`` of ``held[i]`` (in place)."""
    lens = [len(h) for h in held]
    if sum(lens):
        rows = np.repeat(np.arange(len(held)), lens)
        cols = np.fromiter((e for h in held for e in h), dtype=np.int64, count=sum(lens))
        scores[rows, cols] = -np.inf


def pool(scores: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Concept scores (n_queries, n_concepts): the best of each concept's entries. ``starts`` must be
    strictly increasing (every concept has an entry: ``Entries.from_rows``)."""
    return np.maximum.reduceat(scores, starts, axis=1)


def pool_sparse(scores: Any, concept: np.ndarray, n_concepts: int,
                held: Sequence[Sequence[int]] | None) -> np.ndarray:
    """``pool`` for non-negative sparse scores (a scipy CSR matrix, BM25's): (n_queries, n_concepts),
    0 where no entry of the concept scores. The held entries count as 0, which for concepts is the same
    as -inf under a floor of 0. Linear in the non-zeros: a concept's entries are adjacent columns, so
    once each row's columns are sorted its hits form runs."""
    scores.sort_indices()
    data = scores.data.copy()
    if held is not None:
        for i, h in enumerate(held):
            if h:
                lo, hi = scores.indptr[i], scores.indptr[i + 1]
                cols = scores.indices[lo:hi]
                pos = np.searchsorted(cols, h)
                pos = pos[pos < len(cols)]
                data[lo + pos[np.isin(cols[pos], h)]] = 0
    n_rows = scores.shape[0]
    out = np.zeros(n_rows * n_concepts, dtype=np.float32)
    if len(data):
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(scores.indptr))
        keys = rows * n_concepts + concept[scores.indices]
        runs = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        out[keys[runs]] = np.maximum.reduceat(data, runs)
    return out.reshape(n_rows, n_concepts)


def top_k(row: np.ndarray, k: int, floor: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
    """The (at most) ``k`` best indices of ``row`` with a score above ``floor``, best first, ties by
    index, and their scores. Exact: of the values tied at the k-th score, the lowest indices."""
    cand = np.flatnonzero(row > floor)
    if len(cand) > k:
        vals = row[cand]
        kth = np.partition(vals, len(vals) - k)[len(vals) - k]  # the k-th largest
        above = cand[vals > kth]
        tied = cand[vals == kth][: k - len(above)]  # flatnonzero gives index order
        cand = np.concatenate([above, tied])
    vals = row[cand]
    order = np.lexsort((cand, -vals))
    return cand[order], vals[order]


def rrf(rankings: Sequence[np.ndarray], k: int, constant: int) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of ranked concept lists: score = sum of 1 / (constant + rank), rank from
    1; the ``k`` best, ties by concept index."""
    fused: dict[int, float] = {}
    for ranked in rankings:
        for r, c in enumerate(ranked.tolist(), start=1):
            fused[c] = fused.get(c, 0.0) + 1.0 / (constant + r)
    if not fused:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    concepts = np.fromiter(fused, dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    order = np.lexsort((concepts, -scores))[:k]
    return concepts[order], scores[order]
