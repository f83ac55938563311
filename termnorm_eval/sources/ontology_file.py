"""An ontology file in any format add-ontology reads, as the term records of ``sources.obo``.

OBO goes to the fast reader in ``sources.obo``. OWL in RDF/XML and OBO Graphs JSON, which that
reader does not handle (many ontologies publish OWL first), are read by pronto and mapped to the
same records. The format is told by the file's content, never by its name alone: a release saved
as ``.owl`` may hold OBO. Formats neither reads (OWL/XML, OWL functional or Manchester syntax,
Turtle) are refused in one line that says what the file is.

Encodings: UTF-8, as OBO 1.4 and JSON (RFC 8259) require. RDF/XML may also be UTF-16 with its
byte-order mark (every XML processor must read it, XML 1.0 section 4.3.3): pronto reads UTF-8 only,
so it is given a UTF-8 copy, line for line. UTF-16 OBO or JSON, UTF-32 and UTF-16 XML without a
byte-order mark are refused in one line that says so.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.obo import (
    OboResult,
    OboTerm,
    check_no_nul,
    finish,
    line_at,
    read_bytes,
    read_obo,
    typed_synonyms,
)
from termnorm_eval.text import JsonIntegerTooLarge, clean_label, json_int

FORMATS = {"obo": "OBO", "owl": "OWL (RDF/XML)", "obojson": "OBO Graphs JSON"}
HEAD = 1 << 16  # bytes looked at to tell the format (XML: read until the root element's start)
# (start of the file, codec, what it is): byte-order marks, then ASCII text without one, whose every
# character has NUL bytes beside it; UTF-32 before UTF-16, whose mark is the start of UTF-32-LE's
_A = rb"[\t\n\r -~]"  # an ASCII text character
_WIDE = (
    (re.compile(rb"\xff\xfe\x00\x00|\x00\x00\xfe\xff"), "utf-32", "UTF-32 with a byte-order mark"),
    (re.compile(rb"\xff\xfe|\xfe\xff"), "utf-16", "UTF-16 with a byte-order mark"),
    (re.compile(_A + rb"\x00\x00\x00"), "utf-32-le", "UTF-32 without a byte-order mark"),
    (re.compile(rb"\x00\x00\x00" + _A), "utf-32-be", "UTF-32 without a byte-order mark"),
    (re.compile(_A + rb"\x00" + _A + rb"\x00"), "utf-16-le", "UTF-16 without a byte-order mark"),
    (re.compile(rb"\x00" + _A + rb"\x00" + _A), "utf-16-be", "UTF-16 without a byte-order mark"),
)
# the encoding named in the XML declaration of a UTF-16 file, replaced in its UTF-8 copy
_XML_ENCODING = re.compile(r"""\A(<\?xml\s[^>]*?\bencoding\s*=\s*["'])[^"']*(["'])""")
_UNSUPPORTED = (  # (start of the file, what it is)
    (re.compile(rb"(?:Prefix|Ontology)\("), "OWL functional syntax"),
    (re.compile(rb"(?:Prefix:\s*[\w.-]*:\s*<|Ontology:\s*<)"), "OWL Manchester syntax"),
    (re.compile(rb"(?:@prefix|@base|PREFIX\s|BASE\s)"), "Turtle (RDF)"),
)
_AT_LINE = re.compile(r"^(.*?),? at line (\d+) column \d+$", re.S)  # serde's error suffix
OBO_PURL = "http://purl.obolibrary.org/obo/"
_OBO_LOCAL = re.compile(r"([A-Za-z][A-Za-z0-9]*)_([^/#]+)")  # PREFIX_LOCAL after OBO_PURL: PREFIX:LOCAL
SynonymTypes = dict[tuple[str, str], str]  # (term id, synonym text) -> type


def _unsupported(path: Path, what: str) -> TermnormError:
    return TermnormError(f"{path}: {what} is not supported; give the ontology as OBO, OWL in RDF/XML or "
                         "OBO Graphs JSON (e.g. `robot convert --input FILE --output FILE.owl`)")


def detect_format(path: Path) -> str:
    """``obo``, ``owl`` (RDF/XML) or ``obojson``, from the first bytes of ``path``."""
    if not path.is_file():
        return "obo"  # the OBO reader says what is wrong with it
    with path.open("rb") as fh:
        raw = fh.read(HEAD)
    wide = _wide_encoding(raw)
    if wide is not None:
        return _wide_format(path, raw, *wide)
    head = raw.removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"{"):
        return "obojson"
    if head.startswith(b"<"):
        return _xml_format(path)
    for start, what in _UNSUPPORTED:
        if start.match(head):
            raise _unsupported(path, what)
    return "obo"


def _wide_encoding(head: bytes) -> tuple[str, str] | None:
    """(codec, description) of a UTF-16 or UTF-32 file; None for UTF-8 (and ASCII)."""
    for start, codec, what in _WIDE:
        if start.match(head):
            return codec, what
    return None


def _wide_format(path: Path, head: bytes, codec: str, what: str) -> str:
    """``owl`` for UTF-16 RDF/XML with a byte-order mark; any other UTF-16 or UTF-32 file is refused."""
    text = head[:1024].decode(codec, "replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<") and codec == "utf-16":
        return _xml_format(path)
    if text.startswith("<"):
        kind, rule = "XML", ("UTF-16 XML must begin with a byte-order mark (XML 1.0, 4.3.3)"
                             if codec.startswith("utf-16") else "RDF/XML is read as UTF-8 or UTF-16")
    elif text.startswith("{"):
        kind, rule = "JSON", "JSON must be UTF-8 (RFC 8259)"
    else:
        kind, rule = "text", "OBO must be UTF-8"
    iconv = codec.upper().replace("-LE", "LE").replace("-BE", "BE")  # iconv's names: UTF-16LE, ...
    raise TermnormError(f"{path}: {kind} in {what}; {rule}: convert it to UTF-8 first "
                        f"(e.g. `iconv -f {iconv} -t UTF-8`)")


class _Root(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _xml_format(path: Path) -> str:
    """``owl`` if the root element of the XML file ``path`` is ``RDF``; other XML is refused.

    expat reads up to the root's start tag (the DTD as XML reads it: an entity value may hold ``]``,
    a prolog may be long). It fetches no external entity or DTD, and its amplification limit stops
    an entity bomb in the root's attributes.
    """
    from xml.parsers import expat

    def start(name: str, attributes: object) -> None:
        raise _Root(name)

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    name = ""
    try:
        with path.open("rb") as fh:
            while block := fh.read(HEAD):
                parser.Parse(block, False)
            parser.Parse(b"", True)
    except _Root as root:
        name = root.name
    except expat.ExpatError as e:
        raise TermnormError(f"{path}:{e.lineno}: not RDF/XML: not well-formed XML before the root element "
                            f"(expat: {expat.ErrorString(e.code)})") from None
    local = name.rpartition(":")[2]
    if local == "RDF":
        return "owl"
    if local == "Ontology":
        raise _unsupported(path, "OWL/XML")
    raise _unsupported(path, f"XML other than RDF/XML (root element <{name[:60] or '?'}>)")


def read_ontology(path: str | Path, prefix: str | None = None) -> OboResult:
    """The terms of an OBO, OWL (RDF/XML) or OBO Graphs JSON file, sorted by id (see ``read_obo``)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "obo":
        return read_obo(path, prefix)
    return finish(read_with_pronto(path, fmt), prefix)


def read_with_pronto(path: Path, fmt: str) -> OboResult:
    """An OWL (RDF/XML) or OBO Graphs JSON file through pronto; broken files are one-line errors."""
    data = read_bytes(path)
    utf16 = fmt == "owl" and _wide_encoding(data[:4]) is not None  # detect_format let only this through
    if utf16:
        data = _utf8_copy_of_xml(path, data)
    check_no_nul(path, data, FORMATS[fmt])
    json_types: SynonymTypes = {}
    if fmt == "obojson":
        json_types = _obo_graphs_synonym_types(_check_obo_graphs(path, data))
    with contextlib.ExitStack() as scratch:
        source = path
        if utf16:  # pronto reads UTF-8 only: it reads the copy, errors name the file
            source = Path(scratch.enter_context(tempfile.TemporaryDirectory())) / path.name
            source.write_bytes(data)
        del data
        onto = _pronto_ontology(path, source, fmt)
    problems: Counter[str] = Counter()
    terms = pronto_terms(onto, path, problems, json_types)
    if not terms:
        what = "owl:Class" if fmt == "owl" else "CLASS node"
        raise TermnormError(f"{path}: no {what} found, not an ontology of terms")
    typedefs = {t.id: t.description for t in onto.synonym_types()}
    return OboResult(path, terms, onto.metadata.data_version, "pronto", problems=problems,
                     synonym_typedefs=typedefs)


def _pronto_ontology(path: Path, source: Path, fmt: str) -> Any:
    """``pronto.Ontology`` of ``source`` (``path`` or its UTF-8 copy); its errors are one line."""
    import pronto  # here: 0.2 s of imports that OBO files and the CLI's start-up never need

    try:
        with warnings.catch_warnings():
            # pronto warns about what it fixes up itself (e.g. unknown synonym types)
            warnings.simplefilter("ignore")
            return pronto.Ontology(str(source), import_depth=0, encoding="utf-8")
    except SyntaxError as e:  # xml.etree's ParseError (it has the position), fastobo's syntax errors
        position = getattr(e, "position", None)
        line = position[0] if isinstance(position, tuple) else None
        reason = re.sub(r": line \d+, column \d+$", "", str(e.msg))
        raise TermnormError(f"{path}{f':{line}' if line else ''}: not valid {FORMATS[fmt]} "
                            f"(pronto: {reason})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        m = _AT_LINE.match(str(e))
        where, reason = (f"{path}:{m[2]}", m[1]) if m else (str(path), f"{type(e).__name__}: {e}")
        raise TermnormError(f"{where}: not valid {FORMATS[fmt]} (pronto: {reason})") from None


def _utf8_copy_of_xml(path: Path, data: bytes) -> bytes:
    """UTF-16 XML (with its byte-order mark) as UTF-8, line for line, its declaration saying so."""
    try:
        text = data.decode("utf-16")
    except UnicodeDecodeError as e:
        line = data[:e.start].decode("utf-16", "replace").count("\n") + 1
        raise TermnormError(f"{path}:{line}: garbled bytes, not UTF-16 text ({e.reason})") from None
    return _XML_ENCODING.sub(r"\1UTF-8\2", text, count=1).encode("utf-8")


def _check_obo_graphs(path: Path, data: bytes) -> dict[str, Any]:
    """The parsed document, checked before pronto sees it: fastobo panics (a Rust backtrace on stderr)
    on a JSON file without graphs instead of raising. Integers are bounded (``text.json_int``): an OBO
    Graphs file holds no count, and a longer one is a ValueError of Python's or a long conversion."""
    try:
        doc = json.loads(data.removeprefix(b"\xef\xbb\xbf"), parse_int=json_int)
    except JsonIntegerTooLarge as e:
        line = line_at(data, max(data.find(e.literal.encode("ascii")), 0))
        raise TermnormError(f"{path}:{line}: {e}: no OBO Graphs file holds such a number") from None
    except json.JSONDecodeError as e:
        raise TermnormError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise TermnormError(f"{path}:{line_at(data, e.start)}: garbled bytes, not UTF-8 text ({e.reason})"
                            ) from None
    except RecursionError:
        raise TermnormError(f"{path}: JSON nested too deeply, not an OBO Graphs file") from None
    graphs = doc.get("graphs") if isinstance(doc, dict) else None
    if not isinstance(graphs, list) or not graphs or not isinstance(graphs[0], dict):
        raise TermnormError(f"{path}: JSON without a 'graphs' list, not an OBO Graphs JSON file")
    assert isinstance(doc, dict)
    return doc


def compact_iri(iri: str) -> str:
    """An OBO IRI as the id it stands for (``.../obo/HP_0034334`` -> ``HP:0034334``; a synonym type
    ``.../obo/hp#layperson`` -> ``layperson``), as pronto compacts them; other IRIs unchanged."""
    if "#" in iri:
        return iri.rpartition("#")[2]
    m = _OBO_LOCAL.fullmatch(iri[len(OBO_PURL):]) if iri.startswith(OBO_PURL) else None
    return f"{m[1]}:{m[2]}" if m else iri


def _obo_graphs_synonym_types(doc: dict[str, Any]) -> SynonymTypes:
    """The ``synonymType`` of each exact synonym of an OBO Graphs document: pronto's JSON route
    (fastobo-graphs) drops them, so they are read here."""
    found: SynonymTypes = {}
    for graph in doc["graphs"]:
        nodes = graph.get("nodes") if isinstance(graph, dict) else None
        for node in nodes if isinstance(nodes, list) else ():
            meta = node.get("meta") if isinstance(node, dict) else None
            synonyms = meta.get("synonyms") if isinstance(meta, dict) else None
            for syn in synonyms if isinstance(synonyms, list) else ():
                if (isinstance(syn, dict) and isinstance(syn.get("synonymType"), str)
                        and isinstance(syn.get("val"), str) and isinstance(node.get("id"), str)
                        and str(syn.get("pred", "")).endswith("hasExactSynonym")):
                    found[compact_iri(node["id"]), syn["val"]] = compact_iri(syn["synonymType"])
    return found


def pronto_terms(onto: Any, path: Path | str, problems: Counter[str] | None = None,
                 json_types: SynonymTypes | None = None) -> list[OboTerm]:
    """Plain records of a ``pronto.Ontology``'s terms, through pronto's public API.

    ``problems`` counts what ``obo.typed_synonyms`` counts; ``json_types`` are the synonym types
    of an OBO Graphs file (``_obo_graphs_synonym_types``), which pronto does not keep.
    """
    default_ns = onto.metadata.default_namespace
    counted = problems if problems is not None else Counter()
    given = json_types or {}
    terms: list[OboTerm] = []
    for t in onto.terms():
        try:
            synonyms = t.synonyms
            exact = [(s.description, s.type.id if s.type is not None else given.get((t.id, s.description), "")
                      ) for s in synonyms if s.scope == "EXACT"]
        except ValueError as e:  # pronto refuses a synonym whose type the file does not declare
            raise TermnormError(f"{path}: term {t.id}: {e} (pronto)") from None
        # pronto keeps synonyms, alt_ids and parents in sets: sorted, so that records are reproducible
        names, types = typed_synonyms(exact, counted)
        terms.append(OboTerm(
            id=t.id,
            name=clean_label(t.name) if t.name is not None else None,
            namespace=t.namespace or default_ns,
            synonyms=names,
            alt_ids=tuple(sorted(t.alternate_ids)),
            obsolete=bool(t.obsolete),
            synonym_types=types,
            parents=tuple(sorted({p.id for p in t.superclasses(distance=1, with_self=False)})),
        ))
    return terms
