"""A user's mention rows checked against a terminology's release index (``termnorm add-mentions``).

Each row lands in exactly one outcome (``OUTCOMES``, checked in that order), and only ``scored`` rows
become documents; every other one is counted, listed in ``left_out.tsv`` with its reason, never
scored:

1. the identifier, against the release (``release_index``): live (scored as it is), an alt_id (an
   ontology's; for genes a previous symbol of one gene, which may be its alias too) mapped to its
   concept, ``obsolete`` (obsolete term, withdrawn gene), ``unknown`` (not in the release), and for
   genes ``not_an_identifier`` (a symbol that is only an alias, or a symbol of several genes).
   Genes take an HGNC ID or an approved symbol; the task asks for the approved symbol either way.
   An identifier that is none of the terminology's shapes is an error naming the line (a wrong
   column or a wrong ``--terminology``), never a count;
2. ``duplicate``: the same mention (compared as the lenient score compares: ``normalize_text``) for
   the same concept again, when its first row is scored: scored once. The repeat of a row left out
   for 3 or 4 is left out with that row's outcome (nothing was scored once);
3. ``ambiguous_in_file``: a mention the table gives two or more concepts: every such row;
4. ``ambiguous_in_release``: a mention that the release gives another live concept (an ontology
   term's name or exact synonym; a gene's approved symbol, alias or previous symbol, owned as the
   shipped mention forms are, ``splits.mentions.GeneOwners``, or its approved name), so that a
   model naming that concept would be right by the terminology's own words.

The notes (``NOTES``) on identifiers count the scored rows only.

The scored rows' mentions are counted by what they are to their concept in the release
(``FORMS``): the label itself (a label task in a mention's clothes), a synonym or symbol the release
lists (a dictionary that holds the test strings, as in BioSyn's caveat), or a form of the user's
corpus alone (``other``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.splits import release_index
from termnorm_eval.splits.mentions import GeneOwners
from termnorm_eval.splits.release_index import other_symbols, owners
from termnorm_eval.terminologies import USER_KIND, Terminology
from termnorm_eval.text import normalize_text
from termnorm_eval.user_mentions.table import Row, Table, show

OUTCOMES: dict[str, str] = {
    "scored": "rows scored (one document each)",
    "unknown": "identifier not in the release: left out",
    "obsolete": "identifier obsolete in the release (genes: withdrawn): left out",
    # genes only
    "not_an_identifier": "gene symbol that is only an alias, or a symbol of several genes: left out",
    "duplicate": "repeated rows of a scored row (same mention after case and space folding, same concept): "
                 "scored once",
    "ambiguous_in_file": "rows whose mention the table gives two or more concepts: left out",
    "ambiguous_in_release": "rows whose mention the release gives another live concept (its name, "
                            "synonym or symbol): left out",
}
NOTES: dict[str, str] = {
    "alt_mapped": "scored rows whose identifier is an alt_id (genes: a previous symbol of one gene), "
                  "scored as the concept's primary identifier",
    "respelled": "scored rows whose identifier is in another spelling (HP_0001250, hp:0001250, a symbol's "
                 "case), read as the canonical one",
    "mention_cleaned": "mentions with control characters or runs of spaces, read as one line of plain text",
    "header": "header line skipped",
    "blank_lines": "blank lines skipped",
}
FORMS: dict[str, str] = {
    "label": "the concept's own label",
    "synonym": "an exact synonym of the concept in the release",
    "symbol": "the gene's approved symbol (the answer itself)",
    "name": "the gene's approved name",
    "alias": "an alias symbol of the gene",
    "previous": "a previous symbol of the gene",
    "other": "none of the release's words for the concept",
}
DETAIL = {"unknown": "not in the release", "obsolete": "obsolete or withdrawn in the release",
          "not_an_identifier": "an alias or a symbol of several genes: no HGNC ID or approved symbol"}
LEFT_OUT_COLUMNS = ("line", "mention", "identifier", "outcome", "detail")
MAX_SYMBOL = 64  # an HGNC symbol is at most about 20 characters


@dataclass
class Resolved:
    """The documents' records and every count (``outcomes``: every outcome of the terminology's kind,
    zeros included)."""

    records: list[dict[str, Any]]
    outcomes: Counter[str]
    notes: Counter[str]
    forms: Counter[str]
    left_out: list[tuple[Row, str, str]] = field(default_factory=list)  # row, outcome, detail

    def left_out_tsv(self) -> str:
        lines = ["\t".join(LEFT_OUT_COLUMNS)]
        for row, outcome, detail in self.left_out:
            lines.append("\t".join((str(row.line), row.mention, row.identifier, outcome, detail)))
        return "\n".join(lines) + "\n"


class Release:
    """One terminology's release index, looked up as a user's identifiers and mentions need."""

    def __init__(self, term: Terminology, path: Path) -> None:
        self.term = term
        self.gene = term.kind == "gene"
        self.index = release_index.load(path)
        self.rows = {r[0]: r for r in release_index.read_rows(path)}
        self.alts: dict[str, list[str]] = defaultdict(list)  # term -> its alt_ids
        for id_, primary in self.index.primary.items():
            if self.index.status.get(id_) == "alt":
                self.alts[primary].append(id_)
        # genes: approved symbol -> its gene, as written and folded (HGNC approves each symbol once)
        self.approved = {r[5][0]: id_ for id_, r in self.rows.items() if r[1] == "live" and r[5]}
        self.folded: dict[str, list[str]] = defaultdict(list)
        for symbol, id_ in self.approved.items():
            self.folded[normalize_text(symbol)].append(id_)
        self.owners = GeneOwners.from_rows(self.rows.values()) if self.gene else None

    def _live(self, found: tuple[str, ...]) -> list[str]:
        return [o for o in found if self.index.status.get(o) == "live"]

    def identifier(self, row: Row, path: Path) -> tuple[str, str | None, bool]:
        """(status, concept, respelled) of a row's identifier; status live, alt (mapped), unknown,
        obsolete or not_an_identifier (concept None then)."""
        cell, index = row.identifier, self.index
        ident = cell if cell in index.status else None
        if ident is None:
            m = self.term.id_regex.fullmatch(cell)
            if m:
                ident = self.term.canonical_id(m.group(1))
            elif self.gene:
                return self._symbol(row, path)
            else:
                raise TermnormError(f"{path}:{row.line}: identifier {show(cell)} is no {self.term.label} "
                                    f"identifier (like {self.term.id_example}); is --terminology right?")
        respelled = ident != cell
        status = index.status.get(ident)
        if status is None:
            return "unknown", None, respelled
        if status == "obsolete":
            return "obsolete", None, respelled
        return status, index.concept(ident), respelled

    def _symbol(self, row: Row, path: Path) -> tuple[str, str | None, bool]:
        cell = row.identifier
        if len(cell) > MAX_SYMBOL or not cell.isprintable() or any(c.isspace() for c in cell):
            raise TermnormError(f"{path}:{row.line}: identifier {show(cell)} is no HGNC ID (like HGNC:5) "
                                "or gene symbol; is --terminology right?")
        if cell in self.approved:
            return "live", self.approved[cell], False
        same = self.folded.get(normalize_text(cell), [])
        if len(same) == 1:
            return "live", same[0], True
        previous = owners(self.index.previous, cell)
        live_previous = set(self._live(previous))
        aliases = set(self._live(owners(self.index.symbols, cell)))
        # a previous symbol of one gene, though it may be that gene's alias too (ABCB1's PGY1)
        if len(live_previous) == 1 and aliases <= live_previous:
            return "alt", live_previous.pop(), False
        if live_previous or aliases:
            return "not_an_identifier", None, False
        return ("obsolete" if previous else "unknown"), None, False

    def others(self, concept: str, mention: str) -> list[str]:
        """The live concepts other than ``concept`` that the release gives ``mention``: an ontology
        term's name or exact synonym; a gene's symbol, alias or previous symbol (``GeneOwners``, the
        shipped mention forms' rule) or approved name. The build never compares names, since its forms
        are symbols; a user's mention is any words, and another gene's name would be that gene."""
        found = set(self._live(owners(self.index.names, mention)))
        if self.owners is not None:
            found |= self.owners.mention_owners(mention)
        return sorted(found - {concept})

    def form(self, concept: str, mention: str) -> str:
        """What ``mention`` is to its concept in the release (``FORMS``)."""
        _, _, _, _, names, symbols, others, *_ = self.rows[concept]
        m = normalize_text(mention)
        if self.gene:
            if any(normalize_text(s) == m for s in symbols):
                return "symbol"
            if any(normalize_text(n) == m for n in names):
                return "name"
            for mark, kind in (("+", "alias"), ("-", "previous")):
                if any(s[:1] == mark and normalize_text(s[1:]) == m for s in others):
                    return kind
            return "other"
        if names and normalize_text(names[0]) == m:
            return "label"
        return "synonym" if any(normalize_text(n) == m for n in names[1:]) else "other"

    def describe(self, concept: str) -> str:
        """A concept as a message names it: ``HP:0001250 (Seizure)``."""
        r = self.rows.get(concept)
        label = (r[5][0] if self.gene and r and r[5] else r[4][0] if r and r[4] else "")
        return f"{concept} ({label})" if label else concept

    def record(self, row: Row, concept: str, form: str) -> dict[str, Any]:
        """The split record of one scored row (``store`` layout; no popularity: both null)."""
        _, _, _, _, names, symbols, others, *_ = self.rows[concept]
        rec: dict[str, Any] = {
            "id": concept, "item_id": f"{concept}|{row.mention}", "name": names[0] if names else "",
            "popularity": None, "bin": None, "mentions": {USER_KIND: row.mention}, "form": form,
            "line": row.line, "identifier": row.identifier,
        }
        if self.gene:
            assert self.owners is not None
            aliases, prevs = other_symbols(others)
            # lenient answers: the shipped records' rule
            rec.update(symbol=symbols[0], alias_symbols=aliases,
                       prev_symbols=self.owners.lenient_prev(concept, prevs))
        else:
            rec.update(alt_ids=sorted(self.alts.get(concept, [])), aspect=self.index.aspect.get(concept))
        return rec


def resolve(table: Table, release: Release) -> Resolved:
    """Check every row of ``table`` against ``release`` (see the module text)."""
    kinds = [k for k in OUTCOMES if release.gene or k != "not_an_identifier"]
    out = Resolved([], Counter(dict.fromkeys(kinds, 0)), Counter(table.notes), Counter())

    def leave(row: Row, outcome: str, detail: str) -> None:
        out.outcomes[outcome] += 1
        out.left_out.append((row, outcome, detail))

    kept: list[tuple[Row, str, str, bool]] = []  # row, concept, identifier status, respelled
    repeats: dict[int, list[Row]] = defaultdict(list)  # first row's line -> its repeats
    first: dict[tuple[str, str], Row] = {}
    for row in table.rows:
        status, concept, respelled = release.identifier(row, table.path)
        if concept is None:
            leave(row, status, DETAIL[status])
            continue
        key = (normalize_text(row.mention), concept)
        if key in first:
            repeats[first[key].line].append(row)
            continue
        first[key] = row
        kept.append((row, concept, status, respelled))
    concepts: dict[str, dict[str, Row]] = defaultdict(dict)  # folded mention -> concept -> first row
    for row, concept, _, _ in kept:
        concepts[normalize_text(row.mention)].setdefault(concept, row)
    for row, concept, status, respelled in kept:
        given = concepts[normalize_text(row.mention)]
        left: tuple[str, str] | None = None  # outcome, detail
        if len(given) > 1:
            left = "ambiguous_in_file", "; ".join(f"line {r.line}: {release.describe(c)}"
                                                  for c, r in given.items() if c != concept)
        elif others := release.others(concept, row.mention):
            left = "ambiguous_in_release", "also names " + ", ".join(map(release.describe, others))
        if left is not None:
            outcome, detail = left
            leave(row, outcome, detail)
            for repeat in repeats[row.line]:  # left out for the same reason: nothing is scored once
                leave(repeat, outcome, f"repeats line {row.line}: {detail}")
            continue
        for repeat in repeats[row.line]:
            leave(repeat, "duplicate", f"repeats line {row.line}")
        out.notes["alt_mapped"] += status == "alt"
        out.notes["respelled"] += respelled
        form = release.form(concept, row.mention)
        out.forms[form] += 1
        out.outcomes["scored"] += 1
        out.records.append(release.record(row, concept, form))
    out.left_out.sort(key=lambda x: x[0].line)
    out.notes = +out.notes
    return out
