"""What an OBO file's term ids say about the ontology: its prefix and the shape of its local ids.

Real files mix prefixes (an ontology imports terms of others: Uberon carries CL and GO terms), so
the prefix is the one that *dominates* the ``[Term]`` ids; when none does, the user must say.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from termnorm_eval.errors import TermnormError

DOMINANT_SHARE = 2 / 3  # a prefix is inferred when at least this share of the term ids carry it
NO_PREFIX = "(no prefix)"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def id_prefix(term_id: str) -> str:
    """``CL:0000000`` -> ``CL``; an id without ``PREFIX:`` (``part_of``, a URL) -> ``(no prefix)``."""
    head, sep, local = term_id.partition(":")
    return head if sep and local and _PREFIX.fullmatch(head) and not local.startswith("//") else NO_PREFIX


def prefix_counts(ids: Iterable[str]) -> Counter[str]:
    return Counter(id_prefix(i) for i in ids)


@dataclass(frozen=True)
class PrefixChoice:
    prefix: str
    inferred: bool  # False: the user gave it
    terms: int  # term ids carrying it
    total: int  # all term ids of the file
    counts: dict[str, int]  # prefix -> term ids, most frequent first

    def describe(self) -> str:
        how = "inferred" if self.inferred else "given"
        share = 100 * self.terms / self.total if self.total else 0
        others = {p: n for p, n in self.counts.items() if p != self.prefix}
        tail = ""
        if others:
            shown = ", ".join(f"{p} {n}" for p, n in list(others.items())[:5])
            more = f", +{len(others) - 5} more" if len(others) > 5 else ""
            tail = f"; other prefixes: {shown}{more}"
        return f"prefix {self.prefix} ({how}): {self.terms} of {self.total} term ids ({share:.0f}%){tail}"


def choose_prefix(ids: Collection[str], given: str | None, path: Path | str) -> PrefixChoice:
    """The ontology's own prefix: ``given`` if set (it must occur), else the dominant one."""
    counts = prefix_counts(ids)
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    total = len(ids)
    if given is not None:
        given = given.rstrip(":")
        if not _PREFIX.fullmatch(given):
            raise TermnormError(f"--prefix {given!r}: not an identifier prefix (letters, digits, _ . -)")
        if counts.get(given, 0) == 0:
            near = [p for p in ordered if p.casefold() == given.casefold()]
            hint = f" (did you mean {near[0]}? prefixes are case-sensitive)" if near else ""
            raise TermnormError(
                f"{path}: no [Term] id has the prefix {given}{hint}; the file's prefixes: {_top(ordered)}"
            )
        return PrefixChoice(given, False, counts[given], total, ordered)
    candidates = [(p, n) for p, n in ordered.items() if p != NO_PREFIX]
    if not candidates:
        raise TermnormError(f"{path}: no [Term] id has the form PREFIX:LOCAL; pass --prefix")
    top, n = candidates[0]
    if n < DOMINANT_SHARE * total:
        raise TermnormError(
            f"{path}: no prefix dominates the term ids ({_top(ordered)}); "
            f"pass --prefix to say which one is this ontology's own"
        )
    return PrefixChoice(top, True, n, total, ordered)


def _top(ordered: dict[str, int], k: int = 5) -> str:
    items = list(ordered.items())
    shown = ", ".join(f"{p} {n}" for p, n in items[:k])
    return shown + (f", +{len(items) - k} more" if len(items) > k else "")


def infer_id_local(locals_: Collection[str]) -> str:
    """A regex for the local parts: ``\\d{7}`` when all are 7 digits, ``\\d+``, ``C\\d+``, or a catch-all.

    Scoring finds identifiers in free text with it, so it is as tight as the data allow.
    """
    if not locals_:
        return r"\d+"
    if all(s.isdigit() and s.isascii() for s in locals_):
        lengths = {len(s) for s in locals_}
        return rf"\d{{{lengths.pop()}}}" if len(lengths) == 1 else r"\d+"
    heads = {m.group(1) if (m := re.fullmatch(r"([A-Za-z]+)(\d+)", s)) else None for s in locals_}
    if len(heads) == 1 and (head := next(iter(heads))) is not None:
        return rf"{re.escape(head)}\d+"
    return r"[A-Za-z0-9_.]+"


def example_id(prefix: str, locals_: Collection[str], known: Collection[str]) -> str:
    """A well-formed id for prompts that is *not* a term of the ontology (no answer leaks)."""
    shapes = Counter(re.sub(r"\d", "0", s) for s in locals_)
    shape = shapes.most_common(1)[0][0] if shapes else "0000000"
    for digits in ("1234567890", "9876543210", "2468013579", "1357924680"):
        pool = iter(digits * 4)
        local = "".join(next(pool) if c == "0" else c for c in shape)
        candidate = f"{prefix}:{local}"
        if candidate not in known:
            return candidate
    return f"{prefix}:{shape}"
