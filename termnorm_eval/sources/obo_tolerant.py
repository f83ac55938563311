"""A tolerant OBO line reader: the fallback when pronto rejects a real release.

It reads only what the benchmark needs from ``[Term]`` stanzas (id, name, namespace, EXACT
synonyms, alt_ids, is_obsolete) and does not interpret any other tag, so a malformed ``xref`` or
``def`` cannot stop it. It is strict about the file's *shape*: every line must be blank, a
``!`` comment, a ``[Stanza]`` header or ``tag: value``; anything else (binary junk, a cut-off
download, a file that is not OBO) raises ``TermnormError`` naming file and line.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.obo import OboResult, OboTerm

_STANZA = re.compile(r"\[([A-Za-z]+)\]$")
_TAG = re.compile(r"([A-Za-z0-9_-]+):(?:\s(.*)|$)")


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise TermnormError(f"{path}:{line}: binary data (NUL byte), not an OBO text file")
    try:
        return data.decode("utf-8-sig")  # -sig: drop a byte-order mark if there is one
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TermnormError(f"{path}:{line}: garbled bytes, not UTF-8 text ({e.reason})") from None


def _quoted(value: str, where: str) -> tuple[str, str]:
    """The leading quoted string of ``value`` (OBO escapes resolved) and the rest of the line."""
    if not value.startswith('"'):
        raise TermnormError(f"{where}: synonym text must be a quoted string")
    out: list[str] = []
    i = 1
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if c == '"':
            return "".join(out), value[i + 1:]
        out.append(c)
        i += 1
    raise TermnormError(f"{where}: unterminated quoted synonym")


def _first_token(value: str) -> str:
    """An identifier value without trailing modifiers or ``! comment``."""
    return value.split("!", 1)[0].split("{", 1)[0].strip().split(" ", 1)[0]


class _Stanza:
    __slots__ = ("alt_ids", "id", "line", "name", "namespace", "obsolete", "synonyms")

    def __init__(self, line: int) -> None:
        self.line = line
        self.id: str | None = None
        self.name: str | None = None
        self.namespace: str | None = None
        self.synonyms: list[str] = []
        self.alt_ids: list[str] = []
        self.obsolete = False


def read_obo_tolerant(path: str | Path) -> OboResult:
    path = Path(path)
    text = _decode(path)
    data_version: str | None = None
    default_ns: str | None = None
    problems: Counter[str] = Counter()
    stanzas: list[_Stanza] = []
    current: _Stanza | None = None
    in_header = True
    seen_content = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        where = f"{path}:{lineno}"
        m = _STANZA.match(line)
        if m:
            in_header = False
            seen_content = True
            current = _Stanza(lineno) if m.group(1) == "Term" else None
            if current is not None:
                stanzas.append(current)
            continue
        tm = _TAG.match(line)
        if tm is None:
            what = "not an OBO file" if not seen_content else "line is neither [Stanza] nor 'tag: value'"
            raise TermnormError(f"{where}: {what}: {line[:60]!r}")
        seen_content = True
        tag, value = tm.group(1), (tm.group(2) or "").strip()
        if in_header:
            if tag == "data-version":
                data_version = value
            elif tag == "default-namespace":
                default_ns = value
            continue
        if current is None:  # [Typedef], [Instance]: nothing we need
            continue
        if tag == "id":
            if current.id is not None:
                raise TermnormError(f"{where}: second id in the [Term] stanza of line {current.line}")
            current.id = _first_token(value)
        elif tag == "name":
            current.name = value
        elif tag == "namespace":
            current.namespace = value
        elif tag == "alt_id":
            current.alt_ids.append(_first_token(value))
        elif tag == "is_obsolete":
            current.obsolete = value.split("!", 1)[0].strip() == "true"
        elif tag == "synonym":
            text_, rest = _quoted(value, where)
            if rest.split()[:1] == ["EXACT"]:
                current.synonyms.append(text_)
    if not stanzas:
        raise TermnormError(f"{path}: no [Term] stanza found, not an OBO ontology")
    for st in stanzas:
        if not st.id:
            raise TermnormError(f"{path}:{st.line}: [Term] stanza without an id")
    last = stanzas[-1]
    if last.name is None and any(st.name for st in stanzas):
        raise TermnormError(f"{path}:{last.line}: last [Term] stanza has no name (truncated file?)")
    merged: dict[str, OboTerm] = {}
    for st in stanzas:
        term = OboTerm(
            id=st.id or "",
            name=st.name,
            namespace=st.namespace or default_ns,
            synonyms=tuple(sorted(dict.fromkeys(st.synonyms))),
            alt_ids=tuple(sorted(dict.fromkeys(st.alt_ids))),
            obsolete=st.obsolete,
        )
        prev = merged.get(term.id)
        if prev is not None:  # OBO allows a term to be split over stanzas: merge like pronto
            problems["duplicate_id"] += 1
            term = OboTerm(
                id=term.id,
                name=prev.name or term.name,
                namespace=prev.namespace or term.namespace,
                synonyms=tuple(sorted(set(prev.synonyms) | set(term.synonyms))),
                alt_ids=tuple(sorted(set(prev.alt_ids) | set(term.alt_ids))),
                obsolete=prev.obsolete or term.obsolete,
            )
        merged[term.id] = term
    return OboResult(path, list(merged.values()), data_version, "tolerant", problems=problems)
