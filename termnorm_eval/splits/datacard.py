"""The data card written beside every build (``DATA_CARD.md``), rendered from its manifest.

Rendering it from the manifest keeps versions, checksums and counts in the card true to the data;
the prose (definitions, licences) is fixed here.
"""

from __future__ import annotations

from typing import Any

from termnorm_eval.splits.histogram import FILE as HISTOGRAM
from termnorm_eval.splits.histogram import render_histogram
from termnorm_eval.splits.rag import card_lines
from termnorm_eval.splits.store import STRATA
from termnorm_eval.terminologies import TASK_VERSION

LICENCES = """\
## Licences and attributions

- **Gene Ontology** (ontology and GOA human annotations): © Gene Ontology Consortium, released under
  [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/). Cite: The Gene Ontology Consortium,
  *The Gene Ontology knowledgebase in 2023*, Genetics 224(1), 2023; Ashburner et al., Nat Genet 2000.
  GOA human annotations: EMBL-EBI GOA project.
- **Human Phenotype Ontology**: provided by the HPO consortium / Monarch Initiative under the
  [HPO licence](https://hpo.jax.org/license) (free use with attribution; the ontology must not be
  modified and redistributed as HPO). This build does **not modify** the ontology: it copies term
  identifiers, names, exact synonyms and their types verbatim, with the release they come from.
  Cite: Gargano et al., *The Human Phenotype Ontology in 2024*, Nucleic Acids Res 52(D1), 2024.
  "This service/product uses the Human Phenotype Ontology (version given above)."
- **HGNC** gene symbols, names and identifiers: HUGO Gene Nomenclature Committee
  ([genenames.org](https://www.genenames.org)), freely usable; cite Seal et al., *Genenames.org: the
  HGNC resources in 2023*, Nucleic Acids Res 51(D1), 2023.
- **UniProt** protein names (carried in column 10 of the GAF): UniProt Consortium, CC BY 4.0.
"""

DEFINITIONS = """\
## How the splits are made (benchmark v2, task version {version})

1. **Candidates.** GO: live (non-obsolete) named `GO:` terms of all three aspects (namespace ->
   BP/MF/CC). HPO: live named `HP:` terms below *Phenotypic abnormality* (HP:0000118, by `is_a`);
   Clinical modifier, Mode of inheritance, Frequency, Past medical history, Blood group and
   Biospecimen terms are left out (`not_phenotypic_abnormality`). Genes: HGNC status *Approved*
   and locus type *gene with protein product*.
2. **Exclusions.** Obsolete or unnamed terms; terms of another id prefix (imported); any concept
   whose name (case-insensitive) is the name or an exact synonym of more than one live concept
   (ambiguous: a question with two right answers). Counts per reason are in `manifest.json`
   (`excluded`, `notes`).
3. **Lenient answers owned by one concept only.** `lenient_match` accepts a term's exact synonyms
   and alt_ids and a gene's previous symbols. A synonym that another live term also has as name or
   synonym, and a previous symbol that another approved gene has as its symbol or previous symbol
   (SLC18A1's previous symbol VAT1 is the symbol of another gene), is dropped from the record,
   compared as the lenient score compares (case, spacing and trailing punctuation ignored); counts
   in `notes`. A UniProt protein name shared by two genes is dropped likewise. HGNC alias and
   previous *names* are not carried: the pinned HGNC table has no such columns, and no pinned
   release does, so they would only exist in builds from an unpinned download.
4. **Popularity: two numbers per concept**, both from the release files. `popularity` ranks:
   GO term: distinct human genes (GAF column 3) annotated to it or one of its alt_ids (not
   propagated up the ontology); HPO term: distinct diseases (`database_id`) annotated to it;
   gene: distinct PubMed IDs among the references of its GO annotations, joined to HGNC by UniProt
   accession or symbol, counting only papers cited for at most `max_genes_per_reference` genes
   (see below). `popularity_secondary` breaks its ties: for GO and HPO terms the distinct PubMed
   IDs among the references of the term's annotations, for genes the distinct GO terms annotated.
   Rows with a `NOT` qualifier are ignored everywhere.
5. **The pool.** Only concepts with popularity >= 1 are ranked, as the study sampled only annotated
   items. The others are left out unless the build is run with `--include-unannotated`; then they
   form bin 0, labelled `unannotated` in the manifest, and are never mixed into a ranked bin.
6. **Bins that respect the data.** The pool is ordered by (popularity, secondary) -- GO within each
   aspect -- and cut into `bins` bins of about equal size, a cut only ever falling between two
   different (popularity, secondary) values. So no concept's bin is decided by its identifier or by
   chance, and no two bins share a value. A value held by more concepts than an equal bin would
   take is a bin of its own (listed under `binning.wide_bins` with the number of equal bins it
   stands for); if the values cannot fill `bins` bins of at least 2 x `per_bin` concepts, bins are
   merged (`binning.merged`). Each bin's range, share of the pool and counts are below and in the
   manifest; the popularity strata (`exact_match_low/mid/high`) are thirds of the bins actually used.
7. **Balanced draw.** From each bin, `per_bin` concepts go to train and another `per_bin` to val,
   drawn with `random.Random(seed)`; GO draws `per_bin/3` per aspect from each aspect's own bin.
8. **No leakage.** No identifier (id or alt_id) and no name, synonym, symbol or protein name
   (case-insensitive) occurs in both splits; genes are split per gene, so every direction of a gene
   is in the same split. The build checks this before writing and the test suite re-checks the
   shipped files.
9. **Records.** One JSON object per line, sorted by id: `id`, `name`, `synonyms` (exact),
   `alt_ids`, `popularity`, `popularity_secondary`, `bin`, `aspect` (GO only), `mentions`; GO and
   HPO add `synonym_types` (each synonym's OBO synonym type, e.g. `layperson`, `""` when untyped);
   genes add `symbol`, `protein_name` (null when the GAF gives none), `prev_symbols`, `alias_symbols`.
10. **Mentions.** `mentions` holds, per kind, the one form (not the label) that the mention tasks ask
   about the concept: `synonym` (an exact synonym not typed `layperson` or `obsolete_synonym`) and
   `lay` (typed `layperson`) for GO and HPO, `alias` (an alias symbol) and `prev` (a previous symbol)
   for genes. A form is usable only when one concept owns it (compared as the lenient score compares;
   genes: no other approved gene has it as symbol, alias or previous symbol) and it differs from every
   string the concept's label tasks show (GO, HPO: the name; genes: the approved symbol, approved name
   and protein name) after case and punctuation folding. Among a concept's usable
   forms of a kind one is chosen by a hash of seed, id and kind, so adding or removing a concept never
   changes another's form. Gene aliases and previous symbols that another gene owns are counted under
   `notes`, the records' forms not asked (the label again, obsolete synonyms) per split under
   `mentions.dropped`; the rule, the seed and the coverage below are in `manifest.json` (`mentions`,
   `mention_kinds`).
"""


def range_text(lo: list[int] | None, hi: list[int] | None) -> str:
    """``p (s)`` for a bin of one (popularity, secondary) value, else ``p1 (s1) – p2 (s2)``."""
    if not lo or not hi:
        return ""
    return f"{lo[0]} ({lo[1]})" if lo == hi else f"{lo[0]} ({lo[1]}) – {hi[0]} ({hi[1]})"


def _bin_table(t: dict[str, Any]) -> list[str]:
    """One row per bin: popularity range (secondary range), share of the pool, counts."""
    bins = t.get("bins", [])
    strata = sorted(bins[0].get("by_stratum", {})) if bins else []
    head = [f"{s} popularity (secondary)" for s in strata] if strata else ["popularity (secondary)"]
    lines = ["| bin | " + " | ".join(head) + " | share of pool | train | val |",
             "|---:|" + "---|" * len(head) + "---:|---:|---:|"]
    for b in bins:
        name = f"{b['bin']} ({b['label']})" if b.get("label") else str(b["bin"])
        if strata:
            cells = [range_text(b["by_stratum"][s].get("key_min"), b["by_stratum"][s].get("key_max"))
                     for s in strata]
        else:
            cells = [range_text(b.get("key_min"), b.get("key_max"))]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * b.get('share', 0):.1f}% | "
                     f"{b['train']} | {b['val']} |")
    return lines


def _sources_table(sources: dict[str, Any]) -> list[str]:
    lines = ["| file | data-version | origin | sha256 |", "|---|---|---|---|"]
    for name, s in sorted(sources.items()):
        if "package" in s:
            origin = f"PyPI `{s['package']}=={s['version']}`, member `{s['member']}`"
        else:
            origin = s.get("url", "local file")
        desc = f" ({s['description']})" if s.get("description") else ""
        lines.append(f"| `{name}`{desc} | {s.get('data_version') or 'n/a'} | {origin} | `{s['sha256']}` |")
    return lines


def _index_line(key: str, counts: dict[str, int] | None) -> list[str]:
    if not counts:
        return []
    links = f", {counts['is_a']} is_a links between live terms" if counts.get("is_a") else ""
    if "typed_synonyms" in counts:  # builds before the synonym_types and proteins columns have neither
        links += f", {counts['typed_synonyms']} exact synonyms with an OBO synonym type"
    if "protein_names" in counts:
        links += f", {counts['protein_names']} protein names (from the GO annotations)"
    return [f"- Release index (`{key}/index.tsv.gz`, what answer validity looks answers up in): "
            f"{counts['live']} live, {counts['obsolete']} obsolete and {counts['alt']} alternative "
            f"identifiers, {counts['names']} names and exact synonyms{links}."]


def _fraction(cell: dict[str, int]) -> str:
    return f"{cell['with_form']} / {cell['concepts']}"


def mention_coverage(manifest: dict[str, Any]) -> list[str]:
    """Per mention task and split: concepts with a usable form, overall and per popularity stratum."""
    lines = ["| task | with a usable form | " + " | ".join(STRATA) + " |",
             "|---|---:|" + "---:|" * len(STRATA)]
    notes = []
    for key, t in manifest["terminologies"].items():
        dropped = t.get("mentions", {}).get("dropped", {})
        if any(dropped.values()):
            notes.append(f"{key}: forms of the records not asked: " + "; ".join(
                f"{split} " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in c.items())
                for split, c in dropped.items() if c) + ".")
        for kind, entry in t.get("mentions", {}).get("kinds", {}).items():
            if not any(v["with_form"] for v in entry["splits"].values()):
                notes.append(f"{key}: no concept has a usable `{kind}` form, so there is no "
                             f"`{entry['direction']}` task.")
                continue
            for split, v in entry["splits"].items():
                cells = [_fraction(v["by_stratum"][s]) for s in STRATA]
                # a split without a form has no task of that name (Direction.splits)
                task = f"`termnorm_{key}_{entry['direction']}_{split}`"
                task += "" if v["with_form"] else " (no task)"
                lines.append(f"| {task} | {_fraction(v)} | " + " | ".join(cells) + " |")
    return [*lines, "", *(f"- {n}" for n in notes)] if notes else lines


def _terminology_facts(key: str, t: dict[str, Any]) -> list[str]:
    binning = t.get("binning", {})
    excluded = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t.get("excluded", {}).items()) or "none"
    notes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t.get("notes", {}).items()) or "none"
    wide = "; ".join(f"bin {w['bin']}{' ' + w['stratum'] if 'stratum' in w else ''} holds one value for "
                     f"{w['candidates']} concepts ({w['equal_bins']} equal bins' worth)"
                     for w in binning.get("wide_bins", []))
    merged = binning.get("merged", 0)
    facts = t.get("popularity_facts", {})
    out = [
        f"### {key}",
        "",
        f"- Pool: {t.get('pool', '')}. {binning.get('ranked_candidates', '?')} ranked of {t['candidates']} "
        f"candidates; {binning.get('unannotated_candidates', 0)} without popularity "
        f"({binning.get('unannotated', 'left out')}).",
        f"- Popularity ({t.get('popularity_source', 'annotations')}): {t.get('popularity', '')}. "
        f"Ties broken by: {t.get('popularity_secondary', '')}.",
    ]
    if "max_genes_per_reference" in facts:
        largest = ", ".join(f"{r['pmid']} ({r['genes']} genes)" for r in facts.get("largest_references", []))
        out.append(f"- Papers cited for more than {facts['max_genes_per_reference']} genes are not counted: "
                   f"{facts['references_over_limit']} of {facts['references']} PMIDs, the largest {largest}.")
    out += [
        f"- Bins: {binning.get('bins', len(t.get('bins', [])))} (asked for "
        f"{binning.get('requested_bins', '?')}"
        + (f"; {merged} merged: the values could not fill more" if merged else "") + "). "
        + (f"Wide bins: {wide}." if wide else "No bin holds one value for more than 1.5 equal bins' worth."),
        f"- Excluded: {excluded}. Counted in kept records (fields and mention forms left out): {notes}.",
        *_index_line(key, t.get("release_index")),
        *card_lines(key, t.get("rag")),
        "",
        *_bin_table(t),
        "",
    ]
    return out


def render_data_card(manifest: dict[str, Any]) -> str:
    p = manifest["parameters"]
    out = [
        "# termnorm-eval benchmark data card",
        "",
        "Popularity-balanced train/val splits for mapping biomedical terms to identifiers and back:",
        "Gene Ontology terms, Human Phenotype Ontology terms and approved protein-coding human genes",
        "(HGNC). Built by `termnorm data build` from the release files below; this card is generated",
        "from `manifest.json` by the same build.",
        "",
        f"Parameters: {p['bins']} popularity bins, {p['per_bin']} concepts per bin per split, "
        f"seed {p['seed']}; task version {TASK_VERSION} (benchmark v2).",
        "",
        "## Contents",
        "",
        "| terminology | candidates | train | val |",
        "|---|---|---|---|",
    ]
    for key, t in manifest["terminologies"].items():
        out.append(f"| {key} ({t['spec']['description']}) | {t['candidates']} | {t['counts']['train']} | "
                   f"{t['counts']['val']} |")
    out += ["", "## Popularity bins", "",
            "Ranges are `popularity (popularity_secondary)`, from the bin's least to its most popular "
            "member; the share is of the pool (GO: of all three aspects' pools).", "",
            f"![Each bin's popularity range, log scale; panels GO BP, CC, MF, HPO, genes]({HISTOGRAM})",
            ""]
    for key, t in manifest["terminologies"].items():
        out += _terminology_facts(key, t)
    out += ["## Mention coverage", "",
            "Concepts with a usable mention form (definition 10 below), of all concepts, per split and "
            "popularity stratum (thirds of the bins); each is one document of the mention task.", "",
            *mention_coverage(manifest), ""]
    out += ["## Source releases", "", *_sources_table(manifest["sources"]), ""]
    out += ["HGNC's custom-download TSV carries no release tag: its provenance is the mirror above. For "
            "the official `hgnc_complete_set.txt` the latest `date_modified` is recorded instead.",
            "",
            "Vintages differ: gene popularity and UniProt protein names come from the 2019 GAF while the "
            "gene table is from 2024 (joined by UniProt accession, then symbol), so genes named or "
            "annotated after January 2019 have popularity 0 (so they are not in the pool) and often no "
            "protein name.",
            "", DEFINITIONS.format(version=TASK_VERSION), LICENCES]
    out += [
        "## Rebuilding",
        "",
        "```",
        "termnorm data fetch --mirror pypi        # the pinned releases above",
        f"termnorm data build --out DIR --bins {p['bins']} --per-bin {p['per_bin']} --seed {p['seed']}"
        + (f" --max-genes-per-reference {p['max_genes_per_reference']}" if p.get("max_genes_per_reference")
           else "")
        + (" --include-unannotated" if p.get("include_unannotated") else "")
        + "".join(f" --popularity {name}" for name in p.get("popularity_tables", [])),
        "```",
        "",
        "The same sources and parameters give byte-identical files (checked by the test suite).",
        "`termnorm data fetch --official` gets the current releases instead.",
        "",
        "With literature counts instead of annotation counts (as the study ranked HPO and genes), give",
        "an `id<TAB>count` table per terminology: `termnorm data popularity` writes one from Europe PMC",
        "hit counts (needs a network), any other tool may too. The table replaces `popularity`; ids",
        "it does not list count 0 (left out of the pool), ids no candidate has are counted and reported.",
        "",
        "```",
        "termnorm data build --out DIR --popularity hpo_counts.tsv --popularity gene_counts.tsv",
        "```",
        "",
        "Scores of different task versions (1: the splits before benchmark v2; 2: benchmark v2; 3: the",
        "mention tasks, every validity category on every document, the hierarchy categories) are not",
        "comparable; `termnorm report` refuses to compare them.",
        "",
    ]
    return "\n".join(out)


def card_files(manifest: dict[str, Any]) -> dict[str, str | bytes]:
    """The files written beside a build's data: the card and its histogram."""
    return {"DATA_CARD.md": render_data_card(manifest), HISTOGRAM: render_histogram(manifest)}
