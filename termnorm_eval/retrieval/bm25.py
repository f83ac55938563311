"""Lexical retrieval: BM25 (bm25s, Lucene's variant) over the entries, scored in batches.

Tokens are ``mentions.fold(text).split()``: case and punctuation folded, split on spaces. bm25s's own
tokenizer (``\\b\\w\\w+\\b``) would drop 1-character tokens, and they tell concepts apart ("type 1
diabetes", "interleukin 2", "CD4"). No stopword list and no stemmer: a plural or another inflection
is another token.

bm25s keeps the index as one sparse row of entry scores per token (``scores["data", "indices",
"indptr"]``, what its ``get_scores`` reads one query at a time with ``np.add.at``). Read as a
(tokens x entries) CSR matrix ``M``, a batch of queries is one product ``Q @ M`` with ``Q`` the
queries' token counts: the same sums, in another float order (``allclose``), many times faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from termnorm_eval.retrieval.entries import Entries
from termnorm_eval.retrieval.spec import BM25
from termnorm_eval.splits.mentions import fold

FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
         "params.index.json")  # what bm25s.BM25.save writes (no corpus)


def tokens(text: str) -> list[str]:
    return fold(text).split()


def build(entries: Entries) -> Any:
    """A ``bm25s.BM25`` over the entries' texts (one document per entry)."""
    import bm25s  # type: ignore[import-untyped]  # no type hints

    model = bm25s.BM25(**BM25)
    model.index([tokens(t) for t in entries.texts], show_progress=False)
    return model


def save(model: Any, folder: Path) -> None:
    model.save(str(folder), show_progress=False)


def load(folder: Path) -> Any:
    import bm25s

    return bm25s.BM25.load(str(folder), load_corpus=False, mmap=False, show_progress=False)


class Bm25Scorer:
    """Entry scores of queries from a bm25s index."""

    def __init__(self, model: Any) -> None:
        from scipy.sparse import csr_matrix

        self.model = model
        s = model.scores
        # rows = tokens that occur in some entry; bm25s's vocabulary also holds the empty token, which
        # has no row (and ``tokens`` never yields it)
        self.n_tokens = len(s["indptr"]) - 1
        self.n_entries = int(s["num_docs"])
        self.matrix = csr_matrix((s["data"], s["indices"], s["indptr"]),
                                 shape=(self.n_tokens, self.n_entries))
        self.vocab: dict[str, int] = model.vocab_dict

    def token_ids(self, query: str) -> list[int]:
        """The query's tokens in the index vocabulary, repeats kept (bm25s counts them), unknown ones
        dropped."""
        ids = (self.vocab.get(t) for t in tokens(query))
        return [i for i in ids if i is not None and i < self.n_tokens]

    def scores(self, queries: Sequence[str]) -> Any:
        """(len(queries), n_entries) float32 CSR matrix (most entries share no token with a query: 0);
        a query without known tokens scores 0 everywhere."""
        from scipy.sparse import csr_matrix

        rows = [self.token_ids(q) for q in queries]
        indptr = np.cumsum([0, *(len(r) for r in rows)])
        cols = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(indptr[-1]))
        q = csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr), shape=(len(rows), self.n_tokens))
        q.sum_duplicates()  # a repeated token: its count
        return q @ self.matrix

    def loop_scores(self, query: str) -> np.ndarray:
        """bm25s's own per-query scores (``get_scores``): the reference the batched product equals."""
        ids = self.token_ids(query)
        if not ids:  # bm25s raises on an empty token list
            return np.zeros(self.n_entries, dtype=np.float32)
        return np.asarray(self.model.get_scores(ids), dtype=np.float32)
