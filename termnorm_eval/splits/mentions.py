"""Mentions: the words other than the label by which a concept is named (issue 21).

Each record carries ``mentions`` (``{kind: form}``): for each kind the concept has a *usable* form
of, the ONE form the mention direction of that kind asks about. Ontologies have the kinds
``synonym`` (exact synonyms) and ``lay`` (exact synonyms typed ``layperson``: HPO's lay terms),
genes ``alias`` (alias symbols) and ``prev`` (previous symbols).

A form is usable when

- one concept owns it, compared as the lenient score compares (``text.normalize_text``): for an
  ontology, no other live term has it as name or exact synonym (the records' ``synonyms`` already
  keep only those); for a gene, no other approved gene has it as symbol, alias or previous symbol;
- it differs from the concept's own label (genes: approved symbol, approved name and protein name,
  every string a label task shows) after ``fold``, so the question is not a label question again;
- of its kind: ``synonym`` takes exact synonyms of any type but ``layperson`` and
  ``obsolete_synonym``, ``lay`` those typed ``layperson``; an ``obsolete_synonym`` is never asked.

Among a concept's usable forms of one kind, the choice is seeded and local to the concept (adding
or removing another concept never changes it): ``choose``. ``RULE`` and ``CHOICE`` say this in the
manifest, beside the seed.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from termnorm_eval.sources.obo import OBSOLETE_SYNONYM
from termnorm_eval.splits.release_index import Owners, Row, add_owner, other_symbols, owners
from termnorm_eval.splits.store import STRATA, stratum
from termnorm_eval.terminologies import MENTION_DIRECTIONS
from termnorm_eval.text import normalize_text

LAYPERSON = "layperson"

RULE = ("usable: owned by one concept (text.normalize_text; ontologies: no other live term has it as name or "
        "exact synonym; genes: no other approved gene has it as symbol, alias or previous symbol) and "
        "different from the concept's label (genes: approved symbol, approved name, protein name) after "
        "folding (casefold, every run of non-alphanumerics one space, stripped); synonym: exact synonyms "
        "not typed layperson or obsolete_synonym; lay: exact synonyms typed layperson; alias: alias "
        "symbols; prev: previous symbols")
CHOICE = "sorted(usable forms)[int(sha256(f'{seed}:{id}:{kind}').hexdigest(), 16) % len(forms)]"

Forms = dict[str, list[str]]  # kind -> the concept's usable forms, sorted

_NON_ALNUM = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Case and punctuation folded: casefold, every run of non-alphanumerics one space, stripped."""
    return _NON_ALNUM.sub(" ", text.casefold()).strip()


def synonym_kind(type_: str) -> str | None:
    """The mention kind of an exact synonym of this type (None: never asked)."""
    if type_ == OBSOLETE_SYNONYM:
        return None
    return "lay" if type_ == LAYPERSON else "synonym"


def by_type(synonym_types: Mapping[str, str], dropped: Counter[str]) -> Forms:
    """An ontology record's exact synonyms (form -> type; each owned by the term alone) by mention kind;
    ``dropped`` counts the obsolete ones, never asked."""
    forms: Forms = {}
    for form, type_ in synonym_types.items():
        kind = synonym_kind(type_)
        if kind is None:
            dropped["obsolete_synonym"] += 1
        else:
            forms.setdefault(kind, []).append(form)
    return forms


GeneEntry = tuple[str, str, Sequence[str], Sequence[str]]  # an approved gene: id, symbol, previous, aliases


class GeneOwners:
    """The one ownership rule of gene strings: which approved genes (any locus type) have a string as
    approved or previous symbol (``answer_owners``), or as any of symbol, previous or alias symbol
    (``mention_owners``), compared as the lenient score compares (``text.normalize_text``).

    Built from the HGNC genes (the split build) or from a release index's live rows, which hold the
    same symbols (``from_rows``: fine-tuning's ``train_forms``, ``termnorm add-mentions``), so the
    records, the trained forms and a user's records follow one rule.
    """

    def __init__(self, genes: Iterable[GeneEntry]) -> None:
        self.answers: dict[str, Owners] = {}
        self.aliases: dict[str, Owners] = {}
        for ident, symbol, prevs, aliases in genes:
            for table, values in ((self.answers, (symbol, *prevs)), (self.aliases, aliases)):
                for v in values:
                    if v:
                        add_owner(table, normalize_text(v), ident)

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> GeneOwners:
        """From a gene release index's rows (``release_index.read_rows``): its live genes."""
        def entry(r: Row) -> GeneEntry:
            aliases, prevs = other_symbols(r[6])
            return r[0], r[5][0] if r[5] else "", prevs, aliases

        return cls(entry(r) for r in rows if r[1] == "live")

    def answer_owners(self, symbol: str) -> set[str]:
        """The approved genes whose approved or previous symbol this is."""
        return set(owners(self.answers, symbol))

    def mention_owners(self, symbol: str) -> set[str]:
        """The approved genes whose approved, previous or alias symbol this is."""
        return self.answer_owners(symbol) | set(owners(self.aliases, symbol))

    def lenient_prev(self, ident: str, prevs: Iterable[str]) -> list[str]:
        """Gene ``ident``'s previous symbols that are lenient answers: no other approved gene has one as
        its symbol or previous symbol (SLC18A1's previous symbol VAT1 is a gene of its own)."""
        return [p for p in prevs if self.answer_owners(p) <= {ident}]

    def forms(self, ident: str, aliases: Iterable[str], prevs: Iterable[str], notes: Counter[str]) -> Forms:
        """Gene ``ident``'s aliases and (lenient, ``lenient_prev``) previous symbols that no other approved
        gene has as symbol, alias or previous symbol: what a mention may ask. What is dropped of the
        previous symbols is another gene's alias; ``notes`` counts the drops."""
        forms: Forms = {}
        for kind, values, note in (("alias", aliases, "mention_aliases_owned_by_another_gene"),
                                   ("prev", prevs, "mention_prev_symbols_alias_of_another_gene")):
            for form in values:
                if self.mention_owners(form) <= {ident}:
                    forms.setdefault(kind, []).append(form)
                else:
                    notes[note] += 1
        return forms


def usable(forms: Forms, labels: Iterable[str], dropped: Counter[str]) -> Forms:
    """The forms (owned by the concept, by kind) that are none of its ``labels`` again after ``fold``,
    sorted and distinct; ``dropped`` counts the others."""
    own = {fold(label) for label in labels}
    out: Forms = {}
    for kind, values in forms.items():
        kept = sorted({f for f in values if fold(f) not in own})
        dropped["same_as_label"] += len(set(values)) - len(kept)
        if kept:
            out[kind] = kept
    return out


def choose(forms: Sequence[str], seed: int, ident: str, kind: str) -> str:
    """The one form of ``kind`` asked about concept ``ident`` (``forms``: its usable ones, sorted)."""
    digest = hashlib.sha256(f"{seed}:{ident}:{kind}".encode()).hexdigest()
    return forms[int(digest, 16) % len(forms)]


def pick(forms: Forms, seed: int, ident: str) -> dict[str, str]:
    """The record's ``mentions``: one form per kind the concept has usable forms of."""
    return {kind: choose(f, seed, ident, kind) for kind, f in forms.items() if f}


def label_strings(record: Mapping[str, Any], gene: bool) -> list[str]:
    """Every string the label tasks show of the concept: an ontology term's name; a gene's approved
    symbol, approved name and protein name. A usable form is none of them after ``fold``
    (``record_forms``; ``checks.check_split`` checks the records against the same strings)."""
    fields = ("symbol", "name", "protein_name") if gene else ("name",)
    return [v for v in (record.get(f) for f in fields) if v]


# Synonym types that respell the label itself (HPO: "Generalised osteopenia", a plural)
NEAR_LABEL_TYPES = ("uk_spelling", "plural_form")
# A form whose folded text has this similarity to a folded label string (difflib's ratio: twice the
# matched characters over both lengths) differs from it by a respelling or a small edit, which GO
# and HGNC do not type: "sulphotransferase", "signalling", "voltage-dependent" for "-gated".
NEAR_RATIO = 0.8


def _within(part: Sequence[str], whole: Sequence[str]) -> bool:
    """``part`` is a run of whole tokens of ``whole``."""
    n = len(part)
    return 0 < n <= len(whole) and any(whole[i:i + n] == part for i in range(len(whole) - n + 1))


def near_label(record: Mapping[str, Any], form: str, gene: bool) -> bool:
    """Whether a mention form is close to what label training shows of its concept: after ``fold`` a
    run of whole tokens of one of its ``label_strings`` ("CD97" of "CD97 antigen", "Osteopenia" of
    "Generalized osteopenia") or holding one ("fibrinogen complex" for "fibrinogen"); more than half
    of its distinct words words of one ("outer kinetochore of condensed chromosome" for "condensed
    chromosome outer kinetochore", "Congenital retinal fold" for "Falciform retinal fold"); a small
    edit of one (``NEAR_RATIO``: "chronological cell ageing" for "... aging", "BMP-1" for BMP1, TAC3R
    for TACR3); or a synonym typed as a respelling of the label (``NEAR_LABEL_TYPES``). Such a form is
    still a real word of text (usable), but answering it may be string overlap rather than concept
    transfer."""
    if (record.get("synonym_types") or {}).get(form) in NEAR_LABEL_TYPES:
        return True
    folded = fold(form)
    tokens = folded.split()
    for text in label_strings(record, gene):
        label = fold(text)
        words = label.split()
        if _within(tokens, words) or _within(words, tokens):
            return True
        if 2 * len(set(tokens) & set(words)) > len(set(tokens)):  # most of its words are the label's
            return True
        similar = difflib.SequenceMatcher(None, folded, label, autojunk=False)
        # the quick ratios bound ratio() from above: most labels are ruled out without the full match
        if (similar.real_quick_ratio() >= NEAR_RATIO and similar.quick_ratio() >= NEAR_RATIO
                and similar.ratio() >= NEAR_RATIO):
            return True
    return False


def record_forms(record: Mapping[str, Any], owned: Forms | None, dropped: Counter[str]) -> Forms:
    """A record's usable forms by kind: a gene's from ``owned`` (``GeneOwners.forms``, asked instead of
    its symbol), an ontology term's (``owned`` None) from its ``synonym_types`` (asked instead of its
    name). A form must differ from every ``label_strings``: a gene's alias that is its own protein name
    (MILR1's "Allergin-1") would be trained by protein2symbol. Also what fine-tuning's ``train_forms``
    trains (finetune/data.py)."""
    if owned is None:
        return usable(by_type(record.get("synonym_types") or {}, dropped), label_strings(record, False),
                      dropped)
    return usable(owned, label_strings(record, True), dropped)


def of_record(record: Mapping[str, Any], owned: Forms | None, seed: int, dropped: Counter[str]
              ) -> dict[str, str]:
    """A record's ``mentions``: one form per kind of its ``record_forms``."""
    return pick(record_forms(record, owned, dropped), seed, record["id"])


def summary(kinds: Sequence[str], splits: Mapping[str, Sequence[dict[str, Any]]],
            dropped: Mapping[str, Counter[str]], seed: int, n_bins: int) -> dict[str, Any]:
    """The manifest's ``mentions``: rule, seed, and per kind how many concepts of each split have a
    usable form, overall and per popularity stratum (thirds of the ``n_bins`` bins); per split, the
    owned forms that are not asked (``dropped``: the label again, obsolete synonyms)."""
    out: dict[str, Any] = {"rule": RULE, "choice": CHOICE, "seed": seed, "kinds": {},
                           "dropped": {split: dict(sorted((+c).items())) for split, c in dropped.items()}}
    for kind in kinds:
        per_split: dict[str, Any] = {}
        for split, records in splits.items():
            strata = {s: {"concepts": 0, "with_form": 0} for s in STRATA}
            for r in records:
                cell = strata[stratum(r["bin"], n_bins)]
                cell["concepts"] += 1
                cell["with_form"] += kind in r["mentions"]
            with_form = sum(c["with_form"] for c in strata.values())
            per_split[split] = {"concepts": len(records), "with_form": with_form, "by_stratum": strata}
        out["kinds"][kind] = {"direction": MENTION_DIRECTIONS[kind], "splits": per_split}
    return out


def mention_kinds(summary_: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Kind -> concepts with a form per split, for the kinds some split has forms of: the mention tasks
    a terminology can have (one per kind and split whose count is not 0)."""
    out: dict[str, dict[str, int]] = {}
    for kind, entry in summary_["kinds"].items():
        counts = {split: v["with_form"] for split, v in entry["splits"].items()}
        if any(counts.values()):
            out[kind] = counts
    return out
