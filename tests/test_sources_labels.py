"""Names and synonyms with line breaks, tabs, ESC or U+2028 (issue 20, item 6): every reader (OBO, OWL
RDF/XML, OBO Graphs JSON, HGNC, GAF protein names) gives them as one line of plain text, so that an
ID->term item asks for an answer a model can give (an hf model stops generating at the newline)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from termnorm_eval.sources import mirrors
from termnorm_eval.sources.gaf import read_gaf
from termnorm_eval.sources.hgnc import read_hgnc
from termnorm_eval.sources.obo import read_obo
from termnorm_eval.sources.ontology_file import read_ontology
from termnorm_eval.splits.candidates import ontology_candidates
from termnorm_eval.splits.store import load_records

# (label as the file gives it, once decoded, -> as the records hold it), one per class of character
LABELS = [
    ("first\nsecond line", "first second line"),  # LF (OBO's \n escape, a literal line break in XML)
    ("tab\tand  double  spaces ", "tab and double spaces"),  # TAB, runs of spaces, a trailing space
    ("carriage\r\nreturn", "carriage return"),  # CR LF
    ("line\u2028and\u2029paragraph\u0085next", "line and paragraph next"),  # U+2028, U+2029, NEL
    ("no\u00a0break", "no break"),  # a Unicode space
    ("\u001b[31mred\u001b[0m alert\u0007", "[31mred[0m alert"),  # ESC and BEL (C0): removed
    ("csi\u009bc1 and del\u007f", "csic1 and del"),  # C1 and DEL: removed
]
ONLY_CONTROLS = "\u001b\u0007"  # no label at all once cleaned: the term has no name


def _obo_escape(text: str) -> str:
    """``text`` as an OBO value: line break and tab as OBO's escapes, the rest as raw characters."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace('"', '\\"')


def _expected_names() -> dict[str, str]:
    return {f"X:{i:07d}": clean for i, (_, clean) in enumerate(LABELS, 1)}


def test_obo_names_and_synonyms_are_one_line_of_plain_text(tmp_path: Path) -> None:
    stanzas = [f"[Term]\nid: X:{i:07d}\nname: {_obo_escape(raw)}\n"
               f"synonym: \"syn {_obo_escape(raw)}\" EXACT []\n" for i, (raw, _) in enumerate(LABELS, 1)]
    stanzas.append(f"[Term]\nid: X:0000099\nname: {ONLY_CONTROLS}\nsynonym: \"{ONLY_CONTROLS}\" EXACT []\n")
    path = tmp_path / "labels.obo"
    path.write_bytes(("format-version: 1.2\n\n" + "\n".join(stanzas)).encode("utf-8"))  # CR, U+2028 raw
    terms = {t.id: t for t in read_obo(path).terms}
    for ident, clean in _expected_names().items():
        assert terms[ident].name == clean and terms[ident].synonyms == (f"syn {clean}",)
    blank = terms["X:0000099"]
    assert blank.name == "" and blank.synonyms == ()
    cands = ontology_candidates(read_obo(path), {})
    assert cands.excluded["no_name"] == 1 and "X:0000099" not in cands.records


def _owl(labels: list[str]) -> str:
    rdf = ('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:owl="http://www.w3.org/'
           '2002/07/owl#" xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#" xmlns:oio="http://www.geneontology.'
           'org/formats/oboInOwl#">')
    classes = [f'<owl:Class rdf:about="http://purl.obolibrary.org/obo/X_{i:07d}"><rdfs:label>{label}</rdfs:label>'
               f"<oio:hasExactSynonym>syn {label}</oio:hasExactSynonym></owl:Class>"
               for i, label in enumerate(labels, 1)]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + rdf + '\n<owl:Ontology rdf:about="http://x.org/x.owl"/>\n'
            + "\n".join(classes) + "\n</rdf:RDF>\n")


def _xml_text(text: str) -> str:
    """``text`` in XML 1.0 content: CR and TAB as character references (a parser turns a raw CR LF into
    LF); C0 controls other than TAB, LF and CR cannot be written in XML 1.0 at all."""
    return text.replace("\r", "&#13;").replace("\t", "&#9;")


def test_owl_labels_are_one_line_of_plain_text(tmp_path: Path) -> None:
    xml_able = [(raw, clean) for raw, clean in LABELS if "\u001b" not in raw]
    path = tmp_path / "labels.owl"
    path.write_text(_owl([_xml_text(raw) for raw, _ in xml_able]), encoding="utf-8")
    terms = read_ontology(path).terms
    assert [(t.name, t.synonyms) for t in terms] == [(clean, (f"syn {clean}",)) for _, clean in xml_able]


def test_obo_graphs_json_labels_are_one_line_of_plain_text(tmp_path: Path) -> None:
    nodes = [{"id": f"http://purl.obolibrary.org/obo/X_{i:07d}", "type": "CLASS", "lbl": raw,
              "meta": {"synonyms": [{"pred": "hasExactSynonym", "val": f"syn {raw}"}]}}
             for i, (raw, _) in enumerate([*LABELS, (ONLY_CONTROLS, "")], 1)]
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"graphs": [{"id": "http://x.org/x.owl", "nodes": nodes, "edges": []}]}),
                    encoding="utf-8")
    terms = read_ontology(path).terms
    assert [(t.name, t.synonyms) for t in terms[:-1]] == [(c, (f"syn {c}",)) for _, c in LABELS]
    assert (terms[-1].name, terms[-1].synonyms) == ("", ("syn",))  # no name: not a candidate


def test_hgnc_names_and_symbols_are_one_line_of_plain_text(tmp_path: Path) -> None:
    real = mirrors.extract("hgnc_complete_set.txt")[0].read_text(encoding="utf-8").splitlines()[:3]
    cells = real[1].split("\t")
    assert cells[:3] == ["HGNC:5", "A1BG", "alpha-1-B glycoprotein"]
    cells[2] = '"alpha-1-B\nglycoprotein\u2028(\u001b[1mA1BG\u001b[0m)"'  # a quoted cell holds a line break
    cells[4] = "A1B\u0085, ABG\t".rstrip("\t")
    path = tmp_path / "hgnc_complete_set.txt"
    path.write_text("\n".join([real[0], "\t".join(cells), real[2]]) + "\n", encoding="utf-8")
    gene = read_hgnc(path).genes[0]
    assert (gene.symbol, gene.name) == ("A1BG", "alpha-1-B glycoprotein ([1mA1BG[0m)")
    assert gene.alias_symbols == ("A1B", "ABG")


def test_gaf_protein_names_are_one_line_of_plain_text(tmp_path: Path) -> None:
    with gzip.open(mirrors.extract("goa_human.gaf.gz")[0], "rt", encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t") for _, line in zip(range(60), fh, strict=False)
                if not line.startswith("!")]
    row = rows[0]
    acc, name = row[1], row[9]
    row[9] = f"\u001b[7m{name}\u2028 "
    path = tmp_path / "mini.gaf"
    path.write_text("!gaf-version: 2.1\n" + "\t".join(row) + "\n", encoding="utf-8")
    assert dict(read_gaf(path).accession_names[acc]) == {f"[7m{name}": 1}


@pytest.mark.parametrize("key", ["go", "hpo", "gene"])
def test_shipped_splits_hold_only_plain_one_line_labels(key: str) -> None:
    # so reading the pinned releases through the cleaning changes no shipped split
    from termnorm_eval.text import clean_label

    for split in ("train", "val"):
        for r in load_records(key, split):
            for label in (r["name"], *r.get("synonyms", ())):
                assert clean_label(label) == label, (r["id"], label)
