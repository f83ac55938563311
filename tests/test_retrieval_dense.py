"""The dense retriever (issue 22, item 2) over the full shipped HPO with the shipped all-MiniLM-L6-v2:
pooling and top-k equal a brute-force loop, and no hit comes through a held-out string. Slow: the
build embeds every HPO string (about a minute on 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from termnorm_eval.retrieval import dense
from termnorm_eval.retrieval.search import FLOOR, Retriever, open_retriever
from termnorm_eval.retrieval.spec import RetrieverSpec
from termnorm_eval.splits import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hpo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TERMNORM_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("TERMNORM_EMBEDDING_MODEL", raising=False)
        yield open_retriever(RetrieverSpec.parse("dense", None), "hpo", show_progress=False)


def _queries() -> list[str]:
    """50 real questions: 20 labels, 20 synonyms and lay terms, and 10 labels as a user might type them
    (lower case, a full stop: no entry has that text, so they are encoded; their fold is a label's)."""
    recs = store.load_records("hpo", "val")
    forms = [f for r in recs for f in r["mentions"].values()]
    return ([r["name"] for r in recs[:20]] + forms[:20]
            + [r["name"].lower() + "." for r in recs[20:30]])


def _brute_force(scores: np.ndarray, hpo: Retriever, held: tuple[int, ...], k: int,
                 ) -> list[tuple[float, int]]:
    """The best non-held entry of every concept, one concept at a time; best first, ties by index."""
    e = hpo.entries
    ends = [*e.starts[1:].tolist(), len(e.texts)]
    row = scores.tolist()
    best = []
    for c, (lo, hi) in enumerate(zip(e.starts.tolist(), ends, strict=True)):
        kept = [row[i] for i in range(lo, hi) if i not in held]
        if kept:
            best.append((-max(kept), c))
    return sorted(best)[:k]


def test_pooling_and_top_k_equal_a_brute_force_loop(hpo: Retriever) -> None:
    scorer = hpo.scorers["dense"]
    assert isinstance(scorer, dense.DenseScorer)
    queries = _queries()
    scores = scorer.scores(queries)
    assert scorer.encoded == 10  # the 40 entry texts reused their vectors
    # the entry scores are the cosines of the query with each entry's own text
    texts = dense.distinct_texts(hpo.entries)[0]
    vectors = scorer.query_vectors(queries)
    some = np.arange(0, len(hpo.entries.texts), 97)
    assert np.allclose(scores[:, some], vectors @ scorer.vectors[scorer.text_row[some]].T, atol=1e-5)
    assert [texts[scorer.text_row[i]] for i in some] == [hpo.entries.texts[i] for i in some]
    for holdout in (True, False):
        rankings = hpo.search(queries, holdout=holdout, k=100)
        for q, row, ranking in zip(queries, scores, rankings, strict=True):
            held = hpo.entries.holdout(q) if holdout else ()
            expected = _brute_force(row, hpo, held, 100)
            assert ranking.concepts.tolist() == [c for _, c in expected], q
            assert ranking.scores.tolist() == [-s for s, _ in expected], q


def test_no_hit_comes_through_a_held_out_string(hpo: Retriever) -> None:
    e = hpo.entries

    def own(c: int) -> range:
        return range(e.starts[c], e.starts[c + 1] if c + 1 < len(e.starts) else len(e.texts))

    queries = _queries()
    scores = hpo.scorers["dense"].scores(queries)
    through_held = only_held_seen = 0
    for q, row, ranking in zip(queries, scores, hpo.search(queries, k=100), strict=True):
        held = set(e.holdout(q))
        assert held  # every query names some entry (a label, a form, a label typed loosely)
        for c, s in zip(ranking.concepts.tolist(), ranking.scores.tolist(), strict=True):
            assert s == max(row[i] for i in own(c) if i not in held) > FLOOR["dense"]
            through_held += int(any(row[i] > s for i in own(c) if i in held))
        only_held = {c for c in {int(e.concept[i]) for i in held} if all(i in held for i in own(c))}
        assert not only_held & set(ranking.concepts.tolist())  # nothing left to find them by
        only_held_seen += len(only_held)
    assert through_held > 0 and only_held_seen > 0  # both cases occur: the mask was exercised
