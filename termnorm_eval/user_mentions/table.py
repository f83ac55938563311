"""Reading a user's mention table: ``mention<TAB>identifier`` lines, UTF-8, bounded.

What the file's shape decides is decided here (the release decides the rest, ``resolve``): a line
that is not two tab-separated fields, an empty mention or identifier, a mention longer than
``MAX_MENTION``, a file larger than ``MAX_BYTES`` or with more than ``MAX_ROWS`` rows, text that is not
UTF-8: each is one error naming the file and line, nothing written. Skipped and counted instead: blank
lines and a header line ``mention<TAB>identifier`` (or ``mention<TAB>id``) first. A mention is read as
one line of plain text (``text.clean_label``: runs of spaces become one, control characters go); the
rows it changed are counted. No quoting: the fields are taken as written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import clean_label

MAX_BYTES = 64 * 2**20  # far above any annotated corpus's mention list (MedMentions: about 10 MB)
MAX_ROWS = 200_000  # each row is one document of a task
MAX_MENTION = 1000  # characters; the longest HPO or GO label is about 250
HEADERS = ({"mention", "identifier"}, {"mention", "id"})  # a first line naming the columns (any case)


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line number in the file
    mention: str  # as one line of plain text
    identifier: str  # as written, surrounding spaces removed


@dataclass
class Table:
    path: Path
    rows: list[Row]
    notes: Counter[str] = field(default_factory=Counter)  # header, blank_lines, mention_cleaned


def show(text: str, limit: int = 40) -> str:
    """A field quoted in a one-line message (repr: control characters and quotes stay visible)."""
    return repr(text[:limit]) + (f"... ({len(text)} characters)" if len(text) > limit else "")


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is no part of the first mention
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TermnormError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the table "
                            "as UTF-8") from None


def read_table(path: str | Path) -> Table:
    """The rows of a mention table (see the module text for what is refused and what is counted)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise TermnormError(f"{p}: cannot read the mention table ({e.strerror})") from None
    if not p.is_file():
        raise TermnormError(f"{p}: not a file (give the mention table, mention<TAB>identifier per line)")
    if size > MAX_BYTES:
        raise TermnormError(f"{p}: {size / 2**20:.1f} MiB; a mention table may hold at most "
                            f"{MAX_BYTES // 2**20} MiB (split it into several tables)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TermnormError(f"{p}: cannot read the mention table ({e.strerror})") from None
    table = Table(p, [])
    lines = _decode(p, data).split("\n")  # not splitlines: U+2028, U+0085, ... are no line ends here
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line
    for lineno, raw in enumerate(lines, 1):
        line = raw.removesuffix("\r")
        if not line.strip():
            table.notes["blank_lines"] += 1
            continue
        cells = line.split("\t")
        if len(cells) != 2:
            what = "no tab" if len(cells) == 1 else f"{len(cells)} tab-separated fields"
            raise TermnormError(f"{p}:{lineno}: {what}; each line is MENTION<TAB>IDENTIFIER (two fields, "
                                "no tab inside a mention)")
        if not table.rows and not table.notes["header"] and {c.strip().lower() for c in cells} in HEADERS:
            table.notes["header"] += 1
            continue
        mention, identifier = clean_label(cells[0]), cells[1].strip()
        if not mention:
            raise TermnormError(f"{p}:{lineno}: empty mention (identifier {show(identifier)})")
        if not identifier:
            raise TermnormError(f"{p}:{lineno}: empty identifier (mention {show(mention)})")
        if len(mention) > MAX_MENTION:
            raise TermnormError(f"{p}:{lineno}: mention of {len(mention)} characters; at most {MAX_MENTION} "
                                f"(a mention is the words of one concept: {show(mention)})")
        if mention != cells[0].strip():
            table.notes["mention_cleaned"] += 1
        if len(table.rows) == MAX_ROWS:
            raise TermnormError(f"{p}:{lineno}: more than {MAX_ROWS} rows; split the table into several")
        table.rows.append(Row(lineno, mention, identifier))
    if not table.rows:
        raise TermnormError(f"{p}: no mention<TAB>identifier row (only "
                            + ("a header and " if table.notes["header"] else "") + "blank lines)"
                            if lines else f"{p}: empty file (expected mention<TAB>identifier rows)")
    return table
