"""An ontology file in any format add-ontology reads, as the term records of ``sources.obo``.

OBO goes to the fast reader in ``sources.obo``. OWL in RDF/XML and OBO Graphs JSON, which that
reader does not handle (many ontologies publish OWL first), are read by pronto and mapped to the
same records. The format is told by the file's content, never by its name alone: a release saved
as ``.owl`` may hold OBO. Formats neither reads (OWL/XML, OWL functional or Manchester syntax,
Turtle) are refused in one line that says what the file is.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.obo import OboResult, OboTerm, check_no_nul, finish, read_bytes, read_obo

FORMATS = {"obo": "OBO", "owl": "OWL (RDF/XML)", "obojson": "OBO Graphs JSON"}
HEAD = 1 << 16  # bytes looked at to tell the format
# What may stand before an XML file's root element; each form can match in one way only, so that
# no head of a file makes the match backtrack (a DOCTYPE has at most one [internal subset]).
_XML_PROLOG = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[[^\]]*\][^\[>]*)?>)", re.S)
_XML_ROOT = re.compile(rb"\s*<([A-Za-z_][\w.:-]*)")
_UNSUPPORTED = (  # (start of the file, what it is)
    (re.compile(rb"(?:Prefix|Ontology)\("), "OWL functional syntax"),
    (re.compile(rb"(?:Prefix:\s*[\w.-]*:\s*<|Ontology:\s*<)"), "OWL Manchester syntax"),
    (re.compile(rb"(?:@prefix|@base|PREFIX\s|BASE\s)"), "Turtle (RDF)"),
)
_AT_LINE = re.compile(r"^(.*?),? at line (\d+) column \d+$", re.S)  # serde's error suffix


def _unsupported(path: Path, what: str) -> TermnormError:
    return TermnormError(f"{path}: {what} is not supported; give the ontology as OBO, OWL in RDF/XML or "
                         "OBO Graphs JSON (e.g. `robot convert --input FILE --output FILE.owl`)")


def detect_format(path: Path) -> str:
    """``obo``, ``owl`` (RDF/XML) or ``obojson``, from the first bytes of ``path``."""
    if not path.is_file():
        return "obo"  # the OBO reader says what is wrong with it
    with path.open("rb") as fh:
        head = fh.read(HEAD).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"{"):
        return "obojson"
    if head.startswith(b"<"):
        pos = 0
        while (m := _XML_PROLOG.match(head, pos)) and m.end() > pos:
            pos = m.end()
        root = _XML_ROOT.match(head, pos)
        name = root[1].decode("ascii") if root else ""
        if name.rpartition(":")[2] == "RDF":
            return "owl"
        if name.rpartition(":")[2] == "Ontology":
            raise _unsupported(path, "OWL/XML")
        raise _unsupported(path, f"XML other than RDF/XML (root element <{name or '?'}>)")
    for start, what in _UNSUPPORTED:
        if start.match(head):
            raise _unsupported(path, what)
    return "obo"


def read_ontology(path: str | Path, prefix: str | None = None) -> OboResult:
    """The terms of an OBO, OWL (RDF/XML) or OBO Graphs JSON file, sorted by id (see ``read_obo``)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "obo":
        return read_obo(path, prefix)
    return finish(read_with_pronto(path, fmt), prefix)


def read_with_pronto(path: Path, fmt: str) -> OboResult:
    """An OWL (RDF/XML) or OBO Graphs JSON file through pronto; broken files are one-line errors."""
    import pronto  # here: 0.2 s of imports that OBO files and the CLI's start-up never need

    data = read_bytes(path)
    check_no_nul(path, data, FORMATS[fmt])
    if fmt == "obojson":
        _check_obo_graphs(path, data)
    del data
    try:
        with warnings.catch_warnings():
            # pronto warns about what it fixes up itself (e.g. unknown synonym types)
            warnings.simplefilter("ignore")
            onto = pronto.Ontology(str(path), import_depth=0, encoding="utf-8")
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
    terms = pronto_terms(onto, path)
    if not terms:
        what = "owl:Class" if fmt == "owl" else "CLASS node"
        raise TermnormError(f"{path}: no {what} found, not an ontology of terms")
    return OboResult(path, terms, onto.metadata.data_version, "pronto")


def _check_obo_graphs(path: Path, data: bytes) -> None:
    """Checked before pronto sees it: fastobo panics (a Rust backtrace on stderr) on a JSON file
    without graphs instead of raising."""
    try:
        doc = json.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except json.JSONDecodeError as e:
        raise TermnormError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TermnormError(f"{path}:{line}: garbled bytes, not UTF-8 text ({e.reason})") from None
    except RecursionError:
        raise TermnormError(f"{path}: JSON nested too deeply, not an OBO Graphs file") from None
    graphs = doc.get("graphs") if isinstance(doc, dict) else None
    if not isinstance(graphs, list) or not graphs or not isinstance(graphs[0], dict):
        raise TermnormError(f"{path}: JSON without a 'graphs' list, not an OBO Graphs JSON file")


def pronto_terms(onto: Any, path: Path | str) -> list[OboTerm]:
    """Plain records of a ``pronto.Ontology``'s terms, through pronto's public API."""
    default_ns = onto.metadata.default_namespace
    terms: list[OboTerm] = []
    for t in onto.terms():
        try:
            synonyms = t.synonyms
        except ValueError as e:  # pronto refuses a synonym whose type the file does not declare
            raise TermnormError(f"{path}: term {t.id}: {e} (pronto)") from None
        terms.append(OboTerm(
            id=t.id,
            name=t.name,
            namespace=t.namespace or default_ns,
            # pronto keeps synonyms and alt_ids in sets: sorted, so that records are reproducible
            synonyms=tuple(sorted({s.description for s in synonyms if s.scope == "EXACT"})),
            alt_ids=tuple(sorted(t.alternate_ids)),
            obsolete=bool(t.obsolete),
        ))
    return terms
