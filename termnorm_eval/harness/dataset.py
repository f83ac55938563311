"""Harness documents of one task: split records rendered for one direction.

One task = one terminology x direction x split. Its ``custom_dataset`` returns a
``datasets.DatasetDict`` with the splits of that direction (``Direction.splits``: ``train`` and
``val``, so the same object serves ``test_split`` and ``fewshot_split: train``; a user's mentions:
``test`` alone). Records that do not apply to the
direction (``Direction.applies_to``, e.g. genes without a protein name, concepts without a form of
a mention direction's kind) are skipped. Documents keep the store's record order (sorted by id),
so ``--limit N`` evaluates the first N records. Each names what its question shows (``source``:
for a mention direction the form asked), whether that question shows the gold answer
(``answer_in_prompt``, ``scoring.answer_shown``) and, for a mention direction, whether the form asked
is close to the concept's label (``form_near_label``, ``splits.mentions.near_label``: part of a label
string, holding one, mostly its words, a respelling or small edit of it; label documents: false), so
that transfer can be read without string overlap.

The retrieval-augmented tasks (``termnorm-rag_*``) load the same documents with ``rag=True``: each
gets its candidate block and the fields of ``harness.rag`` (``RAG_FEATURE_TYPES``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from termnorm_eval.embedding_model import METADATA_KEY
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import validity
from termnorm_eval.harness.rag import FEATURES as RAG_FEATURES
from termnorm_eval.harness.rag import RagSetting, make_rag_doc, rag_setting
from termnorm_eval.harness.scoring import ANSWER_IN_PROMPT, answer_shown
from termnorm_eval.splits import rag as rag_files
from termnorm_eval.splits import store
from termnorm_eval.splits.mentions import near_label
from termnorm_eval.terminologies import Direction, Terminology, input_text

FORM_NEAR_LABEL = "form_near_label"
FEATURE_TYPES = {
    "item_id": "string", "question": "string", "input": "string", "answer": "string",
    "alternatives": ["string"], "answer_kind": "string", "answer_format": "string",
    "terminology": "string", "direction": "string", "id_prefix": "string", "id_local": "string",
    "popularity": "int64", "bin": "int64", "stratum": "string", "embedding_model": "string",
    "release": "string", "source": "string", ANSWER_IN_PROMPT: "bool", FORM_NEAR_LABEL: "bool",
}
RAG_FEATURE_TYPES = {**FEATURE_TYPES, **RAG_FEATURES}


def answer_format(direction: Direction) -> str:
    """curie (ontology ID), symbol (gene symbol: an ID but no CURIE) or name."""
    if direction.answer_kind == "name":
        return "name"
    return "curie" if direction.target == "id" else "symbol"


def _record_prefix(record: dict[str, Any], term: Terminology) -> str:
    head, sep, _ = str(record.get("id", "")).partition(":")
    return head if sep and head else term.id_prefix


def make_doc(record: dict[str, Any], term: Terminology, direction: Direction,
             embedding_model: str = "", *, n_bins: int, release: str = "") -> dict[str, Any]:
    """One document; ``n_bins`` is the build's bin count (``store.bin_count``), whose thirds are the
    popularity strata; ``release`` the digest of the data folder's release index ('' if it has none)."""
    question = direction.prompt(record, term, variant=0)
    source = str(direction.source_value(record))
    answer, fmt = direction.answer(record), answer_format(direction)
    popularity: int | None = None
    bin_index: int | None = None
    stratum = store.NO_STRATUM
    try:
        # a user's mention has no popularity: both null (never a made-up 0), no stratum
        if not (record["popularity"] is None and record["bin"] is None):
            popularity, bin_index = int(record["popularity"]), int(record["bin"])
            stratum = store.stratum(bin_index, n_bins)
    except (KeyError, TypeError, ValueError) as e:
        raise TermnormError(f"record {record.get('id')!r}: bad popularity/bin ({e})") from e
    return {
        # the document; the record's id (its concept) unless the record names it (a user's table asks
        # about one concept through several mentions)
        "item_id": str(record.get("item_id") or record["id"]),
        "question": question,
        "input": input_text(question),
        "answer": answer,
        "alternatives": direction.alternatives(record),
        "answer_kind": direction.answer_kind,
        "answer_format": fmt,
        "terminology": term.key,
        "direction": direction.name,
        # An imported term (add-ontology --include-imported) keeps its own prefix, so that its
        # identifier is extracted and scored as what it is.
        "id_prefix": _record_prefix(record, term),
        "id_local": term.id_local,
        "popularity": popularity,
        "bin": bin_index,
        "stratum": stratum,
        "embedding_model": embedding_model,
        "release": release,
        # what the question shows: the label, identifier or symbol, or the mention form asked
        "source": source,
        # the question shows the gold answer (a gene name holding its symbol): a copying gain
        ANSWER_IN_PROMPT: answer_shown(question, answer, fmt),
        # the mention form overlaps the label's words: its transfer may be string overlap
        FORM_NEAR_LABEL: direction.mention is not None and near_label(record, source, term.kind == "gene"),
    }


def release_digest(key: str, data_dir: str | Path | None = None) -> str:
    """Digest of the terminology's release index, registered for the validity metrics ('' if none)."""
    path = store.index_path(key, data_dir)
    return validity.register(path) if path.is_file() else ""


def build_docs(key: str, direction: str, split: str, data_dir: str | Path | None = None,
               embedding_model: str = "", release: str | None = None) -> list[dict[str, Any]]:
    """Documents of one split for one direction, in store order."""
    term = store.terminology(key, data_dir)
    try:
        d = term.direction(direction)
    except KeyError as e:
        raise TermnormError(str(e.args[0])) from None
    n_bins = store.bin_count(key, data_dir)
    records = store.load_records(key, split, data_dir)
    if release is None:
        release = release_digest(key, data_dir)
    try:
        return [make_doc(r, term, d, embedding_model, n_bins=n_bins, release=release)
                for r in records if d.applies_to(r)]
    except TermnormError as e:  # the record alone does not say which file it is in
        raise TermnormError(f"{store.split_path(key, split, data_dir)}: {e}") from None


def load_task_dataset(terminology: str, direction: str, data_dir: str | Path | None = None, *,
                      rag: bool = False, **metadata: Any) -> Any:
    """The harness's ``custom_dataset``: a DatasetDict of the direction's splits ({train, val}; a
    user's mentions: {test}); with ``rag``, the retrieval-augmented documents (``harness.rag``).

    lm-eval calls it with the task metadata and ``dataset_kwargs`` as keyword arguments; the
    metadata (version, model args, ...) is ignored except ``embedding_model`` and, with ``rag``,
    ``rag_k`` and ``rag_candidates`` (``rag.rag_setting``). The train and val tasks of a direction
    share one (immutable, Arrow-backed) DatasetDict per process.
    """
    resolved = None if data_dir is None else str(Path(data_dir).resolve())
    term = store.terminology(terminology, resolved)  # an unknown key is named as such, not as missing files
    try:
        d = term.direction(direction)
    except KeyError as e:
        raise TermnormError(str(e.args[0])) from None
    splits = d.splits
    setting = rag_setting(terminology, d, resolved, metadata) if rag else None
    # Keyed on the files' identity too: a rebuild in this process must not serve the old documents.
    root = store.shipped_data_dir() if resolved is None else Path(resolved)
    files = (store.file_key(root / store.MANIFEST, "split manifest"),
             *(store.file_key(store.split_path(terminology, s, resolved)) for s in splits))
    # The index digest is part of the key: documents name the index that classifies their answers.
    release = release_digest(terminology, resolved)
    return _dataset_dict(terminology, direction, resolved, str(metadata.get(METADATA_KEY) or ""), files,
                         release, splits, setting)


def rag_docs(docs: list[dict[str, Any]], key: str, direction: str, split: str, data_dir: str | Path | None,
             setting: RagSetting) -> list[dict[str, Any]]:
    """The RAG documents of ``docs`` (one split of one direction): each with its candidates."""
    term = store.terminology(key, data_dir)
    source = term.direction(direction).source
    found = setting.candidates
    table = rag_files.read(found.path)
    display = rag_files.display_rows(store.index_path(key, data_dir))
    out = []
    for doc in docs:
        ranked = table.get((split, source, doc["item_id"]))
        if ranked is None:
            raise TermnormError(f"{found.path}: no candidates for {split} {source} {doc['item_id']} "
                                "(candidates of another build?)")
        out.append(make_rag_doc(doc, ranked, k=setting.k, seed=found.seed, term=term, display=display,
                                    retriever=found.digest))
    return out


@lru_cache(maxsize=128)
def _dataset_dict(terminology: str, direction: str, data_dir: str | None, embedding_model: str,
                  files: tuple[store.FileKey, ...], release: str, splits: tuple[str, ...],
                  setting: RagSetting | None = None) -> Any:
    import datasets
    import pyarrow as pa

    types = FEATURE_TYPES if setting is None else RAG_FEATURE_TYPES
    features = datasets.Features({
        k: datasets.Sequence(datasets.Value(v[0])) if isinstance(v, list) else datasets.Value(v)
        for k, v in types.items()
    })
    out = {}
    for split in splits:
        docs = build_docs(terminology, direction, split, data_dir, embedding_model, release)
        if not docs:
            where = store.split_path(terminology, split, data_dir)
            raise TermnormError(f"{where}: no record has both fields of direction {direction!r}")
        if setting is not None:
            docs = rag_docs(docs, terminology, direction, split, data_dir, setting)
        # Straight to Arrow: from_list would re-encode every value through the features (10x slower).
        table = pa.Table.from_pylist(docs, schema=features.arrow_schema)
        out[split] = datasets.Dataset(table, info=datasets.DatasetInfo(features=features))
    return datasets.DatasetDict(out)
