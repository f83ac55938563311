"""Which record fields are paired: derived from the Direction registry, so added ontologies
(same data layout, another ``--data-dir``) get term<->ID without any code here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from termnorm_eval.terminologies import Terminology, TerminologyKind

# How fields read in tables and plots; an unknown field keeps its own name.
FIELD_LABELS = {"name": "name", "id": "ID", "symbol": "symbol", "protein_name": "protein name"}


@dataclass(frozen=True)
class TermMapping:
    """An unordered pair of record fields of one terminology (e.g. GO name<->id).

    ``source``/``target`` keep the orientation of the first direction that uses the pair;
    retrieval is measured from source to target (term -> ID, name -> symbol).
    """

    terminology: str  # key, e.g. "go"
    label: str  # terminology label for humans, e.g. "GO"
    kind: TerminologyKind
    source: str
    target: str

    @property
    def key(self) -> str:
        return f"{self.terminology}:{self.source}<->{self.target}"

    @property
    def title(self) -> str:
        if self.kind != "gene" and (self.source, self.target) == ("name", "id"):
            return f"{self.label} term<->ID"
        src, tgt = (FIELD_LABELS.get(f, f) for f in (self.source, self.target))
        if tgt == "ID":
            tgt = f"{self.label} ID"
        if self.kind == "gene" and self.source == "name":
            src = "gene name"
        return f"{src}<->{tgt}"

    def pairs(self, records: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(source text, target text) of every record that has both sides."""
        return [
            (str(r[self.source]).strip(), str(r[self.target]).strip())
            for r in records
            if r.get(self.source) and r.get(self.target)
            and str(r[self.source]).strip() and str(r[self.target]).strip()
        ]


def mappings_for(term: Terminology) -> list[TermMapping]:
    """One mapping per distinct field pair of the terminology's directions (term2id and id2term
    are the same pair)."""
    seen: dict[frozenset[str], TermMapping] = {}
    for d in term.directions:
        pair = frozenset((d.source, d.target))
        if pair not in seen:
            seen[pair] = TermMapping(
                terminology=term.key,
                label=term.label,
                kind=term.kind,
                source=d.source,
                target=d.target,
            )
    return list(seen.values())
