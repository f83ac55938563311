"""OBO ontologies (``hp.obo``, ``go.obo``, ``go-basic.obo``, any OBO 1.4 file) as plain term records.

A small tolerant reader: it takes only what the benchmark needs from ``[Term]`` stanzas (id,
name, namespace, EXACT synonyms with their type, alt_ids, is_a parents, is_obsolete) and the
header's ``data-version``, ``default-namespace`` and ``synonymtypedef`` lines, and interprets no
other tag, so a malformed ``xref`` or ``def`` cannot stop it (GO's 2021-12-15 go-basic has an unquoted
``xref: EC 2.7.1.190`` that pronto's strict grammar rejects). On the real releases its records
equal pronto's (tests/test_sources_obo.py cross-checks them) and it is 7 to 14 times faster
(benchmarks/bench_build.py prints both); pronto stays the reader of OWL and OBO Graphs JSON
(``sources.ontology_file``). It is strict about the file's *shape*: every line must be blank, a
``!`` comment, a ``[Stanza]`` header or ``tag: value``; anything else (binary bytes, a cut-off
download, a file that is not OBO) raises ``TermnormError`` naming file and line. Names and
synonyms, ``\n`` and ``\t`` escapes included, are made one line of plain text (``text.clean_label``).

Synonym types (``synonym: "text" EXACT TYPE [xrefs]``; HPO marks lay terms ``layperson``): an EXACT
synonym without a type is typed ``""``. A type that no ``synonymtypedef`` declares is kept as written
(it is still the curator's word: dropping it could turn an ``obsolete_synonym`` into an ordinary one)
and counted (``problems["undeclared_synonym_types"]``, one warning naming the file and the first
line); pronto refuses such a file instead. A form given twice with different types (two lines, or
a term split over stanzas) keeps one: ``obsolete_synonym`` first, then any type over none, then the
smallest name (counted as ``synonym_type_conflicts``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import clean_label

# The first meaningful line of an OBO file: a header tag or a stanza.
_HEAD_LINE = re.compile(rb"\[[A-Za-z]+\]$|[A-Za-z0-9_-]+:(\s|$)")
# The lines the records need, and the stanza headers; each match starts at the "\n" before its line.
_WANTED = re.compile(
    r"\n[ \t]*(?:\[([A-Za-z]+)\][ \t\r]*(?=\n)"
    r"|(id|name|namespace|alt_id|is_a|is_obsolete|synonym|synonymtypedef|data-version|default-namespace)"
    r":(?=\s)([^\n]*))"
)
# A line that is not blank, a comment, a stanza header or "tag: value".
_BAD_LINE = re.compile(r"\n(?![ \t\r]*(?:\n|\Z|!|\[[A-Za-z]+\][ \t\r]*\n|[A-Za-z0-9_-]+:\s))")
# quoted text, the scope (EXACT, ...), then the type if any: a name, not the "[" of the xref list
# (the quoted text as an unrolled loop: one C-speed run per stretch without escapes, 4x faster)
_SYNONYM = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"\s*(\S*)(?:[ \t]+([^\s\[{!]+))?')
_PARENT = re.compile(r"[^\s!{]+")  # the id of an is_a value: "GO:0008150 ! biological_process"
_TYPEDEF = re.compile(r'([^\s"!{]+)(?:\s+"((?:[^"\\]|\\.)*)")?')  # synonymtypedef: ID "description"
OBSOLETE_SYNONYM = "obsolete_synonym"
_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class OboTerm:
    id: str
    name: str | None
    namespace: str | None
    synonyms: tuple[str, ...]  # EXACT synonyms only, sorted, without duplicates
    alt_ids: tuple[str, ...]  # sorted
    obsolete: bool
    synonym_types: tuple[str, ...]  # the type of each of ``synonyms`` (same order), "" when untyped
    parents: tuple[str, ...]  # is_a parents, sorted, without duplicates

    def types(self) -> dict[str, str]:
        """Each exact synonym -> its type (``""``: untyped)."""
        return dict(zip(self.synonyms, self.synonym_types, strict=True))


@dataclass
class OboResult:
    path: Path
    terms: list[OboTerm]
    data_version: str | None  # the header's data-version (e.g. "hp/releases/2025-01-16")
    parser: str  # "tolerant" (this reader) or "pronto" (OWL and OBO Graphs JSON files)
    warnings: list[str] = field(default_factory=list)
    synonym_typedefs: dict[str, str] = field(default_factory=dict)  # declared type -> its description
    problems: Counter[str] = field(default_factory=Counter)  # e.g. other_prefix, duplicate_id

    def live(self) -> list[OboTerm]:
        """Non-obsolete terms with a name: the candidates for any split."""
        return [t for t in self.terms if not t.obsolete and t.name]


def finish(result: OboResult, prefix: str | None) -> OboResult:
    """The ``prefix`` filter (counting what it leaves out) and the id order every reader returns."""
    if not result.terms:
        raise TermnormError(f"{result.path}: no [Term] stanza found, not an OBO ontology")
    if prefix is not None:
        kept = [t for t in result.terms if t.id.startswith(prefix + ":")]
        result.problems["other_prefix"] += len(result.terms) - len(kept)
        result.terms = kept
    result.terms.sort(key=lambda t: t.id)
    return result


def read_obo(path: str | Path, prefix: str | None = None) -> OboResult:
    """All ``[Term]`` stanzas of an OBO file (``prefix`` keeps only ids ``PREFIX:...``).

    Terms are returned sorted by id; synonyms and alt_ids sorted, without duplicates.
    """
    path = Path(path)
    return finish(_parse(path, _decode(path, _checked_bytes(path))), prefix)


def read_bytes(path: Path) -> bytes:
    """The file's bytes; a missing, non-regular or empty file is a one-line error."""
    if not path.exists():
        raise TermnormError(f"{path}: file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: not a regular file")
    data = path.read_bytes()
    if not data:
        raise TermnormError(f"{path}: empty file, not an OBO ontology")
    return data


def check_no_nul(path: Path, data: bytes, what: str = "OBO") -> None:
    """No NUL byte anywhere: a text file never holds one, it means a corrupted copy (e.g. a
    disk-full write padded with zeros), and readers take it into names without complaint.
    ``bytes.find`` is memchr: a few milliseconds per 30 MB.
    """
    at = data.find(b"\x00")
    if at >= 0:
        raise TermnormError(f"{path}:{line_at(data, at)}: binary data (NUL byte), not an {what} text file")


def line_at(data: bytes, at: int) -> int:
    """The number of the line that holds byte offset ``at``."""
    return data.count(b"\n", 0, at) + 1


def _checked_bytes(path: Path) -> bytes:
    data = read_bytes(path)
    check_no_nul(path, data)  # first: binary junk is named as such, not as "not an OBO file"
    _check_looks_like_obo(path, data[:4096])
    if not data.endswith(b"\n"):
        # A release file always ends with a newline; a missing one means a cut-off download.
        raise TermnormError(f"{path}:{line_at(data, len(data))}: file ends in the middle of a line "
                            "(truncated download?)")
    _check_last_stanza(path, data)
    return data


def _check_looks_like_obo(path: Path, head: bytes) -> None:
    """The first meaningful line must be ``tag: value`` or ``[Stanza]``."""
    head = head.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (Windows editors)
    for lineno, raw in enumerate(head.split(b"\n")[:-1] or [head], 1):
        line = raw.strip()
        if not line or line.startswith(b"!"):
            continue
        if _HEAD_LINE.match(line):
            return
        shown = line[:60].decode("utf-8", "replace")
        raise TermnormError(f"{path}:{lineno}: not an OBO file (expected 'tag: value', got {shown!r})")


def _check_last_stanza(path: Path, data: bytes, window: int = 1 << 16) -> None:
    """A download cut at a line boundary: the last [Term] stanza lacks its id or name line."""
    tail = data[-window:]
    start = tail.rfind(b"\n[")
    if start < 0:
        return  # no stanza in the tail: a huge last stanza or no stanza at all (reported later)
    stanza = tail[start + 1:]
    if not stanza.startswith(b"[Term]"):
        return
    has = {tag: (b"\n" + tag + b":") in stanza for tag in (b"id", b"name")}
    if not all(has.values()):
        line = line_at(data, len(data)) - stanza.count(b"\n")
        missing = " and ".join(t.decode() for t, ok in has.items() if not ok)
        raise TermnormError(f"{path}:{line}: last [Term] stanza has no {missing} line (truncated file?)")


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # -sig: drop a byte-order mark if there is one
    except UnicodeDecodeError as e:
        line = line_at(data, e.start)
        raise TermnormError(f"{path}:{line}: garbled bytes, not UTF-8 text ({e.reason})") from None


def _first_token(value: str) -> str:
    """An identifier value without trailing modifiers or ``! comment``."""
    return value.split("!", 1)[0].split("{", 1)[0].strip().split(" ", 1)[0]


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPED.get(m[1], m[1]), text) if "\\" in text else text


def _unquoted(value: str) -> str:
    """An unquoted value as OBO 1.4 (and pronto) read it: an unescaped ``!`` starts a comment, a
    trailing ``{...}`` holds qualifiers, a backslash escapes the next character. Only surrounding
    whitespace differs: it is stripped here, pronto keeps it. One pass: linear in any line."""
    if "!" not in value and "{" not in value and "\\" not in value:
        return value  # nearly every value: nothing to do
    out: list[str] = []
    brace = close = -1  # where in ``out`` the last unescaped "{" and the last "}" after it are
    closes = 0  # unescaped "}" since that "{"
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            out.append(_ESCAPED.get(value[i + 1], value[i + 1]))
            i += 2
            continue
        if c == "!":
            break
        if c == "{":
            brace, closes = len(out), 0
        elif c == "}" and brace >= 0:
            close, closes = len(out), closes + 1
        out.append(c)
        i += 1
    text = "".join(out)
    if brace >= 0 and closes == 1 and not text[close + 1:].strip():
        text = text[:brace]  # "{...}" at the end: qualifiers, not part of the value
    return text.strip()


class _Stanza:
    __slots__ = ("alt_ids", "at", "id", "name", "namespace", "obsolete", "parents", "synonyms")

    def __init__(self, at: int) -> None:
        self.at = at  # offset of the "\n" before its header; the line number is counted on error only
        self.id: str | None = None
        self.name: str | None = None
        self.namespace: str | None = None
        self.synonyms: list[tuple[str, str]] = []  # (text, type)
        self.alt_ids: list[str] = []
        self.parents: list[str] = []
        self.obsolete: bool | None = None  # None: no is_obsolete line

    def merge(self, later: _Stanza) -> None:
        """A term split over stanzas, as pronto merges it: a later value wins, lists add up."""
        self.name = later.name if later.name is not None else self.name
        self.namespace = later.namespace if later.namespace is not None else self.namespace
        self.obsolete = later.obsolete if later.obsolete is not None else self.obsolete
        self.synonyms += later.synonyms
        self.alt_ids += later.alt_ids
        self.parents += later.parents


def _stronger_type(a: str, b: str) -> str:
    """The type a form given with types ``a`` and ``b`` keeps: obsolete, then typed, then the smaller."""
    if OBSOLETE_SYNONYM in (a, b):
        return OBSOLETE_SYNONYM
    return min(a, b) if a and b else a or b


def typed_synonyms(pairs: list[tuple[str, str]], problems: Counter[str]
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sorted distinct non-empty synonyms (one line of plain text each) and their types, from
    (text, type) pairs; the one rule of every reader."""
    forms: dict[str, str] = {}
    for text, type_ in pairs:
        had = forms.setdefault(form := clean_label(text), type_)
        if had != type_ and form:
            problems["synonym_type_conflicts"] += 1
            forms[form] = _stronger_type(had, type_)
    forms.pop("", None)
    names = sorted(forms)
    return tuple(names), tuple(map(forms.__getitem__, names))


def _parse(path: Path, body: str) -> OboResult:
    text = "\n" + body  # every line, the first one too, starts after a "\n"

    def line_of(at: int) -> int:  # ``at``: the offset of the "\n" before the line
        return text.count("\n", 0, at + 1)

    bad = _BAD_LINE.search(text)
    if bad is not None:
        line = text[bad.start() + 1:text.find("\n", bad.start() + 1)].strip()
        raise TermnormError(f"{path}:{line_of(bad.start())}: line is neither [Stanza] nor 'tag: value': "
                            f"{line[:60]!r}")
    data_version: str | None = None
    default_ns: str | None = None
    typedefs: dict[str, str] = {}
    undeclared: Counter[str] = Counter()  # type -> EXACT synonyms typed so
    first_undeclared = -1  # offset of the first such line
    stanzas: list[_Stanza] = []
    current: _Stanza | None = None
    in_header = True
    for m in _WANTED.finditer(text):
        kind, tag, value = m.groups()
        if kind is not None:
            in_header = False
            current = _Stanza(m.start()) if kind == "Term" else None
            if current is not None:
                stanzas.append(current)
            continue
        value = value.strip()
        if current is None:
            if in_header:
                if tag == "data-version":
                    data_version = _unquoted(value)
                elif tag == "default-namespace":
                    default_ns = _unquoted(value)
                elif tag == "synonymtypedef" and (td := _TYPEDEF.match(value)):
                    typedefs[td[1]] = _unescape(td[2] or "")
            continue  # [Typedef], [Instance]: nothing we need
        if tag == "synonym":  # the most frequent tag first
            syn = _SYNONYM.match(value)
            if syn is None:
                problem = "unterminated quoted synonym" if value.startswith('"') else \
                    "synonym text must be a quoted string"
                raise TermnormError(f"{path}:{line_of(m.start())}: {problem}")
            if syn[2] == "EXACT":
                type_ = syn[3] or ""
                if type_ and type_ not in typedefs:  # the header, with every synonymtypedef, came first
                    undeclared[type_] += 1
                    if first_undeclared < 0:
                        first_undeclared = m.start()
                current.synonyms.append((_unescape(syn[1]), type_))
        elif tag == "is_a":  # the second most frequent
            if parent := _PARENT.match(value):
                current.parents.append(parent[0])
        elif tag == "id":
            if current.id is not None:
                raise TermnormError(f"{path}:{line_of(m.start())}: second id in the [Term] stanza of line "
                                    f"{line_of(current.at)}")
            current.id = _first_token(value)
        elif tag == "name":
            current.name = _unquoted(value)
        elif tag == "namespace":
            current.namespace = _unquoted(value)
        elif tag == "alt_id":
            current.alt_ids.append(_first_token(value))
        elif tag == "is_obsolete":
            current.obsolete = _unquoted(value) == "true"
    problems: Counter[str] = Counter()
    merged: dict[str, _Stanza] = {}
    for st in stanzas:
        if not st.id:
            raise TermnormError(f"{path}:{line_of(st.at)}: [Term] stanza without an id")
        first = merged.setdefault(st.id, st)
        if first is not st:  # OBO allows a term to be split over stanzas
            problems["duplicate_id"] += 1
            first.merge(st)
    terms = []
    for st in merged.values():
        synonyms, types = typed_synonyms(st.synonyms, problems) if st.synonyms else ((), ())
        terms.append(OboTerm(
            id=st.id or "",
            name=clean_label(st.name) if st.name is not None else None,
            namespace=st.namespace or default_ns,
            synonyms=synonyms,
            alt_ids=tuple(sorted(set(st.alt_ids))),
            obsolete=bool(st.obsolete),
            synonym_types=types,
            parents=tuple(sorted(set(st.parents))),
        ))
    warnings = []
    if undeclared:
        problems["undeclared_synonym_types"] = total = sum(undeclared.values())
        names = ", ".join(repr(t[:40]) for t in sorted(undeclared)[:5]) + (", ..." * (len(undeclared) > 5))
        warnings.append(f"{path}:{line_of(first_undeclared)}: {total} EXACT synonym(s) of a type no "
                        f"synonymtypedef declares ({names}); kept, typed as written")
    return OboResult(path, terms, data_version, "tolerant", warnings=warnings, problems=problems,
                     synonym_typedefs=typedefs)
