"""Popularity tables: ``id<TAB>count`` files (``termnorm data popularity`` writes them; any tool may).

Format: one identifier and one count (ASCII digits, ``0..text.MAX_COUNT``) per line, tab-separated;
blank lines and lines starting with ``#`` are skipped. A duplicate identifier, a count that is not a
whole number in that range, or a line that does not have exactly two columns is an error naming the
file and line.
Identifiers the caller does not know are counted and reported, not fatal (a table made for a
newer release may name terms this one lacks).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import count_error, parse_count


@dataclass(frozen=True)
class PopularityTable:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)  # known identifiers only
    unknown: int = 0  # rows naming identifiers the caller does not know


def read_popularity_table(path: str | Path, known: Container[str] | None = None) -> PopularityTable:
    """Read ``path``; with ``known``, rows of other identifiers are counted in ``unknown`` and left out."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TermnormError(f"{path}: popularity table not found") from None
    except OSError as e:
        raise TermnormError(f"{path}: cannot read the popularity table ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        at = raw[: e.start].count(b"\n") + 1
        raise TermnormError(f"{path}:{at}: not UTF-8 text (a popularity table is id<TAB>count)") from None
    counts: dict[str, int] = {}
    seen: dict[str, int] = {}
    unknown = 0
    for n, row in enumerate(text.splitlines(), 1):
        if not row.strip() or row.startswith("#"):
            continue
        cols = row.split("\t")
        if len(cols) != 2:
            raise TermnormError(f"{path}:{n}: {len(cols)} tab-separated columns, expected 2 (id<TAB>count)")
        ident, value = cols[0].strip(), cols[1].strip()
        if not ident:
            raise TermnormError(f"{path}:{n}: empty identifier")
        count = parse_count(value)
        if count is None:
            raise TermnormError(f"{path}:{n}: {count_error(value, ident[:40])}")
        if ident in seen:
            raise TermnormError(f"{path}:{n}: {ident[:40]} given twice (first on line {seen[ident]})")
        seen[ident] = n
        if known is not None and ident not in known:
            unknown += 1
            continue
        counts[ident] = count
    return PopularityTable(path=path, counts=counts, unknown=unknown)


def write_popularity_table(path: str | Path, counts: dict[str, int], header: str = "") -> Path:
    """Write ``counts`` sorted by identifier, atomically; ``header`` lines become ``#`` comments."""
    from termnorm_eval import atomic

    lines = [f"# {h}" for h in header.splitlines()] + [f"{i}\t{c}" for i, c in sorted(counts.items())]
    return atomic.write_file(path, "\n".join(lines) + "\n")
