"""The strings a retriever indexes: every live concept of a release and each string that names it.

Read from the release index (``splits.release_index``), so the retriever sees the very release the
splits and the validity checks see. Per live concept, in id order, its strings deduplicated on
``mentions.fold`` (the first kind wins):

* ontologies: ``label`` (the name), then each exact synonym as ``synonym`` (untyped) or
  ``synonym:<type>`` (``layperson``, ``uk_spelling``, ...); an ``obsolete_synonym`` is never an entry
  (``mentions.synonym_kind``);
* genes: ``symbol`` (approved), ``name`` (approved name), ``protein`` (the protein name the GO
  annotations give), ``alias`` and ``prev`` (alias and previous symbols).

A string whose fold is empty (punctuation only) is no entry: no token and nothing to match.
``by_fold`` maps each folded string to its entries (any concept): what leave-one-out masks and what
the ``dictionary`` figure looks up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from termnorm_eval.splits import store
from termnorm_eval.splits.mentions import fold, synonym_kind
from termnorm_eval.splits.release_index import Row, other_symbols, read_rows

VERSION = "entries/1"  # in every index identity: a change of the rules above changes it
KINDS = ("label", "synonym", "symbol", "name", "protein", "alias", "prev")  # plus "synonym:<type>"
ANSWER_FORMATS = ("curie", "symbol")


@dataclass(frozen=True, eq=False)
class Entries:
    key: str  # terminology key
    release: str  # release_index digest (what documents call ``release``)
    ids: tuple[str, ...]  # live concept ids, sorted: concept index -> id
    symbols: tuple[str, ...]  # approved symbol per concept ("" for ontologies)
    labels: tuple[str, ...]  # label (genes: approved name)
    concept: np.ndarray  # int32, entry -> concept index, nondecreasing
    starts: np.ndarray  # int64, first entry of each concept (for np.maximum.reduceat)
    texts: tuple[str, ...]  # entry strings, as the release writes them
    kinds: tuple[str, ...]  # see KINDS
    by_fold: dict[str, tuple[int, ...]]  # fold(text) -> entry indices (any concept)
    concept_of_id: dict[str, int]  # live ids and alt ids -> concept index
    concept_of_symbol: dict[str, int]  # approved symbol -> concept index

    @classmethod
    def from_rows(cls, key: str, release: str, rows: Sequence[Row]) -> Entries:
        """From a release index's rows (``read_rows``: sorted by id). A live concept without any string
        (none in the shipped releases) is left out: nothing could retrieve it."""
        ids: list[str] = []
        symbols: list[str] = []
        labels: list[str] = []
        concept: list[int] = []
        starts: list[int] = []
        texts: list[str] = []
        kinds: list[str] = []
        by_fold: dict[str, list[int]] = {}
        for row in rows:
            if row[1] != "live":
                continue
            seen: set[str] = set()
            own = []
            for text, kind in _strings(row):
                f = fold(text)
                if f and f not in seen:
                    seen.add(f)
                    own.append((text, kind, f))
            if not own:
                continue
            c = len(ids)
            ids.append(row[0])
            symbols.append(row[5][0] if row[5] else "")
            labels.append(row[4][0] if row[4] else "")
            starts.append(len(texts))
            for text, kind, f in own:
                by_fold.setdefault(f, []).append(len(texts))
                texts.append(text)
                kinds.append(kind)
                concept.append(c)
        concept_of_id = {i: c for c, i in enumerate(ids)}
        for row in rows:  # an alt_id stands for its (live) term
            if row[1] == "alt" and row[2] in concept_of_id:
                concept_of_id.setdefault(row[0], concept_of_id[row[2]])
        return cls(
            key=key, release=release, ids=tuple(ids), symbols=tuple(symbols), labels=tuple(labels),
            concept=np.asarray(concept, dtype=np.int32), starts=np.asarray(starts, dtype=np.int64),
            texts=tuple(texts), kinds=tuple(kinds), by_fold={f: tuple(v) for f, v in by_fold.items()},
            concept_of_id=concept_of_id,
            concept_of_symbol={s: c for c, s in enumerate(symbols) if s},
        )

    def answer(self, c: int, answer_format: str) -> str:
        """What a retriever answers for concept ``c``: its id (``curie``) or approved symbol (``symbol``)."""
        return self.symbols[c] if answer_format == "symbol" else self.ids[c]

    def display(self, c: int, answer_format: str) -> str:
        """``"GO:0005634 nucleus"`` / ``"TP53 tumor protein p53"``: a candidate as a prompt lists it."""
        return f"{self.answer(c, answer_format)} {self.labels[c]}".strip()

    def concept_of(self, answer: str, answer_format: str) -> int | None:
        """The concept a gold answer names (an alt id: its term); None when it names no live concept."""
        table = self.concept_of_symbol if answer_format == "symbol" else self.concept_of_id
        return table.get(answer)

    def holdout(self, query: str) -> tuple[int, ...]:
        """The entries leave-one-out masks for ``query``: every entry, of any concept, folded alike."""
        return self.by_fold.get(fold(query), ())

    def digest(self) -> str:
        """sha256 of what an index is built from (ids, which concept each string names, kinds, texts):
        16 hex digits, in every index's meta and checked on load."""
        return _digest(self)


@lru_cache(maxsize=16)
def _digest(entries: Entries) -> str:  # eq=False: cached per object
    h = hashlib.sha256(VERSION.encode())
    for part in (entries.ids, entries.kinds, entries.texts):
        h.update("\x1e".join(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1d")
    h.update(entries.concept.astype("<i4").tobytes())
    return h.hexdigest()[:16]


def _strings(row: Row) -> list[tuple[str, str]]:
    """A live row's strings and their kinds, in the order that decides a duplicate's kind."""
    names, syms = row[4], row[5]
    if syms:  # a gene
        aliases, prevs = other_symbols(row[6])
        proteins = row[9] if len(row) > 9 else ()
        return ([(s, "symbol") for s in syms] + [(n, "name") for n in names]
                + [(p, "protein") for p in proteins] + [(a, "alias") for a in aliases]
                + [(p, "prev") for p in prevs])
    types = row[8] if len(row) > 8 else ()  # an index written before synonym types: all untyped
    out = [(names[0], "label")] if names else []
    for i, syn in enumerate(names[1:]):
        type_ = types[i] if i < len(types) else ""
        if synonym_kind(type_) is not None:
            out.append((syn, f"synonym:{type_}" if type_ else "synonym"))
    return out


def load_entries(key: str, data_dir: str | Path | None = None) -> Entries:
    """The entries of terminology ``key`` in ``data_dir`` (default: the shipped data), read once per
    process and content of its release index."""
    path = store.index_path(key, data_dir)
    file_key = store.file_key(path, "release index")
    return _load(key, file_key)


@lru_cache(maxsize=8)
def _load(key: str, file_key: store.FileKey) -> Entries:
    from termnorm_eval.splits.release_index import digest_of

    path = Path(file_key[0])
    return Entries.from_rows(key, digest_of(path), read_rows(path))
