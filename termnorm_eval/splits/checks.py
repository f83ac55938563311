"""Invariants every built split must satisfy; the build refuses to write data that breaks one.

The tests run the same checks on the shipped build, so a hand edit of the data fails CI too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.splits import mentions

# Record fields whose values are names (compared case-insensitively across splits).
NAME_FIELDS = ("name", "synonyms", "protein_name", "symbol")
ID_FIELDS = ("id", "alt_ids")
COMMON_FIELDS = ("id", "name", "synonyms", "alt_ids", "popularity", "popularity_secondary", "bin", "aspect",
                 "mentions")
ONTOLOGY_FIELDS = (*COMMON_FIELDS, "synonym_types")
GENE_FIELDS = (*COMMON_FIELDS, "symbol", "protein_name", "prev_symbols", "alias_symbols")


def _values(record: dict[str, Any], fields: Iterable[str]) -> Iterable[str]:
    for f in fields:
        v = record.get(f)
        if isinstance(v, list):
            yield from (x for x in v if x)
        elif v:
            yield v


def _mention_problem(r: dict[str, Any], gene: bool) -> str | None:
    """What is wrong with a record's ``synonym_types`` and ``mentions`` (``splits.mentions``), if anything."""
    if not gene and set(r["synonym_types"]) != set(r["synonyms"]):
        return "synonym_types must type exactly the synonyms"
    for kind, form in r["mentions"].items():
        if gene:
            source = {"alias": r["alias_symbols"], "prev": r["prev_symbols"]}.get(kind)
        else:
            source = [s for s, t in r["synonym_types"].items() if mentions.synonym_kind(t) == kind]
        if source is None or form not in source:
            return f"mention {kind}={form!r} is no {kind} form of the record"
        if mentions.fold(form) in {mentions.fold(s) for s in mentions.label_strings(r, gene)}:
            return f"mention {kind}={form!r} is the label again"
    return None


def check_split(
    key: str, train: Sequence[dict[str, Any]], val: Sequence[dict[str, Any]], gene: bool = False,
    id_prefix: str | None = None,
) -> None:
    """Raise ``TermnormError`` naming the first broken invariant of the ``key`` splits."""
    expected = set(GENE_FIELDS if gene else ONTOLOGY_FIELDS)
    for split, records in (("train", train), ("val", val)):
        ids = [r["id"] for r in records]
        if ids != sorted(ids):
            raise TermnormError(f"{key}/{split}: records not sorted by id")
        if len(set(ids)) != len(ids):
            raise TermnormError(f"{key}/{split}: duplicate id")
        for r in records:
            if set(r) != expected:
                raise TermnormError(f"{key}/{split} {r.get('id')}: fields {sorted(r)} != {sorted(expected)}")
            if not r["name"]:
                raise TermnormError(f"{key}/{split} {r['id']}: empty name")
            if id_prefix and not r["id"].startswith(id_prefix + ":"):
                raise TermnormError(f"{key}/{split} {r['id']}: id prefix is not {id_prefix}")
            if not all(isinstance(r[f], int) for f in ("popularity", "popularity_secondary", "bin")):
                raise TermnormError(f"{key}/{split} {r['id']}: popularity, popularity_secondary and bin must "
                                    "be integers")
            problem = _mention_problem(r, gene)
            if problem:
                raise TermnormError(f"{key}/{split} {r['id']}: {problem}")
    for fields, what, fold in ((ID_FIELDS, "identifier", False), (NAME_FIELDS, "name", True)):
        seen: dict[str, str] = {}
        for r in train:
            for v in _values(r, fields):
                seen[v.casefold() if fold else v] = r["id"]
        for r in val:
            for v in _values(r, fields):
                k = v.casefold() if fold else v
                if k in seen:
                    raise TermnormError(
                        f"{key}: leakage: {what} {v!r} is in train ({seen[k]}) and val ({r['id']})"
                    )
    # Within the whole build every name must point at one concept (ambiguity was excluded).
    owner: dict[str, str] = {}
    for r in (*train, *val):
        for v in set(x.casefold() for x in _values(r, NAME_FIELDS)):
            if owner.setdefault(v, r["id"]) != r["id"]:
                raise TermnormError(f"{key}: ambiguous name {v!r} shared by {owner[v]} and {r['id']}")
