"""The candidates of the RAG tasks: the top ``splits.rag.RANKED`` concepts per question.

Every question of a retrievable direction (``splits.rag.retrievable``) asks a record's source field
(its label, a mention form, the protein or approved name); that text is the query, with the same
leave-one-out as ``termnorm retrieve eval`` (every entry folded like it is masked), so a RAG task
never shows a candidate found through the very string it asks. The gold is never added: when the
retriever misses it, the task's ``candidate_recall`` says so.

* ``for_build(built, seed)``: at ``termnorm data build`` (and ``add-ontology``), with the default
  retriever (BM25: no model, seconds, the same on every machine), from the release index being
  written; returns the files to write beside the splits and sets ``stats["rag"]`` (the manifest's
  ``rag`` block, ``splits.rag.manifest_block``).
* ``for_data(retriever, data_dir)``: the same for a data folder on disk and any retriever
  (``termnorm retrieve candidates``).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from termnorm_eval.harness.dataset import answer_format
from termnorm_eval.retrieval import bm25
from termnorm_eval.retrieval.entries import Entries
from termnorm_eval.retrieval.evaluate import HOLDOUT_RULE
from termnorm_eval.retrieval.search import Retriever
from termnorm_eval.retrieval.spec import RetrieverSpec
from termnorm_eval.splits import rag, release_index, store
from termnorm_eval.splits.rag import RANKED, RECALL_AT
from termnorm_eval.terminologies import SPLITS, Terminology

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def compute(retriever: Retriever, term: Terminology, records: Mapping[str, Sequence[dict[str, Any]]],
            seed: int) -> tuple[bytes, dict[str, Any]]:
    """The candidates file (``splits.rag.render``) and the manifest block for one terminology;
    ``records``: split -> its records."""
    entries = retriever.entries
    directions = [d for d in term.all_directions if rag.retrievable(d)]
    queries: dict[rag.Key, str] = {}
    for split, recs in records.items():
        for d in directions:
            for r in recs:
                if d.applies_to(r):
                    queries[(split, d.source, str(r.get("item_id") or r["id"]))] = str(d.source_value(r))
    keys = sorted(queries)
    rankings = retriever.search([queries[k] for k in keys], holdout=True, k=RANKED)
    ranked = {k: [entries.ids[c] for c in r.concepts.tolist()] for k, r in zip(keys, rankings, strict=True)}
    recall: dict[str, dict[str, dict[int, float]]] = {}
    for split, recs in records.items():
        for d in directions:
            fmt = answer_format(d)
            hits = {at: 0 for at in RECALL_AT}
            n = 0
            for r in recs:
                if not d.applies_to(r):
                    continue
                n += 1
                gold = entries.concept_of(d.answer(r), fmt)
                found = ranked[(split, d.source, str(r.get("item_id") or r["id"]))]
                for at in RECALL_AT:
                    hits[at] += gold is not None and entries.ids[gold] in found[:at]
            if n:
                recall.setdefault(split, {})[d.name] = {at: hits[at] / n for at in RECALL_AT}
    lines = [{"split": s, "source": src, "item_id": i, "ranked": ranked[(s, src, i)]} for s, src, i in keys]
    block = rag.manifest_block(retriever.spec.identity(), seed, HOLDOUT_RULE, recall, retriever.spec.digest())
    return rag.render(lines), block


def bm25_retriever(entries: Entries) -> Retriever:
    """The default retriever over ``entries``, built in memory (seconds; the build writes no cache)."""
    return Retriever(RetrieverSpec("bm25"), entries, {"bm25": bm25.Bm25Scorer(bm25.build(entries))})


def entries_of(key: str, index: bytes) -> Entries:
    """The entries of a release index not yet on disk (the build's): read as the written file will be."""
    with tempfile.TemporaryDirectory(prefix="termnorm-index-") as tmp:
        path = Path(tmp) / release_index.FILE_NAME
        path.write_bytes(index)
        rows = release_index.read_rows(path)
    return Entries.from_rows(key, hashlib.sha256(index).hexdigest()[:16], rows)


def for_build(built: Mapping[str, Any], seed: int, progress: Progress = _noop) -> dict[str, bytes]:
    """The candidates files of a build (``splits.build.BuiltTerminology`` by key, their release index
    made), by file name inside the build; sets each one's ``stats["rag"]``. A terminology without
    an index or a retrievable direction gets none."""
    files: dict[str, bytes] = {}
    for key, b in built.items():
        if b.index is None or not any(rag.retrievable(d) for d in b.spec.all_directions):
            continue
        progress(f"retrieving RAG candidates for {key}")
        retriever = bm25_retriever(entries_of(key, b.index))
        data, block = compute(retriever, b.spec, {"train": b.train, "val": b.val}, seed)
        files[f"{key}/{rag.FILE_NAME}"] = data
        b.stats["rag"] = block
    return files


def for_data(retriever: Retriever, data_dir: str | Path | None, seed: int) -> tuple[bytes, dict[str, Any]]:
    """The candidates file and block of ``retriever``'s terminology in a data folder on disk."""
    key = retriever.entries.key
    term = store.terminology(key, data_dir)
    splits = [s for s in SPLITS if store.split_path(key, s, data_dir).is_file()]
    return compute(retriever, term, {s: store.load_records(key, s, data_dir) for s in splits}, seed)


def data_seed(data_dir: str | Path | None) -> int:
    """The seed a data folder's RAG tasks order candidates by: its build's."""
    params = store.read_manifest(data_dir).get("parameters")
    seed = params.get("seed") if isinstance(params, dict) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
