"""OBO ontologies (``hp.obo``, ``go.obo``, ``go-basic.obo``, any OBO 1.4 file) as plain term records.

pronto is the parser. Real releases sometimes break its strict grammar (GO's 2021-12-15 go-basic
has an unquoted ``xref: EC 2.7.1.190``); then a tolerant line reader (``obo_tolerant``) that
extracts only the fields we need takes over, and a warning names the line pronto rejected. Files
that are broken beyond that (binary bytes, truncated, not OBO at all) raise ``TermnormError``
naming file and line.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

_HEAD_LINE = re.compile(rb"\[[A-Za-z]+\]$|[A-Za-z0-9_-]+:(\s|$)")


class OboFallbackWarning(UserWarning):
    """pronto rejected a file and the tolerant reader was used instead."""


@dataclass(frozen=True, slots=True)
class OboTerm:
    id: str
    name: str | None
    namespace: str | None
    synonyms: tuple[str, ...]  # EXACT synonyms only, sorted, without duplicates
    alt_ids: tuple[str, ...]  # sorted
    obsolete: bool


@dataclass
class OboResult:
    path: Path
    terms: list[OboTerm]
    data_version: str | None  # the header's data-version (e.g. "hp/releases/2025-01-16")
    parser: str  # "pronto" or "tolerant"
    warnings: list[str] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)  # e.g. other_prefix, duplicate_id

    def live(self) -> list[OboTerm]:
        """Non-obsolete terms with a name: the candidates for any split."""
        return [t for t in self.terms if not t.obsolete and t.name]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise TermnormError(f"{path}: file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise TermnormError(f"{path}: empty file, not an OBO ontology")
    with path.open("rb") as fh:
        head = fh.read(4096)
        fh.seek(size - 1)
        last = fh.read(1)
    _check_no_nul(path)  # first: binary junk is named as such, not as "not an OBO file"
    _check_looks_like_obo(path, head)
    if last != b"\n":
        # A release file always ends with a newline; a missing one means a cut-off download.
        lines = _count_lines(path)
        raise TermnormError(f"{path}:{lines}: file ends in the middle of a line (truncated download?)")
    _check_last_stanza(path, size)


def _check_no_nul(path: Path, block: int = 1 << 20) -> None:
    """No NUL byte anywhere: pronto reads one without complaint, into names and synonyms.

    A text file never holds one; it means a corrupted copy (e.g. a disk-full write padded with
    zeros). Scanning costs a few milliseconds per 30 MB (``bytes.find`` is memchr).
    """
    lines = 1
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            at = chunk.find(b"\x00")
            if at >= 0:
                lines += chunk.count(b"\n", 0, at)
                raise TermnormError(f"{path}:{lines}: binary data (NUL byte), not an OBO text file")
            lines += chunk.count(b"\n")


def _check_looks_like_obo(path: Path, head: bytes) -> None:
    """The first meaningful line must be ``tag: value`` or ``[Stanza]``.

    Checked before pronto sees the file: pronto picks a parser by content (it would read OBO-JSON
    or OWL too) and panics on some non-OBO input instead of raising.
    """
    head = head.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (Windows editors)
    for lineno, raw in enumerate(head.split(b"\n")[:-1] or [head], 1):
        line = raw.strip()
        if not line or line.startswith(b"!"):
            continue
        if _HEAD_LINE.match(line):
            return
        shown = line[:60].decode("utf-8", "replace")
        raise TermnormError(f"{path}:{lineno}: not an OBO file (expected 'tag: value', got {shown!r})")


def _check_last_stanza(path: Path, size: int, window: int = 1 << 16) -> None:
    """A download cut at a line boundary: the last [Term] stanza lacks its id or name line.

    Checked on the file's tail, so it costs the same whichever parser reads the file.
    """
    with path.open("rb") as fh:
        fh.seek(max(0, size - window))
        tail = fh.read()
    start = tail.rfind(b"\n[")
    if start < 0:
        return  # no stanza in the tail: a huge last stanza or no stanza at all (reported later)
    stanza = tail[start + 1:]
    if not stanza.startswith(b"[Term]"):
        return
    has = {tag: (b"\n" + tag + b":") in stanza for tag in (b"id", b"name")}
    if not all(has.values()):
        line = _count_lines(path) - stanza.count(b"\n")
        missing = " and ".join(t.decode() for t, ok in has.items() if not ok)
        raise TermnormError(f"{path}:{line}: last [Term] stanza has no {missing} line (truncated file?)")


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) + 1


def _read_with_pronto(path: Path, threads: int | None) -> OboResult:
    import pronto

    with warnings.catch_warnings():
        # pronto warns about things it fixes up itself (e.g. unknown synonym types); the file's
        # encoding is fixed to UTF-8 as the OBO 1.4 spec says, so no guessing warning can apply.
        warnings.simplefilter("ignore")
        onto = pronto.Ontology(str(path), import_depth=0, threads=threads, encoding="utf-8")
    return OboResult(path, pronto_terms(onto), onto.metadata.data_version, "pronto")


def pronto_terms(onto: Any, public: bool = False) -> list[OboTerm]:
    """Plain records of a ``pronto.Ontology``'s terms.

    Reads pronto's raw term records (id, name, namespace, synonyms, alternate_ids, obsolete): the
    public ``Term`` wrappers build a new object per term and per synonym, which costs more than the
    rest of this function together. The public API (same attribute names) is the fallback should
    the internals change, and what ``public=True`` uses.
    """
    default_ns = onto.metadata.default_namespace
    entities = None if public else getattr(getattr(onto, "_terms", None), "entities", None)
    records = entities.values() if isinstance(entities, dict) else onto.terms()
    terms: list[OboTerm] = []
    for d in records:
        exact = {s.description for s in d.synonyms if s.scope == "EXACT"}
        terms.append(OboTerm(
            id=d.id,
            name=d.name,
            namespace=d.namespace or default_ns,
            # pronto stores synonyms and alt_ids in sets: sort so that records are reproducible.
            synonyms=tuple(sorted(exact)),
            alt_ids=tuple(sorted(d.alternate_ids)),
            obsolete=bool(d.obsolete),
        ))
    return terms


def read_obo(path: str | Path, prefix: str | None = None, threads: int | None = None) -> OboResult:
    """All ``[Term]`` stanzas of an OBO file (``prefix`` keeps only ids ``PREFIX:...``).

    Terms are returned sorted by id; synonyms and alt_ids sorted, so that the result does not
    depend on which parser read the file.
    """
    from termnorm_eval.sources.obo_tolerant import read_obo_tolerant

    path = Path(path)
    _check_file(path)
    threads = threads or min(4, os.cpu_count() or 1)
    try:
        result = _read_with_pronto(path, threads)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as e:  # SyntaxError, UnicodeDecodeError, ... and pyo3 panics (BaseException)
        where = _pronto_location(e, path)
        try:
            result = read_obo_tolerant(path)
        except TermnormError as broken:
            # Both readers reject it: the tolerant reader's message names the broken line.
            raise TermnormError(f"{broken} (pronto: {_pronto_reason(e)})") from None
        message = (
            f"{where}: pronto rejected this file ({_pronto_reason(e)}); "
            "read it with the tolerant OBO reader instead"
        )
        result.warnings.insert(0, message)
        warnings.warn(message, OboFallbackWarning, stacklevel=2)
    if not result.terms:
        raise TermnormError(f"{path}: no [Term] stanza found, not an OBO ontology")
    if prefix is not None:
        kept = [t for t in result.terms if t.id.startswith(prefix + ":")]
        result.problems["other_prefix"] += len(result.terms) - len(kept)
        result.terms = kept
    result.terms.sort(key=lambda t: t.id)
    return result


def _pronto_location(e: BaseException, path: Path) -> str:
    if isinstance(e, SyntaxError) and e.lineno:
        return f"{path}:{e.lineno}"
    return str(path)


def _pronto_reason(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        text = (e.text or "").strip()
        return f"{e.msg}: {text!r}" if text else str(e.msg)
    return f"{type(e).__name__}: {e}"
