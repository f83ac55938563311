"""Ranking concepts for queries: the retriever a caller opens (``open_retriever``) and searches.

Per batch of queries: entry scores (BM25 or cosine), the query's own string masked (leave-one-out:
every entry, of any concept, folded like the query), the best entry of each concept as its score,
then the exact top k, ties by concept index. Hybrid fuses the two rankings by reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from termnorm_eval.retrieval import cache, rank
from termnorm_eval.retrieval.entries import Entries, load_entries
from termnorm_eval.retrieval.spec import RRF_DEPTH, RRF_K, RetrieverSpec

BATCH = 256  # queries scored together: 256 x 131k GO entries in float32 is 134 MB
# The lowest score that is a hit: a BM25 score of 0 shares no token with the query (ranking those
# would fill the top k with concepts in id order); every cosine counts, masked ones (-inf) never.
FLOOR = {"bm25": 0.0, "dense": -np.inf}


@dataclass(frozen=True)
class Ranking:
    concepts: np.ndarray  # concept indices, best first, at most k; only real hits
    scores: np.ndarray  # same length: BM25 score, cosine or fused RRF score


class Scorer(Protocol):
    def scores(self, queries: Sequence[str]) -> Any:  # (n_queries, n_entries): an array or CSR matrix
        ...


class Retriever:
    """A retriever over every live concept of one terminology's release."""

    def __init__(self, spec: RetrieverSpec, entries: Entries, scorers: dict[str, Scorer]) -> None:
        self.spec = spec
        self.entries = entries
        self.scorers = scorers  # "bm25" and/or "dense"

    def _ranked(self, kind: str, queries: Sequence[str], held: list[tuple[int, ...]] | None,
                k: int) -> list[Ranking]:
        scores = self.scorers[kind].scores(queries)
        if kind == "bm25":  # sparse: most entries share no token with a query
            pooled = rank.pool_sparse(scores, self.entries.concept, len(self.entries.ids), held)
        else:
            if held is not None:
                rank.mask(scores, held)
            pooled = rank.pool(scores, self.entries.starts)
        return [Ranking(*rank.top_k(row, k, FLOOR[kind])) for row in pooled]

    def search(self, queries: Sequence[str], *, holdout: bool = True, k: int = 100,
               progress: Callable[[int], None] | None = None) -> list[Ranking]:
        """The top ``k`` concepts of each query. ``holdout``: the entries ``entries.holdout(query)`` are
        masked before pooling (the query's own string never finds its concept). ``progress(n)`` after
        each batch of ``n`` queries."""
        out: list[Ranking] = []
        for i in range(0, len(queries), BATCH):
            batch = list(queries[i: i + BATCH])
            held = [self.entries.holdout(q) for q in batch] if holdout else None
            if self.spec.kind == "hybrid":
                depth = max(k, RRF_DEPTH)
                parts = [self._ranked(kind, batch, held, depth) for kind in ("bm25", "dense")]
                out.extend(Ranking(*rank.rrf([p.concepts for p in pair], k, RRF_K))
                           for pair in zip(*parts, strict=True))
            else:
                out.extend(self._ranked(self.spec.kind, batch, held, k))
            if progress is not None:
                progress(len(batch))
        return out


def open_retriever(spec: RetrieverSpec, key: str, data_dir: str | Path | None = None, *,
                   device: str | None = None, force: bool = False, show_progress: bool = True) -> Retriever:
    """The retriever of ``spec`` over terminology ``key`` of ``data_dir`` (default: the shipped data):
    its cached index loaded, or built first (a rich progress bar on stderr when ``show_progress``).
    ``force``: rebuild even when a cached index exists."""
    entries = load_entries(key, data_dir)
    scorers: dict[str, Scorer] = {}
    if spec.kind in ("bm25", "hybrid"):
        scorers["bm25"] = cache.open_bm25(spec.part("bm25"), entries, force=force,
                                          show_progress=show_progress, data_dir=data_dir)
    if spec.kind in ("dense", "hybrid"):
        scorers["dense"] = cache.open_dense(spec.part("dense"), entries, device=device, force=force,
                                            show_progress=show_progress, data_dir=data_dir)
    return Retriever(spec, entries, scorers)
