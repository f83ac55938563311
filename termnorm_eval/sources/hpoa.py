"""HPO disease annotations (``phenotype.hpoa``): how many diseases, and papers, use each HPO term.

Columns (current and pre-2021 layouts agree on the first five): database_id (``OMIM:619340``),
disease_name, qualifier (``NOT`` or empty), hpo_id, reference (``PMID:1;OMIM:2``, ``;``-separated).
``#`` lines are the header block; the column header row itself is recognised and skipped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.gaf import open_text


@dataclass
class HpoaAnnotations:
    path: Path
    data_version: str | None  # "#version:" / "#date:" header line
    term_diseases: dict[str, set[str]] = field(default_factory=dict)  # HP id -> disease ids
    term_pmids: dict[str, set[str]] = field(default_factory=dict)  # HP id -> PMIDs in its references
    rows: int = 0
    not_rows: int = 0


def read_hpoa(path: str | Path) -> HpoaAnnotations:
    path = Path(path)
    if not path.is_file():
        raise TermnormError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    out = HpoaAnnotations(path, None)
    term_diseases: defaultdict[str, set[str]] = defaultdict(set)
    term_pmids: defaultdict[str, set[str]] = defaultdict(set)
    rows = not_rows = 0
    width: int | None = None
    lineno = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.startswith("#"):
                    key, _, value = line[1:].partition(":")
                    if key.strip().lower() in ("version", "date") and out.data_version is None:
                        out.data_version = value.strip()
                    continue
                if not line.strip():
                    continue
                cols = line.rstrip("\r\n").split("\t")
                if width is None:
                    width = len(cols)
                    if width < 4:
                        raise TermnormError(
                            f"{path}:{lineno}: {width} tab-separated columns; an HPOA file has at least "
                            "4 (database_id, disease_name, qualifier, hpo_id)"
                        )
                    if cols[0].lower() in ("database_id", "databaseid"):
                        continue  # the column header row
                elif len(cols) != width:
                    raise TermnormError(
                        f"{path}:{lineno}: {len(cols)} tab-separated columns, expected {width} like the "
                        "rows before"
                    )
                rows += 1
                if cols[2].strip().upper() == "NOT":
                    not_rows += 1
                    continue
                hpo_id = cols[3].strip()
                if not hpo_id.startswith("HP:"):
                    raise TermnormError(f"{path}:{lineno}: column 4 should be an HPO id, got {hpo_id!r}")
                term_diseases[hpo_id].add(intern(cols[0]))
                refs = cols[4] if len(cols) > 4 else ""
                if "PMID:" in refs:
                    if ";" not in refs:  # nearly every row: one reference
                        term_pmids[hpo_id].add(intern(refs.strip()))
                    else:
                        term_pmids[hpo_id].update(intern(r.strip()) for r in refs.split(";")
                                                  if r.strip().startswith("PMID:"))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise TermnormError(f"{path}:{lineno + 1}: cannot read ({type(e).__name__}: {e})") from None
    if rows == 0:
        raise TermnormError(f"{path}: no annotation rows, not an HPOA file")
    out.term_diseases = dict(term_diseases)
    out.term_pmids = dict(term_pmids)
    out.rows, out.not_rows = rows, not_rows
    return out
