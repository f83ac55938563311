"""Which concepts may enter a split, and the record each one becomes.

Exclusions (each counted for the manifest): obsolete or unnamed terms, ids of another prefix
(imported terms), terms outside the terminology's subtree (HPO: below Phenotypic abnormality),
names that are the name or exact synonym of more than one live concept (ambiguous: a question
with two right answers). An exact synonym shared with another concept is dropped from the record,
so no string of one record appears in another: that is what keeps train and val free of shared
names whatever the sample. Lenient alternatives (synonyms, previous symbols) are compared as the
lenient score compares them (``text.normalize_text``), so one that another concept also
owns is dropped: it would let a wrong answer score.

Each record carries two popularity numbers: ``popularity`` (what the bins rank by) and
``popularity_secondary`` (what breaks its ties); which counts they are is in ``build.POPULARITY``.
Ontology records carry each kept synonym's type (``synonym_types``). A gene's aliases and previous
symbols that no other approved gene has (the ones ``mentions`` may ask) are kept beside the records
(``Candidates.owned``); the sampler picks each drawn record's ``mentions`` (``splits.mentions``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.gaf import GafAnnotations
from termnorm_eval.sources.hgnc import HgncGene
from termnorm_eval.sources.obo import OboResult, OboTerm
from termnorm_eval.splits.mentions import Forms, GeneOwners
from termnorm_eval.text import normalize_text

GO_ASPECTS = {"biological_process": "BP", "molecular_function": "MF", "cellular_component": "CC"}
# A paper cited for more genes than this is a screen or a mass annotation, not literature about one
# gene: in the 2019 GAF, 36,188 of 36,232 PMIDs are cited for at most 100 genes (symbols); one (PMID
# 21873635, the phylogenetic annotation project) for 11,198.
MAX_GENES_PER_REFERENCE = 100


@dataclass
class Candidates:
    records: dict[str, dict[str, Any]]  # id -> record without "bin"
    excluded: Counter[str] = field(default_factory=Counter)  # concepts left out, by reason
    notes: Counter[str] = field(default_factory=Counter)  # fields left out of kept records
    facts: dict[str, Any] = field(default_factory=dict)  # about the popularity counts, for the manifest
    owned: dict[str, Forms] = field(default_factory=dict)  # gene id -> aliases, previous symbols it alone has

    @property
    def popularity(self) -> dict[str, int]:
        return {i: r["popularity"] for i, r in self.records.items()}

    @property
    def secondary(self) -> dict[str, int]:
        return {i: r["popularity_secondary"] for i, r in self.records.items()}

    def strata(self, fieldname: str = "aspect") -> dict[str, str]:
        return {i: r[fieldname] for i, r in self.records.items()}


class _Owners:
    """Which strings (under ``key``) are used by more than one concept (as name or synonym)."""

    def __init__(self, items: Iterable[tuple[str, Iterable[str | None]]],
                 key: Callable[[str], str] = str.casefold) -> None:
        owner: dict[str, str] = {}
        self.shared: set[str] = set()
        self.key = key
        shared = self.shared
        for ident, strings in items:
            for s in strings:
                if s:
                    k = key(s)
                    if owner.setdefault(k, ident) != ident:
                        shared.add(k)

    def unique(self, s: str) -> bool:
        return self.key(s) not in self.shared


def union_count(ids: Iterable[str], annotated: Mapping[str, set[str]]) -> int:
    """Distinct things annotated to any of ``ids`` (a term and its alt_ids; a gene's accessions)."""
    sets = [annotated[i] for i in ids if i in annotated]
    if len(sets) <= 1:
        return len(sets[0]) if sets else 0
    return len(set().union(*sets))


def annotation_count(term: OboTerm, annotated: Mapping[str, set[str]]) -> int:
    """Distinct annotated things for a term, counting annotations made to its alt_ids too."""
    return union_count((term.id, *term.alt_ids), annotated)


def ontology_candidates(
    obo: OboResult,
    annotated: Mapping[str, set[str]],
    aspect: Callable[[OboTerm], str | None] | None = None,
    secondary: Mapping[str, set[str]] | None = None,
    within: set[str] | None = None,
    outside: str = "outside_subtree",
) -> Candidates:
    """Candidate records of an ontology; ``annotated`` maps term id -> annotated genes/diseases.

    ``secondary`` (term id -> e.g. cited PMIDs) gives ``popularity_secondary``; ``within`` keeps
    only those ids (a subtree), the others are counted as ``outside``. Ambiguity is judged against
    every live term, in the subtree or not.
    """
    excluded: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    excluded["other_prefix"] = obo.problems.get("other_prefix", 0)
    live: list[OboTerm] = []
    for t in obo.terms:
        if t.obsolete:
            excluded["obsolete"] += 1
        elif not t.name:
            excluded["no_name"] += 1
        else:
            live.append(t)
    strings = [(t.id, (t.name, *t.synonyms)) for t in live]
    shared = _Owners(strings).shared
    lenient = _Owners(strings, key=normalize_text)
    records: dict[str, dict[str, Any]] = {}
    for t in live:
        assert t.name is not None
        if t.name.casefold() in shared:
            excluded["ambiguous_name"] += 1
            continue
        if within is not None and t.id not in within:
            excluded[outside] += 1
            continue
        a = aspect(t) if aspect else None
        if aspect and a is None:
            excluded["no_aspect"] += 1
            continue
        synonyms = []
        typed: dict[str, str] = {}
        if t.synonyms:
            folded = t.name.casefold()
            for s, type_ in t.types().items():
                if s.casefold() == folded:
                    continue
                if not lenient.unique(s):
                    notes["ambiguous_synonyms_dropped"] += 1
                    continue
                synonyms.append(s)
                typed[s] = type_
        records[t.id] = {
            "id": t.id,
            "name": t.name,
            "synonyms": synonyms,
            "alt_ids": list(t.alt_ids),
            "popularity": annotation_count(t, annotated),
            "popularity_secondary": annotation_count(t, secondary) if secondary else 0,
            "aspect": a,
            "synonym_types": typed,
        }
    return Candidates(records, +excluded, +notes)


def go_aspect(term: OboTerm) -> str | None:
    return GO_ASPECTS.get(term.namespace or "")


def _protein_name(gene: HgncGene, gaf: GafAnnotations) -> str | None:
    """The UniProt protein name the GAF gives (column 10): by accession, else by symbol."""
    names: Counter[str] = Counter()
    for acc in gene.uniprot_ids:
        names.update(gaf.accession_names.get(acc, {}))
    if not names:
        names.update(gaf.symbol_names.get(gene.symbol, {}))
    if not names:
        return None
    # the name on most rows; ties by the name itself so that the choice is reproducible
    return min(names.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def protein_names(genes: Iterable[HgncGene], gaf: GafAnnotations) -> dict[str, str]:
    """The protein name (``_protein_name``) of every approved gene that has one, any locus type: the
    release index's ``proteins`` and, for the protein-coding candidates, the records' ``protein_name``
    before the ambiguity rule (computed once by the build for both)."""
    return {g.id: p for g in genes if g.status == "Approved" and (p := _protein_name(g, gaf))}


def gene_references(gene: HgncGene, gaf: GafAnnotations) -> set[str]:
    """PMIDs citing the gene in GAF references (joined by UniProt accession or symbol)."""
    pmids: set[str] = set(gaf.symbol_pmids.get(gene.symbol, set()))
    for acc in gene.uniprot_ids:
        pmids |= gaf.accession_pmids.get(acc, set())
    return pmids


def gene_popularity(gene: HgncGene, gaf: GafAnnotations,
                    max_genes: int = MAX_GENES_PER_REFERENCE) -> int:
    """Distinct PMIDs citing the gene that are cited for at most ``max_genes`` genes."""
    cited = gaf.pmid_genes
    return sum(1 for p in gene_references(gene, gaf) if cited.get(p, 0) <= max_genes)


def gene_terms(gene: HgncGene, gaf: GafAnnotations) -> int:
    """Distinct GO terms annotated to the gene (its tie-breaking popularity)."""
    terms: set[str] = set(gaf.symbol_terms.get(gene.symbol, set()))
    for acc in gene.uniprot_ids:
        terms |= gaf.accession_terms.get(acc, set())
    return len(terms)


def gene_candidates(genes: Iterable[HgncGene], gaf: GafAnnotations,
                    max_genes_per_reference: int = MAX_GENES_PER_REFERENCE,
                    proteins: Mapping[str, str] | None = None) -> Candidates:
    """The protein-coding approved genes with a unique name and symbol; ``proteins``: the genes' protein
    names if already computed (``protein_names``)."""
    if max_genes_per_reference < 1:
        raise TermnormError(f"--max-genes-per-reference {max_genes_per_reference}: must be >= 1")
    excluded: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    coding: list[HgncGene] = []
    approved: list[HgncGene] = []
    for g in genes:
        if g.status != "Approved":
            excluded["not_approved"] += 1
            continue
        approved.append(g)
        if not g.protein_coding:
            excluded["not_protein_coding"] += 1
        elif not g.name or not g.symbol:
            excluded["no_name"] += 1
        else:
            coding.append(g)
    if proteins is None:
        proteins = protein_names(coding, gaf)
    owners = _Owners((g.id, (g.name, proteins.get(g.id))) for g in coding)
    symbol_owners = _Owners((g.id, (g.symbol,)) for g in coding)
    # Lenient previous symbols and mention forms: owned among every approved gene (any locus type)
    gene_owners = GeneOwners((g.id, g.symbol, g.prev_symbols, g.alias_symbols) for g in approved)
    records: dict[str, dict[str, Any]] = {}
    owned: dict[str, Forms] = {}
    for g in coding:
        if not owners.unique(g.name):
            excluded["ambiguous_name"] += 1
            continue
        if not symbol_owners.unique(g.symbol):
            excluded["ambiguous_symbol"] += 1
            continue
        protein = proteins.get(g.id)
        if protein and not owners.unique(protein):
            notes["ambiguous_protein_names_dropped"] += 1
            protein = None
        if protein is None:
            notes["no_protein_name"] += 1
        prev = gene_owners.lenient_prev(g.id, g.prev_symbols)
        notes["ambiguous_prev_symbols_dropped"] += len(g.prev_symbols) - len(prev)
        owned[g.id] = gene_owners.forms(g.id, g.alias_symbols, prev, notes)
        records[g.id] = {
            "id": g.id,
            "name": g.name,
            "synonyms": [],
            "alt_ids": [],
            "popularity": gene_popularity(g, gaf, max_genes_per_reference),
            "popularity_secondary": gene_terms(g, gaf),
            "aspect": None,
            "symbol": g.symbol,
            "protein_name": protein,
            "prev_symbols": prev,
            "alias_symbols": list(g.alias_symbols),
        }
    over = sorted((n, p) for p, n in gaf.pmid_genes.items() if n > max_genes_per_reference)
    facts = {
        "max_genes_per_reference": max_genes_per_reference,
        "references": len(gaf.pmid_genes),
        "references_over_limit": len(over),
        "largest_references": [{"pmid": p, "genes": n} for n, p in sorted(over, reverse=True)[:5]],
    }
    return Candidates(records, +excluded, +notes, facts, owned)


def candidate_bound(path: Path, obo: bool) -> tuple[int, str]:
    """An upper bound on the candidates ``path`` can give, counted in well under a second, unparsed.

    Each candidate is one ``[Term]`` stanza of an OBO file (``obo``), or one row of a table (HGNC).
    Counting every ``[Term]`` and every newline can only overcount, so a design the bound refuses
    is impossible; that is checked before minutes of parsing, not after.
    """
    marker = b"[Term]" if obo else b"\n"
    count, tail = 0, b""
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            chunk = tail + block
            count += chunk.count(marker)
            tail = chunk[len(chunk) - len(marker) + 1:]  # too short to hold a whole marker again
    return (count, "[Term] stanzas") if obo else (count, "rows")


QUICK_TO_READ = 1 << 20  # bytes: a smaller file is read in well under a second anyway


def check_capacity(key: str, path: Path, bins: int, per_bin: int, obo: bool = True) -> None:
    """Refuse a design (bins x per-bin, train and val) that ``path`` cannot fill, before any parsing.

    Skipped for a file under ``QUICK_TO_READ``: there is no long parse to save, and the readers
    then give the more precise message (a broken line, the usable count after exclusions).
    """
    if path.stat().st_size < QUICK_TO_READ:
        return
    need = 2 * bins * per_bin
    have, what = candidate_bound(path, obo)
    if 0 < have < need:  # none at all: no such file kind; its reader gives the precise message
        fit = have // (2 * bins)
        hint = f"lower --per-bin to {fit} or fewer" if fit >= 1 else "lower --bins and --per-bin"
        raise TermnormError(
            f"{path}: has at most {have} {what}, so {key} can give at most {have} candidates, but --bins "
            f"{bins} x --per-bin {per_bin} needs {need} ({per_bin} train + {per_bin} val per bin); {hint}"
        )
