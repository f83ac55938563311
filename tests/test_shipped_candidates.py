"""The shipped RAG candidates are what BM25 ranks for the shipped records, byte for byte, and the
manifest's rag block (retriever, k, seed, recall) is what that computation says."""

from __future__ import annotations

import pytest

from termnorm_eval.retrieval.candidates import bm25_retriever, data_seed, for_data
from termnorm_eval.retrieval.entries import load_entries
from termnorm_eval.retrieval.spec import RetrieverSpec
from termnorm_eval.splits import rag, store


@pytest.mark.slow
@pytest.mark.parametrize("key", ["go", "hpo", "gene"])
def test_shipped_candidates_recompute_byte_for_byte(key: str) -> None:
    data, block = for_data(bm25_retriever(load_entries(key)), None, data_seed(None))
    assert data == rag.candidates_path(key).read_bytes()
    shipped = store.read_manifest()["terminologies"][key]["rag"]
    assert block == shipped
    assert shipped["retriever"] == RetrieverSpec.parse("bm25", None).identity()
    assert (shipped["ranked"], shipped["k"], shipped["seed"]) == (20, 10, 0)
    # a question whose every word is in the held-out form alone finds nothing (gene aliases, mostly)
    lines = rag.read(rag.candidates_path(key))
    assert all(len(ranked) <= 20 for ranked in lines.values()) and any(lines.values())
