"""Retrieval over every live concept of a release: the baseline a fine-tune must beat (issue 22).

The flow, one direction: the release index (``splits.release_index``) -> ``entries`` (each live
concept's strings: label, typed synonyms; genes: symbol, name, protein, alias and previous symbols)
-> an index (``bm25``: bm25s over folded tokens; ``dense``: sentence-transformers vectors), cached
by ``cache`` under ``$TERMNORM_CACHE/retrieval`` keyed on the release digest and the retriever's
identity (``spec``) -> ``search``: entry scores, the query's own string masked (leave-one-out,
``rank.mask``), max-pooled to concepts, exact top k with ties by id (``rank``); hybrid = reciprocal
rank fusion of the two. ``evaluate`` scores a retriever on the harness's documents.

    retriever = open_retriever(RetrieverSpec.parse("bm25", None), "hpo")
    [ranking] = retriever.search(["Kidney inflammation"])
    retriever.entries.ids[ranking.concepts[0]]
"""
