"""What a retriever indexes (issue 22, item 1): every live concept of the shipped releases and each of its
strings, from the release index; the records' own strings are all there, obsolete synonyms never."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from termnorm_eval.retrieval.entries import Entries, load_entries
from termnorm_eval.sources.obo import OBSOLETE_SYNONYM
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits import store
from termnorm_eval.splits.mentions import fold
from termnorm_eval.terminologies import SPLITS

KEYS = ("go", "hpo", "gene")


def _rows(key: str) -> list[ri.Row]:
    return ri.read_rows(store.index_path(key))


def _folds_of(entries: Entries, c: int) -> set[str]:
    end = entries.starts[c + 1] if c + 1 < len(entries.starts) else len(entries.texts)
    return {fold(t) for t in entries.texts[entries.starts[c]:end]}


@pytest.mark.parametrize("key", KEYS)
def test_every_live_concept_with_its_strings_folded_once(key: str) -> None:
    rows = _rows(key)
    entries = load_entries(key)
    live = [r for r in rows if r[1] == "live"]
    assert entries.ids == tuple(r[0] for r in live)  # every live concept, in id order
    assert list(entries.ids) == sorted(entries.ids)
    assert entries.release == ri.digest_of(store.index_path(key))
    expected = 0
    for c, r in enumerate(live):
        if key == "gene":
            aliases, prevs = ri.other_symbols(r[6])
            strings = [*r[5], *r[4], *r[9], *aliases, *prevs]
        else:
            strings = [r[4][0], *(s for s, ty in zip(r[4][1:], r[8], strict=True) if ty != OBSOLETE_SYNONYM)]
        want = {fold(s) for s in strings} - {""}
        assert _folds_of(entries, c) == want, r[0]
        expected += len(want)
    assert len(entries.texts) == len(entries.kinds) == len(entries.concept) == expected
    # the concept array is what pooling reads: nondecreasing, and starts are its first positions
    assert np.all(np.diff(entries.concept) >= 0)
    assert np.array_equal(entries.starts, np.flatnonzero(np.r_[True, np.diff(entries.concept) > 0]))
    kinds = Counter(k.split(":")[0] for k in entries.kinds)
    if key == "gene":
        assert set(kinds) == {"symbol", "name", "protein", "alias", "prev"}
        assert kinds["symbol"] == len(live)
    else:
        assert set(kinds) == {"label", "synonym"}
        assert kinds["label"] == len(live)
        # live names minus the obsolete synonyms, less the case/punctuation duplicates of a concept
        n_obsolete = sum(ty == OBSOLETE_SYNONYM for r in live for ty in r[8])
        assert len(entries.texts) <= sum(len(r[4]) for r in live) - n_obsolete


def test_obsolete_synonyms_are_never_entries() -> None:
    entries = load_entries("hpo")
    found = 0
    for c, r in enumerate(x for x in _rows("hpo") if x[1] == "live"):
        typed = list(zip(r[4][1:], r[8], strict=True))
        kept = {fold(r[4][0])} | {fold(s) for s, ty in typed if ty != OBSOLETE_SYNONYM}
        for s, ty in typed:
            if ty == OBSOLETE_SYNONYM and fold(s) not in kept:
                found += 1
                assert fold(s) not in _folds_of(entries, c), (r[0], s)
    assert found > 0  # the shipped HPO has EXACT synonyms typed obsolete: the rule was exercised


def test_synonym_types_become_kinds() -> None:
    entries = load_entries("hpo")
    c = entries.concept_of_id["HP:0000063"]  # Fused labia minora: its lay term "Fused inner lips"
    e = [i for i in entries.by_fold[fold("Fused inner lips")] if entries.concept[i] == c]
    assert [entries.kinds[i] for i in e] == ["synonym:layperson"]
    typed = {"layperson", "uk_spelling", "plural_form", "abbreviation"}
    assert {"synonym", *(f"synonym:{t}" for t in typed)} <= set(entries.kinds)


@pytest.mark.parametrize("key", KEYS)
def test_each_records_strings_are_entries_of_its_concept(key: str) -> None:
    entries = load_entries(key)
    status = {r[0]: r[1] for r in _rows(key)}
    checked = 0
    for split in SPLITS:
        for rec in store.load_records(key, split):
            c = entries.concept_of_id[rec["id"]]
            own = _folds_of(entries, c)
            if key == "gene":
                strings = [rec["symbol"], rec["name"], *rec["alias_symbols"], *rec["prev_symbols"]]
                strings += [rec["protein_name"]] if rec.get("protein_name") else []
                assert entries.concept_of(rec["symbol"], "symbol") == c
                assert entries.answer(c, "symbol") == rec["symbol"]
                assert entries.display(c, "symbol") == f"{rec['symbol']} {rec['name']}"
            else:
                strings = [rec["name"], *(s for s in rec["synonyms"]
                                          if rec["synonym_types"].get(s) != OBSOLETE_SYNONYM)]
                assert entries.answer(c, "curie") == rec["id"]
                assert entries.display(c, "curie") == f"{rec['id']} {rec['name']}"
            strings += list(rec["mentions"].values())
            for s in strings:
                assert fold(s) in own, (rec["id"], s)
                assert c in {int(entries.concept[e]) for e in entries.holdout(s)}
                checked += 1
            for alt in rec["alt_ids"]:  # an alt_id that is an obsolete term of its own stays that
                assert entries.concept_of(alt, "curie") == (c if status.get(alt) == "alt" else None)
    assert checked > 2 * 1200


def test_digest_names_the_content() -> None:
    rows = _rows("hpo")
    a = Entries.from_rows("hpo", "r", rows)
    assert a.digest() == load_entries("hpo").digest() == Entries.from_rows("hpo", "other", rows).digest()
    i = next(j for j, r in enumerate(rows) if r[1] == "live")
    renamed = (*rows[i][:4], ("Renamed " + rows[i][4][0], *rows[i][4][1:]), *rows[i][5:])
    b = Entries.from_rows("hpo", "r", [*rows[:i], renamed, *rows[i + 1:]])
    assert len(b.digest()) == 16 and b.digest() != a.digest()
    assert load_entries("hpo") is load_entries("hpo")  # read once per process


def test_an_index_without_synonym_types_indexes_every_synonym_untyped() -> None:
    """An index of an earlier build (8 columns: ``read_rows`` gives () for the types)."""
    rows = [(*r[:8], (), ()) for r in _rows("hpo")]
    entries = Entries.from_rows("hpo", "old", rows)
    assert set(entries.kinds) == {"label", "synonym"}
    assert len(entries.texts) >= len(load_entries("hpo").texts)  # nothing typed, nothing dropped
