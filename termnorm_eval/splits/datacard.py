"""The data card written beside every build (``DATA_CARD.md``), rendered from its manifest.

Rendering it from the manifest keeps versions, checksums and counts in the card true to the data;
the prose (definitions, licences) is fixed here.
"""

from __future__ import annotations

from typing import Any

LICENCES = """\
## Licences and attributions

- **Gene Ontology** (ontology and GOA human annotations): © Gene Ontology Consortium, released under
  [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/). Cite: The Gene Ontology Consortium,
  *The Gene Ontology knowledgebase in 2023*, Genetics 224(1), 2023; Ashburner et al., Nat Genet 2000.
  GOA human annotations: EMBL-EBI GOA project.
- **Human Phenotype Ontology**: provided by the HPO consortium / Monarch Initiative under the
  [HPO licence](https://hpo.jax.org/license) (free use with attribution; the ontology must not be
  modified and redistributed as HPO). This build does **not modify** the ontology: it copies term
  identifiers, names and exact synonyms verbatim, with the release they come from. Cite: Gargano et
  al., *The Human Phenotype Ontology in 2024*, Nucleic Acids Res 52(D1), 2024.
  "This service/product uses the Human Phenotype Ontology (version given above)."
- **HGNC** gene symbols, names and identifiers: HUGO Gene Nomenclature Committee
  ([genenames.org](https://www.genenames.org)), freely usable; cite Seal et al., *Genenames.org: the
  HGNC resources in 2023*, Nucleic Acids Res 51(D1), 2023.
- **UniProt** protein names (carried in column 10 of the GAF): UniProt Consortium, CC BY 4.0.
"""

DEFINITIONS = """\
## How the splits are made

1. **Candidates.** GO: live (non-obsolete) named `GO:` terms of all three aspects (namespace ->
   BP/MF/CC). HPO: live named `HP:` terms. Genes: HGNC status *Approved* and locus type
   *gene with protein product*.
2. **Exclusions.** Obsolete or unnamed terms; terms of another id prefix (imported); any concept
   whose name (case-insensitive) is the name or an exact synonym of more than one live concept
   (ambiguous: a question with two right answers). An exact synonym (or, for genes, a UniProt
   protein name) shared by two concepts is dropped from the record rather than excluding the
   concept. Counts per reason are in `manifest.json` (`excluded`, `notes`).
3. **Popularity.** GO term: distinct human genes (GAF column 3) annotated directly to it or one of
   its alt_ids (annotations are not propagated up the ontology). HPO term: distinct diseases
   (`database_id`) annotated to it in `phenotype.hpoa`. Gene: distinct PubMed IDs among the
   references (GAF column 6) of its GO annotations, joined to HGNC by UniProt accession or symbol.
   Rows with a `NOT` qualifier are ignored everywhere. Alternatives considered and not used: the
   number of GO annotations per gene (dominated by electronic IEA annotations), and literature hit
   counts of the identifier (needs a network service; not reproducible offline).
4. **Balanced sampling.** Candidates are ranked by (popularity, id) and cut into `bins` bins of
   equal size (bin 0 = least popular). From each bin, `per_bin` concepts go to train and another
   `per_bin` to val, drawn with `random.Random(seed)`. GO bins are balanced across BP/MF/CC
   (`per_bin/3` each; a short aspect is made up from the others, actual counts in the manifest).
   Many of the lowest bins have popularity 0: most terms have no annotation at all.
5. **No leakage.** No identifier (id or alt_id) and no name, synonym, symbol or protein name
   (case-insensitive) occurs in both splits; genes are split per gene, so every direction of a gene
   is in the same split. The build checks this before writing and the test suite re-checks the
   shipped files.
6. **Records.** One JSON object per line, sorted by id: `id`, `name`, `synonyms` (exact),
   `alt_ids`, `popularity`, `bin`, `aspect` (GO only); genes add `symbol`, `protein_name` (null when
   the GAF gives none), `prev_symbols`, `alias_symbols`, `prev_names`, `alias_names`.
"""


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


def _terminology_facts(key: str, t: dict[str, Any]) -> list[str]:
    bins = t.get("bins", [])
    zero = sum(1 for b in bins if b["popularity_max"] == 0)
    top = bins[-1]["popularity_max"] if bins else 0
    excluded = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t.get("excluded", {}).items()) or "none"
    notes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t.get("notes", {}).items()) or "none"
    return [
        f"**{key}** — popularity: {t.get('popularity', '')}. {zero} of {len(bins)} bins hold only "
        f"popularity 0; the top bin reaches {top}. Excluded: {excluded}. Fields left out of kept "
        f"records: {notes}.",
        "",
    ]


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
        f"seed {p['seed']}.",
        "",
        "## Contents",
        "",
        "| terminology | candidates | train | val |",
        "|---|---|---|---|",
    ]
    for key, t in manifest["terminologies"].items():
        out.append(f"| {key} ({t['spec']['description']}) | {t['candidates']} | {t['counts']['train']} | "
                   f"{t['counts']['val']} |")
    out.append("")
    for key, t in manifest["terminologies"].items():
        out += _terminology_facts(key, t)
    out += ["## Source releases", "", *_sources_table(manifest["sources"]), ""]
    out += ["HGNC's custom-download TSV carries no release tag: its provenance is the mirror above. For "
            "the official `hgnc_complete_set.txt` the latest `date_modified` is recorded instead.",
            "",
            "Vintages differ: gene popularity and UniProt protein names come from the 2019 GAF while the "
            "gene table is from 2024 (joined by UniProt accession, then symbol), so genes named or "
            "annotated after January 2019 have popularity 0 and often no protein name.",
            "", DEFINITIONS, LICENCES]
    out += [
        "## Rebuilding",
        "",
        "```",
        "termnorm data fetch --mirror pypi        # the pinned releases above",
        f"termnorm data build --out DIR --bins {p['bins']} --per-bin {p['per_bin']} --seed {p['seed']}",
        "```",
        "",
        "The same sources and parameters give byte-identical files (checked by the test suite).",
        "`termnorm data fetch --official` gets the current releases instead.",
        "",
    ]
    return "\n".join(out)
