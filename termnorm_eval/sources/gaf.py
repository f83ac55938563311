"""GO annotation files (GAF 2.x, e.g. ``goa_human.gaf.gz``): popularity counts and protein names.

Column meanings (1-based, GAF 2.x): 2 DB object id (UniProt accession), 3 symbol, 4 qualifier,
5 GO id, 6 references (``PMID:...|GO_REF:...``), 10 DB object name (the UniProt protein name).
Rows whose qualifier contains ``NOT`` say the gene does *not* have the function: they are skipped.
Besides genes per term, the PMIDs per term and per gene, the GO terms per gene and the number of
genes each PMID is cited for (a screen cites thousands: ``splits.candidates`` leaves such papers out
of gene popularity) are kept.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import clean_label

GAF_COLUMNS = range(15, 18)  # GAF 1.0: 15, 2.0: 16, 2.1/2.2: 17


@dataclass
class GafAnnotations:
    """What the benchmark needs from a GAF, keyed so that the build can join on symbol or accession."""

    path: Path
    data_version: str | None  # header "!date-generated:" (GAF 2.2) or "!Generated:" (GOA)
    term_genes: dict[str, set[str]] = field(default_factory=dict)  # GO id -> symbols
    term_pmids: dict[str, set[str]] = field(default_factory=dict)  # GO id -> PMIDs of its annotations
    symbol_pmids: dict[str, set[str]] = field(default_factory=dict)  # symbol -> PMIDs
    accession_pmids: dict[str, set[str]] = field(default_factory=dict)  # UniProt acc -> PMIDs
    symbol_names: dict[str, Counter[str]] = field(default_factory=dict)  # symbol -> protein names
    accession_names: dict[str, Counter[str]] = field(default_factory=dict)
    accession_symbols: dict[str, str] = field(default_factory=dict)
    symbol_terms: dict[str, set[str]] = field(default_factory=dict)  # symbol -> GO ids annotated
    accession_terms: dict[str, set[str]] = field(default_factory=dict)
    pmid_genes: dict[str, int] = field(default_factory=dict)  # PMID -> distinct symbols it is cited for
    rows: int = 0
    not_rows: int = 0  # skipped: NOT qualifier


def open_text(path: Path) -> io.TextIOBase:
    """Plain or gzip-compressed text, chosen by the file's magic bytes (not its name)."""
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _require(path: Path) -> None:
    if not path.exists():
        raise TermnormError(f"{path}: file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: not a regular file")


def _label_counts(names: dict[str, int]) -> Counter[str]:
    """Rows per protein name, the names made plain one-line text (``text.clean_label``)."""
    counts: Counter[str] = Counter()
    for name, rows in names.items():
        if label := clean_label(name):
            counts[label] += rows
    return counts


def read_whole(path: Path) -> bytes | None:
    """The whole (decompressed) content of a GAF file, or None when the gzip stream is broken: the
    file is then read by ``read_gaf`` itself, whose error names the line. The build calls this on
    another thread while it parses the OBO files (zlib lets it), and hands the bytes to ``read_gaf``."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error):
        return None


def read_gaf(path: str | Path, data: bytes | None = None) -> GafAnnotations:
    """The annotations of a GAF file; ``data``: its decompressed content when read already
    (``read_whole``), decoded as the file would be (an encoding error names its line the same way)."""
    path = Path(path)
    _require(path)
    out = GafAnnotations(path, None)
    term_genes: defaultdict[str, set[str]] = defaultdict(set)
    term_pmids: defaultdict[str, set[str]] = defaultdict(set)
    # accession -> [symbol, PMIDs, {protein name: rows}, GO ids]; symbol and name are per-object columns
    objects: dict[str, list[Any]] = {}
    rows = not_rows = 0
    seen_header = False
    lineno = 0
    try:
        with (open_text(path) if data is None
              else io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")) as fh:
            for lineno, line in enumerate(fh, 1):
                if line[0] == "!":
                    seen_header = True
                    low = line.lower()
                    if low.startswith(("!date-generated:", "!generated:")) and out.data_version is None:
                        out.data_version = line.split(":", 1)[1].strip()
                    continue
                # Only the first 10 columns are used: split no further, count the tabs instead.
                cols = line.split("\t", 10)
                if not 14 <= line.count("\t") <= 16:
                    if not line.strip():
                        continue
                    n = line.count("\t") + 1
                    what = "" if seen_header else " (no '!gaf-version' header: is this a GAF file?)"
                    raise TermnormError(
                        f"{path}:{lineno}: {n} tab-separated columns, a GAF row has 15-17{what}"
                    )
                rows += 1
                qualifier = cols[3]
                if qualifier and "NOT" in qualifier.split("|"):
                    not_rows += 1
                    continue
                acc = cols[1]
                obj = objects.get(acc)
                if obj is None:
                    obj = objects[acc] = [intern(cols[2]), set(), {}, set()]
                go_id = cols[4]
                term_genes[go_id].add(obj[0])
                obj[3].add(go_id)
                refs = cols[5]
                if "PMID:" in refs:
                    pmids = term_pmids[go_id]
                    for ref in refs.split("|") if "|" in refs else (refs,):
                        if ref.startswith("PMID:"):
                            ref = intern(ref)
                            obj[1].add(ref)
                            pmids.add(ref)
                name = cols[9]
                if name:
                    names = obj[2]
                    names[name] = names.get(name, 0) + 1
    except (OSError, EOFError, UnicodeDecodeError) as e:
        # gzip raises BadGzipFile (an OSError) or EOFError on a cut-off download.
        raise TermnormError(f"{path}:{lineno + 1}: cannot read ({type(e).__name__}: {e})") from None
    if rows == 0:
        raise TermnormError(f"{path}: no annotation rows, not a GAF file")
    acc_symbols = {acc: obj[0] for acc, obj in objects.items()}
    acc_pmids = {acc: obj[1] for acc, obj in objects.items() if obj[1]}
    acc_names = {acc: _label_counts(obj[2]) for acc, obj in objects.items()}
    acc_terms = {acc: obj[3] for acc, obj in objects.items()}
    # Symbol-keyed views for tables that have no UniProt accession.
    symbol_pmids: defaultdict[str, set[str]] = defaultdict(set)
    symbol_names: defaultdict[str, Counter[str]] = defaultdict(Counter)
    symbol_terms: defaultdict[str, set[str]] = defaultdict(set)
    for acc, symbol in acc_symbols.items():
        symbol_pmids[symbol] |= acc_pmids.get(acc, set())
        symbol_names[symbol].update(acc_names[acc])
        symbol_terms[symbol] |= acc_terms[acc]
    # How many genes (symbols) each paper is cited for: a screen cites thousands, a focused study few.
    pmid_genes: Counter[str] = Counter()
    for pmids in symbol_pmids.values():
        pmid_genes.update(pmids)
    out.term_genes = dict(term_genes)
    out.term_pmids = dict(term_pmids)
    out.symbol_terms = dict(symbol_terms)
    out.accession_terms = acc_terms
    out.pmid_genes = dict(pmid_genes)
    out.symbol_pmids = {k: v for k, v in symbol_pmids.items() if v}
    out.accession_pmids = dict(acc_pmids)
    out.symbol_names = dict(symbol_names)
    out.accession_names = dict(acc_names)
    out.accession_symbols = acc_symbols
    out.rows, out.not_rows = rows, not_rows
    return out
